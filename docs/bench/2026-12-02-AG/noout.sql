\set n random(1, 100)
WITH c AS (SELECT id FROM convs_idx WHERE n = :n), state AS (
 UPDATE conversations SET last_seq = last_seq + 1, version = version + 1 WHERE id = (SELECT id FROM c) RETURNING id, last_seq, version
), event AS (
 INSERT INTO events (aggregate_id, version, aggregate_type, event_id, event_type, data, occurred_at)
 SELECT id, version, 'Conversation', gen_random_uuid(), 'MessagePosted', '{"message_id":"0192f0a4-7a9e-7c1b-9a3e-5d0c1e2f3a4b","sender_id":"0192f0a4-7a9e-7c1b-9a3e-5d0c1e2f3a4c","client_msg_id":"b3f1c2d4-0000-4000-8000-000000000001","seq":12345,"body":{"text":"hello from the bench, a message about a hundred bytes long, give or take a few"},"created_at":"2026-12-02T06:30:00.123456Z"}', now() FROM state
)
INSERT INTO messages (conversation_id, seq, id, sender_id, client_msg_id, body, created_at)
 SELECT id, last_seq, gen_random_uuid(), gen_random_uuid(), md5(random()::text), '{"text":"hello from the bench, a message about a hundred bytes long, give or take a few"}', now() FROM state;
