-- Applies one message's offline counts exactly once.
-- KEYS[1] the handled mark of (group, event id); KEYS[2..] offline:{user_id}:{conversation_id}
-- ARGV[1] TTL of the mark (s), ARGV[2] TTL of a counter (s)
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
for i = 2, #KEYS do
  redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], ARGV[2])
end
return 1
