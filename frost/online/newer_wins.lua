-- Write one feature view's values for one entity, unless Redis already holds a newer event.
--
-- Runs atomically on the server, so concurrent writers (batch, streaming, Feast itself)
-- cannot interleave between the timestamp check and the write.
--
-- KEYS[1]  entity hash key (Feast layout)
-- ARGV[1]  timestamp field, "_ts:<view>"
-- ARGV[2]  event time of this write, whole seconds since the epoch (decimal)
-- ARGV[3]  nanoseconds part of the event time (decimal)
-- ARGV[4]  serialized google.protobuf.Timestamp to store in ARGV[1]
-- ARGV[5]  key TTL in seconds, "0" for none
-- ARGV[6..] field, value pairs
--
-- Returns 1 when written, 0 when the stored event is newer. An equal event time is
-- written again: replays are harmless, and the newest write of one instant wins.

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

local stored = redis.call('HGET', KEYS[1], ARGV[1])
if stored then
  -- The stored Timestamp: field 1 (seconds) and field 2 (nanos), both varints.
  local seconds, nanos, i = 0, 0, 1
  while i <= #stored do
    local tag = string.byte(stored, i)
    local value
    value, i = varint(stored, i + 1)
    if tag == 8 then seconds = value elseif tag == 16 then nanos = value end
  end
  local new_seconds, new_nanos = tonumber(ARGV[2]), tonumber(ARGV[3])
  if seconds > new_seconds or (seconds == new_seconds and nanos > new_nanos) then
    return 0
  end
end

local last = #ARGV
if last <= 1005 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[4], unpack(ARGV, 6, last))
else
  -- Lua's unpack has a stack limit: write very wide views in slices.
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
  local first = 6
  while first <= last do
    local stop = math.min(first + 999, last)
    redis.call('HSET', KEYS[1], unpack(ARGV, first, stop))
    first = stop + 1
  end
end
if ARGV[5] ~= '0' then
  redis.call('EXPIRE', KEYS[1], ARGV[5])
end
return 1
