#!lua
-- Publishes one conversation's messages, in seq order, atomically.
-- The shebang (no allow-oom flag) makes Redis refuse the whole script up front when it is out
-- of memory, so (with one partition) a conversation entry is never written without its fan-out
-- entry; with more, the fan-out entry is the second half (split_publish.go).
-- KEYS[1] conversation stream, KEYS[2] fan-out stream, KEYS[3] fan-out index (sorted set).
-- With KEYS[1] alone (NOVA_FANOUT_PARTITIONS > 1: the fan-out partition is in another hash slot)
-- the script writes the conversation stream and the legacy channel only, and the caller writes
-- the fan-out entry (publish_fanout.lua) and the live channel (in another slot too) after it.
-- ARGV: maxlen, legacy pubsub channel ('' = off), conversation_id, strict ('1' or '0'),
--       live channel, live command ('SPUBLISH', 'PUBLISH' or '' = off), then per message:
--       seq, sender_id, timestamp_ms, message_id, payload, participants (comma-separated, '' = unknown)
-- The live channel carries "<seq> <timestamp_ms> <payload>" (decoded by live_message.go) to the
-- instances that have subscribers of this conversation.
-- Strict mode (the publish-after-commit fast path) writes a message only if it directly follows
-- the stream's last entry; otherwise it answers -1 and stops, leaving the message to the relay,
-- which reads the outbox in order. Without strict, any id above the stream's top is written.
-- Returns one status per message: 1 written, 0 already there (a re-send, checked against the
-- entry's payload), 2 no longer in the stream (fan-out and live written again), -1 deferred; on
-- an error, the statuses so far followed by the error text, and nothing after it is attempted.
local maxlen, channel, conv, strict = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1'
local live, livecmd = ARGV[5], ARGV[6]
local out = {}
local top = 0
if strict then
  local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  if last[1] then
    top = tonumber(string.match(last[1][1], '^(%d+)'))
  end
end
-- emit writes what follows a new conversation-stream entry: the fan-out entry and its index
-- (unless split), the live channel and the legacy channel.
local function emit(seq, id, sender, ts, mid, payload, members)
  if KEYS[2] then
    local meta = cmsgpack.pack({ conversation_id = conv, stream_key = KEYS[1], entry_id = id, seq = seq,
      event_type = 'conversation.message_posted.v1', participants = members, sender_id = sender })
    local fid = redis.call('XADD', KEYS[2], '*', '_watermill_message_uuid', mid, 'payload', payload,
      'metadata', meta, 'conversation_id', conv, 'stream_key', KEYS[1], 'entry_id', id, 'timestamp', ts)
    -- index the fan-out entry (scored by its time), so an entry trimmed before some group acked
    -- it can still be found by id and re-published from Postgres
    redis.call('ZADD', KEYS[3], tonumber(string.match(fid, '^(%d+)')), fid .. '|' .. conv .. '|' .. seq)
  end
  if livecmd ~= '' then
    redis.call(livecmd, live, seq .. ' ' .. ts .. ' ' .. payload)
  end
  if channel ~= '' then
    redis.call('PUBLISH', channel, payload)
  end
end

-- present says what the stream holds at id, which is at or below its top: 'same' (this message:
-- a re-send), 'missing' (the stream lost or trimmed it) or 'other' (another message: never
-- expected, and never to be hidden).
local function present(id, payload)
  local e = redis.call('XRANGE', KEYS[1], id, id)
  if e[1] == nil then
    return 'missing'
  end
  local f = e[1][2]
  for j = 1, #f, 2 do
    if f[j] == 'payload' then
      if f[j + 1] == payload then
        return 'same'
      end
      return 'other'
    end
  end
  return 'other'
end

-- below handles a message whose id is at or below the stream's top: status 0 for a re-send,
-- 2 when the stream no longer holds it (its fan-out entry and live copy are written, so
-- consumer groups and subscribers still hear of it; catch-up reads Postgres for the hole),
-- or an error for another message at that id.
local function below(seq, id, sender, ts, mid, payload, members)
  local p = present(id, payload)
  if p == 'same' then
    return 0
  elseif p == 'missing' then
    emit(seq, id, sender, ts, mid, payload, members)
    return 2
  end
  return 'the stream holds another message at ' .. id
end

for i = 7, #ARGV, 6 do
  local seq, sender, ts, mid, payload, members = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local id = seq .. '-0'
  local n = tonumber(seq)
  if strict and n <= top then
    local st = below(seq, id, sender, ts, mid, payload, members)
    out[#out + 1] = st
    if type(st) == 'string' then
      return out
    end
  elseif strict and n ~= top + 1 then
    out[#out + 1] = -1
    return out
  else
    if strict then
      top = n
    end
    local r = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', maxlen, id,
      'conversation_id', conv, 'seq', seq, 'sender_id', sender, 'timestamp', ts, 'payload', payload)
    if type(r) == 'table' and r.err then
      if string.find(r.err, 'equal or smaller', 1, true) then
        local st = below(seq, id, sender, ts, mid, payload, members)
        out[#out + 1] = st
        if type(st) == 'string' then
          return out
        end
      else
        out[#out + 1] = r.err
        return out
      end
    else
      emit(seq, id, sender, ts, mid, payload, members)
      out[#out + 1] = 1
    end
  end
end
return out
