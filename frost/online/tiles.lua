-- Fold events into the aggregation tiles of several entities of one view, exactly once;
-- or (backfill) replace a range of tiles with states computed from a batch source.
--
-- Each entity's tiles live in one hash (KEYS[k]): field "<tile index>" holds the tile's
-- state, 1 + 4*C little-endian doubles (event count, then per numeric column: sum, sum of
-- squared deviations from the tile mean, min, max; see frost/windows/_tiles.py). Distinct
-- counts live in HyperLogLogs next to it, "<key>:h<sketch>:<tile>", one per slide of each
-- count_distinct aggregation (same hash tag, same slot; they expire on their own). Other
-- fields:
--   o:<topic>:<partition>  the offset of the last event of that partition folded in: an
--                          event at or below it was counted already (a replay) and is skipped
--   _ts                    the newest event time folded in (microseconds)
--   _wm                    tiles below it belong to the batch source (set by backfill):
--                          streamed events there are skipped
--   _min, _max             the oldest and newest tile stored (cleanup is skipped while the
--                          oldest is live; the key expires with the newest)
--
-- ARGV[1] mode: "s" (stream) or "b" (backfill)
-- ARGV[2] oldest live tile: tiles below it are deleted
-- ARGV[3] d, doubles per state;  ARGV[4] D, sketches (count_distinct aggregations)
-- ARGV[5] tile length in ms;      ARGV[6] longest window in ms (for key expiry)
-- then per key k, its arguments, counted first:
--   stream:   n, then per event: fence field, offset, tile, event time (us), the C numeric
--             inputs (8-byte little-endian doubles), then per sketch: its tile and the value
--             to add
--   backfill: low tile, high tile (replace [low, high)), T, then per tile: index, packed
--             state, newest event time (us); then per sketch: the range of its tiles to
--             delete [from, to), S, and per sketch tile: index, m, m values
-- Returns per key the number of events folded in (stream) or 1 (backfill), or the error
-- text Redis gave for that key alone (e.g. WRONGTYPE).

local mode = ARGV[1]
local oldest = tonumber(ARGV[2])
local d = tonumber(ARGV[3])
local D = tonumber(ARGV[4])
local tile_ms = tonumber(ARGV[5])
local longest_ms = tonumber(ARGV[6])
local C = (d - 1) / 4
local fmt = '<' .. string.rep('d', d)

local function failed(reply)
  return type(reply) == 'table' and reply.err
end

local function hll_key(key, sketch, tile)
  return key .. ':h' .. sketch .. ':' .. tile
end

local function expire_at(tile)
  return (tile + 1) * tile_ms + longest_ms
end

-- Merge state b into state a (tables of d numbers), Chan et al. for the squared deviations.
local function merge(a, b)
  local na, nb = a[1], b[1]
  if nb == 0 then return a end
  if na == 0 then return b end
  local n = na + nb
  for c = 0, C - 1 do
    local s, q, lo, hi = 2 + 4 * c, 3 + 4 * c, 4 + 4 * c, 5 + 4 * c
    local delta = b[s] / nb - a[s] / na
    a[q] = a[q] + b[q] + delta * delta * na * nb / n
    a[s] = a[s] + b[s]
    if b[lo] < a[lo] then a[lo] = b[lo] end
    if b[hi] > a[hi] then a[hi] = b[hi] end
  end
  a[1] = n
  return a
end

local function empty_state()
  local s = {0}
  for c = 0, C - 1 do
    s[2 + 4 * c], s[3 + 4 * c], s[4 + 4 * c], s[5 + 4 * c] = 0, 0, math.huge, -math.huge
  end
  return s
end

-- Delete the tiles in [low, high); returns the oldest tile kept.
local function drop_tiles(key, low, high)
  local kept = nil
  local names = redis.call('HKEYS', key)
  for _, name in ipairs(names) do
    local tile = tonumber(name)
    if tile ~= nil then
      if tile >= low and tile < high then
        redis.call('HDEL', key, name)
      elseif kept == nil or tile < kept then
        kept = tile
      end
    end
  end
  return kept
