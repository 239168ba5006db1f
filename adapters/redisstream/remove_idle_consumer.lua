-- Removes consumer ARGV[2] of group ARGV[1] on stream KEYS[1] if it has nothing pending and
-- has been idle for at least ARGV[3] ms. Checked and removed in one step: XGROUP DELCONSUMER
-- drops a consumer's pending entries with it, so a consumer that read entries after the caller
-- looked (an instance that started helping its partition's owner) must keep them.
-- Returns 1 when it removed the consumer, else 0.
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local f = {}
  for i = 1, #c, 2 do
    f[c[i]] = c[i + 1]
  end
  if f['name'] == ARGV[2] then
    if f['pending'] == 0 and f['idle'] >= tonumber(ARGV[3]) then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
      return 1
    end
    return 0
  end
end
return 0
