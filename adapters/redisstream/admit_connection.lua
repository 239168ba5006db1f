-- Admits one more WebSocket connection of a user on this instance, if the user's connections
-- on every live instance stay within the limit.
-- KEYS[1] presence:{user_id}: field <instance> = vouched-until (ms), field #<instance> = its
--   connection count (count_offline.lua reads only the vouched-until values as online marks;
--   a count never exceeds a time in ms, so it never reads as one)
-- ARGV[1] instance, ARGV[2] now (ms), ARGV[3] vouched-until (ms), ARGV[4] limit, ARGV[5] TTL (ms)
-- Returns 1 (admitted; this instance's count is one higher) or 0 (refused).
local now = tonumber(ARGV[2])
local fields = redis.call('HGETALL', KEYS[1])
local h = {}
for i = 1, #fields, 2 do h[fields[i]] = fields[i + 1] end
local total = 0
for f, v in pairs(h) do
  if string.sub(f, 1, 1) == '#' then
    local instance = string.sub(f, 2)
    if instance == ARGV[1] or (tonumber(h[instance]) or 0) > now then
      total = total + (tonumber(v) or 0)
    else -- an instance that stopped vouching (crashed): its connections are gone
      redis.call('HDEL', KEYS[1], f, instance)
    end
  end
end
if total + 1 > tonumber(ARGV[4]) then
  return 0
end
redis.call('HINCRBY', KEYS[1], '#' .. ARGV[1], 1)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