end

local function finish(key, lowest, highest, newest)
  local raw_min = redis.call('HGET', key, '_min')
  local stored_min = raw_min and tonumber(raw_min) or nil
  if stored_min == nil or lowest < stored_min then stored_min = lowest end
  if stored_min < oldest then
    stored_min = drop_tiles(key, -math.huge, oldest) or highest
  end
  local raw_ts = redis.call('HGET', key, '_ts')
  local stored_ts = raw_ts and tonumber(raw_ts) or 0
  local raw_max = redis.call('HGET', key, '_max')
  local stored_max = raw_max and tonumber(raw_max) or highest
  if highest > stored_max then stored_max = highest end
  local fields = {'_min', stored_min, '_max', string.format('%.0f', stored_max)}
  if newest > stored_ts then
    fields[3], fields[4] = '_ts', string.format('%.0f', newest)
  end
  redis.call('HSET', key, unpack(fields))
  redis.call('PEXPIREAT', key, string.format('%.0f', expire_at(stored_max)))
end

local function stream(key, at)
  local n = tonumber(ARGV[at])
  local width = 4 + C + 2 * D
  -- One read of everything the fold needs: metadata, the fences and the tiles it touches.
  local wanted, slot = {'_wm', '_min', '_ts', '_max'}, {}
  for e = 0, n - 1 do
    local base = at + 1 + e * width
    for _, name in ipairs({ARGV[base], ARGV[base + 2]}) do
      if slot[name] == nil then
        wanted[#wanted + 1] = name
        slot[name] = #wanted
      end
    end
  end
  local stored = redis.pcall('HMGET', key, unpack(wanted))
  if failed(stored) then return stored.err end
  local watermark = stored[1] and tonumber(stored[1]) or -math.huge
  local fences, moved = {}, {}
  local deltas, order = {}, {}
  local sketches = {}
  local folded, newest = 0, 0
  local lowest, highest = math.huge, -math.huge
  for e = 0, n - 1 do
    local base = at + 1 + e * width
    local fence_field, offset = ARGV[base], tonumber(ARGV[base + 1])
    local fence = fences[fence_field]
    if fence == nil then
      local raw = stored[slot[fence_field]]
      fence = raw and tonumber(raw) or -1
    end
    if offset > fence then
      fences[fence_field], moved[fence_field] = offset, true
      local name = ARGV[base + 2]
      local tile = tonumber(name)
      if tile >= watermark then
        local delta = deltas[name]
        if delta == nil then
          delta = empty_state()
          deltas[name] = delta
          order[#order + 1] = name
        end
        local count = delta[1] + 1
        for c = 0, C - 1 do
          local x = struct.unpack('<d', ARGV[base + 4 + c])
          local s, q, lo, hi = 2 + 4 * c, 3 + 4 * c, 4 + 4 * c, 5 + 4 * c
          local before = delta[1] > 0 and delta[s] / delta[1] or 0
          delta[s] = delta[s] + x
          if delta[1] > 0 then delta[q] = delta[q] + (x - before) * (x - delta[s] / count) end
          if x < delta[lo] then delta[lo] = x end
          if x > delta[hi] then delta[hi] = x end
        end
        delta[1] = count
        for sketch = 1, D do
          local at_sketch = base + 4 + C + 2 * (sketch - 1)
          local sketch_name = hll_key(key, sketch, ARGV[at_sketch])
          redis.call('PFADD', sketch_name, ARGV[at_sketch + 1])
          local until_ms = expire_at(tile)
          if (sketches[sketch_name] or 0) < until_ms then sketches[sketch_name] = until_ms end
        end
        local micros = tonumber(ARGV[base + 3])
        if micros > newest then newest = micros end
        if tile < lowest then lowest = tile end
        if tile > highest then highest = tile end
        folded = folded + 1
      end
    elseif fences[fence_field] == nil then
      fences[fence_field] = fence
    end
  end
  for sketch_name, until_ms in pairs(sketches) do
    redis.call('PEXPIREAT', sketch_name, string.format('%.0f', until_ms))
  end
  -- One write of everything that changed.
  local fields = {}
  for field, offset in pairs(fences) do
    if moved[field] then
      fields[#fields + 1] = field
      fields[#fields + 1] = string.format('%.0f', offset)
    end
  end
  if folded > 0 then
    for _, name in ipairs(order) do
      local state = deltas[name]
      local raw = stored[slot[name]]
      if raw then state = merge({struct.unpack(fmt, raw)}, state) end
      fields[#fields + 1] = name
      fields[#fields + 1] = struct.pack(fmt, unpack(state, 1, d))
    end
    local stored_min = stored[2] and tonumber(stored[2]) or lowest
    if lowest < stored_min then stored_min = lowest end
    local stored_max = stored[4] and tonumber(stored[4]) or highest
    if highest > stored_max then stored_max = highest end
    fields[#fields + 1], fields[#fields + 2] = '_max', string.format('%.0f', stored_max)
    if not (stored[3] and tonumber(stored[3]) >= newest) then
      fields[#fields + 1], fields[#fields + 2] = '_ts', string.format('%.0f', newest)
    end
    if stored_min < oldest then
      redis.call('HSET', key, unpack(fields))
      fields = {}
      stored_min = drop_tiles(key, -math.huge, oldest) or stored_max
    end
    fields[#fields + 1], fields[#fields + 2] = '_min', string.format('%.0f', stored_min)
    redis.call('HSET', key, unpack(fields))
    redis.call('PEXPIREAT', key, string.format('%.0f', expire_at(stored_max)))
    return folded
  end
  if #fields > 0 then redis.call('HSET', key, unpack(fields)) end
  return folded
end

local function backfill(key, at)
  local low, high, count = tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
  drop_tiles(key, low, high)
  local newest = 0
  local lowest, highest = math.huge, low
  local i = at + 4
  for _ = 1, count do
    local name, tile = ARGV[i], tonumber(ARGV[i])
    redis.call('HSET', key, name, ARGV[i + 1])
    local micros = tonumber(ARGV[i + 2])
    if micros > newest then newest = micros end
    if tile < lowest then lowest = tile end
    if tile > highest then highest = tile end
    i = i + 3
  end
  for sketch = 1, D do
    local from, to, tiles = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
    for tile = from, to - 1 do redis.call('DEL', hll_key(key, sketch, string.format('%.0f', tile))) end
    i = i + 3
    for _ = 1, tiles do
      local name, m = hll_key(key, sketch, ARGV[i]), tonumber(ARGV[i + 1])
      local first = i + 2
      while first <= i + 1 + m do  -- Lua's unpack has a stack limit: add in slices
        local stop = math.min(first + 999, i + 1 + m)
        redis.call('PFADD', name, unpack(ARGV, first, stop))
        first = stop + 1
      end
      -- A sketch tile is needed until its end plus the longest window (an upper bound).
      redis.call('PEXPIREAT', name, expire_at(highest))
      i = i + 2 + m
    end
  end
  local stored_wm = redis.call('HGET', key, '_wm')
  local watermark = stored_wm and tonumber(stored_wm) or -math.huge
  if high > watermark then redis.call('HSET', key, '_wm', string.format('%.0f', high)) end
  if count > 0 then finish(key, lowest, highest, newest) end
  return 1
end

local results = {}
local at = 7
for k = 1, #KEYS do
  local size = tonumber(ARGV[at])
  if mode == 's' then
    results[k] = stream(KEYS[k], at + 1)  -- its first read answers WRONGTYPE, if any
  else
    local probe = redis.pcall('TYPE', KEYS[k])
    if failed(probe) then
      results[k] = probe.err
    elseif probe.ok ~= 'none' and probe.ok ~= 'hash' then
      results[k] = 'WRONGTYPE the tile key holds a ' .. probe.ok
    else
      results[k] = backfill(KEYS[k], at)
    end
  end
  at = at + 1 + size
end
return results
