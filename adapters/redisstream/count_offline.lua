-- Applies one message's offline counts exactly once, for the recipients with no live connection.
-- KEYS[1] the group's handled marks of the conversation: a bitmap, bit <seq> set once handled
--   (one bit per message, where a key per message would hold ~100 bytes for days);
--   then per recipient two keys: offline:{user_id}:{conversation_id} and presence:{user_id}
-- ARGV[1] TTL of the marks (s, renewed by every message), ARGV[2] TTL of a counter (s),
-- ARGV[3] now (Unix ms), ARGV[4] the message's seq
-- A recipient is online while some instance's field in its presence hash vouches past now.
-- Returns 0 if the message was handled before, else 1 + the number of recipients counted.
if redis.call('SETBIT', KEYS[1], ARGV[4], 1) == 1 then
  return 0
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
local now = tonumber(ARGV[3])
local counted = 0
for i = 2, #KEYS, 2 do
  local online = false
  for _, vouched in ipairs(redis.call('HVALS', KEYS[i + 1])) do
    if (tonumber(vouched) or 0) > now then
      online = true
      break
    end
  end
  if not online then
    redis.call('INCR', KEYS[i])
    redis.call('EXPIRE', KEYS[i], ARGV[2])
    counted = counted + 1
  end
end
return 1 + counted
