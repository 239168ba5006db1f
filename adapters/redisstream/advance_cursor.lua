-- Moves one conversation's cursor in a client:sync hash forward, never back, and renews the TTL.
-- KEYS[1] client:sync:{user_id}:{client_id}
-- ARGV[1] conversation_id, ARGV[2] seq, ARGV[3] the cursor JSON, ARGV[4] TTL in seconds
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local ok, v = pcall(cjson.decode, cur)
  if ok and type(v) == 'table' and tonumber(v.last_seq) and tonumber(v.last_seq) >= tonumber(ARGV[2]) then
    redis.call('EXPIRE', KEYS[1], ARGV[4])
    return 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
