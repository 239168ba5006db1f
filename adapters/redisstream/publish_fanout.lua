#!lua
-- The partition half of a split publish (NOVA_FANOUT_PARTITIONS > 1): writes one conversation's
-- fan-out entries to its partition, in seq order, each once. It runs after the conversation half
-- (publish_entries.lua with the conversation stream alone) held the messages; the two halves are
-- in different hash slots, so a crash between them is possible, and the outbox row, deleted only
-- after both, makes the publisher run both again. Every key here has the partition's {p} tag.
-- KEYS[1] the partition's fan-out stream, KEYS[2] its index (sorted set, as in publish_entries.lua),
-- KEYS[3] the highest seq of this conversation written to the partition (expires after ARGV[3] s)
-- ARGV: conversation_id, strict ('1' or '0'), ttl, then per message: seq, n, then n field/value
--       pairs of the fan-out entry (encoded by fanout_entry.go)
-- A seq at or below KEYS[3] is already written (status 0). Strict mode (the fast path) writes
-- only the seq right after it and otherwise answers -1 and stops: the seq before may be on its
-- way from another instance, and writing past it would make that one look already written. The
-- relay (not strict) reads the outbox in seq order, so a gap it meets is one no row will fill
-- (a row set aside), and it writes. Without KEYS[3] (a conversation's first messages, a mark
-- expired, the partition lost) the relay writes any seq and strict mode only seq 1: any other
-- may have its predecessor on its way, as above. Returns one status per message: 1 written,
-- 0 already written, -1 deferred.
local conv, strict, ttl = ARGV[1], ARGV[2] == '1', ARGV[3]
local stored = redis.call('GET', KEYS[3])
local last = stored and tonumber(stored)
local wrote = false
local out = {}
local i = 4
while i <= #ARGV do
  local seq, n = ARGV[i], tonumber(ARGV[i + 1])
  local s = tonumber(seq)
  if last and s <= last then
    out[#out + 1] = 0
  elseif strict and s ~= (last or 0) + 1 then
    out[#out + 1] = -1
    break
  else
    local fid = redis.call('XADD', KEYS[1], '*', unpack(ARGV, i + 2, i + 1 + 2 * n))
    redis.call('ZADD', KEYS[2], tonumber(string.match(fid, '^(%d+)')), fid .. '|' .. conv .. '|' .. seq)
    last, wrote = s, true
    out[#out + 1] = 1
  end
  i = i + 2 + 2 * n
end
if wrote then
  redis.call('SET', KEYS[3], last, 'EX', ttl)
end
return out
