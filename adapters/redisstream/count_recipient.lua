-- Counts one message for one offline recipient, once: the Redis Cluster form of
-- count_offline.lua, where a recipient's keys and the conversation's handled marks live in
-- different hash slots. KEYS[1] offline:{user_id}:{conversation_id}; KEYS[2] the seqs counted
-- into it lately, a sorted set named {KEYS[1]}:counted, whose hash tag is the whole counter
-- name, so both keys share the counter's slot.
-- ARGV[1] the message's seq, ARGV[2] TTL of both keys (s), ARGV[3] how many recent seqs to keep.
-- Returns 1 if counted now, 0 if this seq was counted before.
if redis.call('ZADD', KEYS[2], 'NX', ARGV[1], ARGV[1]) == 0 then
  return 0
end
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[3]) + 1))
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
