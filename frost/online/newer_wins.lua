-- Write one feature view's values for each of several entities, unless Redis already holds
-- a newer event for that entity.
--
-- Runs atomically on the server, so concurrent writers (batch, streaming, Feast itself)
-- cannot interleave between the timestamp check and the write. Several entities per call
-- spread the cost of a script call over them (on a Redis Cluster the writer sends one per
-- call, since the keys of one call must share a slot).
--
-- KEYS[1..K]  entity hash keys (Feast layout)
-- ARGV[1]     key TTL in seconds, "0" for none
-- ARGV[2]     m, the number of arguments per entity
-- then, for entity k, the m arguments starting at ARGV[3 + (k - 1) * m]:
--   event time of this write, whole seconds since the epoch (decimal)
--   nanoseconds part of the event time (decimal)
--   timestamp field "_ts:<view>", its serialized google.protobuf.Timestamp,
--   then field, value pairs
--
-- Returns, per key, 1 (written), 0 (the stored event is newer) or the text of the error
-- Redis gave for that key alone (e.g. WRONGTYPE: a key that is not a hash); the other keys
-- of the call are written all the same. An equal event time is written again: replays are
-- harmless, and the newest write of one instant wins.

-- A protobuf varint at byte i of s: returns its value and the index after it. Negative
-- int64s are ten-byte two's complement; summing those in Lua's doubles would round, so
-- their complement (small for real dates) is summed instead, which is exact.
local function varint(s, i)
  local stop = i
  while stop < #s and string.byte(s, stop) >= 128 do stop = stop + 1 end
  local value, scale = 0, 1
  if stop - i + 1 >= 10 then
    for k = i, i + 8 do
      value = value + (127 - string.byte(s, k) % 128) * scale
      scale = scale * 128
    end
    return -value - 1, stop + 1
  end
  for k = i, stop do
    value = value + (string.byte(s, k) % 128) * scale
    scale = scale * 128
  end
  return value, stop + 1
end

-- Whether the stored Timestamp (field 1 seconds, field 2 nanos) is newer than the write.
local function stored_is_newer(stored, new_seconds, new_nanos)
  local seconds, nanos, i = 0, 0, 1
  while i <= #stored do
    local tag = string.byte(stored, i)
    local value
    value, i = varint(stored, i + 1)
    if tag == 8 then seconds = value elseif tag == 16 then nanos = value end
  end
  return seconds > new_seconds or (seconds == new_seconds and nanos > new_nanos)
end

local function failed(reply)
  return type(reply) == 'table' and reply.err
end

-- Write entity k; returns 1 or 0, or the error text.
local function write(key, base, m, ttl)
  local stored = redis.pcall('HGET', key, ARGV[base + 2])
  if failed(stored) then return stored.err end
  if stored and stored_is_newer(stored, tonumber(ARGV[base]), tonumber(ARGV[base + 1])) then
    return 0
  end
  local first, last = base + 2, base + m - 1
  while first <= last do
    -- Lua's unpack has a stack limit: very wide views are written in slices.
    local stop = math.min(first + 999, last)
    local reply = redis.pcall('HSET', key, unpack(ARGV, first, stop))
    if failed(reply) then return reply.err end
    first = stop + 1
  end
  if ttl ~= '0' then
    redis.call('EXPIRE', key, ttl)
  end
  return 1
end

local ttl = ARGV[1]
local m = tonumber(ARGV[2])
local written = {}
for k = 1, #KEYS do
  written[k] = write(KEYS[k], 3 + (k - 1) * m, m, ttl)
end
return written
