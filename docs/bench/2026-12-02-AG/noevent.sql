\set n random(1, 100)
WITH c AS (SELECT id FROM convs_idx WHERE n = :n), state AS (
 UPDATE conversations SET last_seq = last_seq + 1, version = version + 1 WHERE id = (SELECT id FROM c) RETURNING id, last_seq, version
), message AS (
 INSERT INTO messages (conversation_id, seq, id, sender_id, client_msg_id, body, created_at)
 SELECT id, last_seq, gen_random_uuid(), gen_random_uuid(), md5(random()::text), '{"text":"hello from the bench, a message about a hundred bytes long, give or take a few"}', now() FROM state
)
INSERT INTO outbox (conversation_id, seq, message_id, sender_id, created_at, payload)
SELECT id, last_seq, gen_random_uuid(), gen_random_uuid(), now(), convert_to(repeat('x', 260), 'UTF8') FROM state RETURNING id;
