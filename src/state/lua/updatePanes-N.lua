--[[
  Applies one batch's pre-aggregated deltas to the panes of several groups of one partition
  (all keys share the partition's hash tag).

  KEYS[1 .. a] are the pane hashes of this call (one HASH per (partition, pane): field = group
  id, value = the group's pane record), so a pane's groups are its hash's fields (HKEYS) and no
  list of active groups is kept. Then, for each delta whose sixth argument is 1, in delta order,
  one HyperLogLog key per switchable field (count_distinct only), in ARGV[4]'s order
  (h = #ARGV[4]). HyperLogLog keys are sent only when needed: a pane whose field switched (or
  would switch now) answers -2 without writing anything, and is sent again with them.
  The pane record: header line "<count> <last applied offset>[ x][ h<i>,<j>...]\n"
  (x: pruned; h: fields that switched to a HyperLogLog), then entries: one byte field code, the
  value length (one byte below 128, else two: 128 + high, low), the value; code 255 is the
  group key. Entries are canonical: equal bytes = equal (field, value).

  ARGV[1]   TTL in seconds of every key written (a pane hash lives TTL after its last write)
  ARGV[2]   prune bound K: once a pane's count reaches K its entries are dropped (0: never)
  ARGV[3]   exact threshold: a switchable field above this many values becomes a HyperLogLog
  ARGV[4]   switchable field codes, one byte each
  ARGV[5]   d: number of deltas
  ARGV[6]   a: number of pane hashes at the start of KEYS; then 8 arguments per delta, from
            ARGV[7 + (i-1)*8]:
            count delta (records in this batch for this group and pane), smallest and largest
            Kafka offset among those records, the entries (same encoding, the group key first;
            distinct within the delta), the offsets of the counted records, comma-separated
            (empty unless retrying a partial replay), 1 if its HyperLogLog keys follow, the
            index in KEYS of its pane hash, the group id

  Returns { status_1, count_1, status_2, count_2, ... }: status 1 applied, 0 already applied
  (replay of an applied batch), -1 partial overlap with an applied batch and no offsets given,
  -2 HyperLogLog keys needed and not given: send that delta again with what it lacked. The count
  is guarded by the offset so a replay after a crash never counts twice; entries and
  HyperLogLogs are idempotent by nature. A new record (most deltas of a backlog) is one HSETNX,
  without walking its entries; an existing one is HSETNX, HGET and HSET.
]]
local ttl = tonumber(ARGV[1])
local pruneAt = tonumber(ARGV[2])
local threshold = tonumber(ARGV[3])
local codes = ARGV[4]
local d = tonumber(ARGV[5])
local a = tonumber(ARGV[6])
local h = #codes

-- Calls fn(code, from, start, to) for each entry of s (bytes from..to are the whole entry,
-- start..to the value).
local function walk(s, fn)
  local pos, len = 1, #s
  while pos <= len do
    local l = string.byte(s, pos + 1)
    local start = pos + 2
    if l >= 128 then
      l = (l - 128) * 256 + string.byte(s, pos + 2)
      start = pos + 3
    end
    fn(string.byte(s, pos), pos, start, start + l - 1)
    pos = start + l
  end
end

local hllSlot = {}
for i = 1, h do hllSlot[string.byte(codes, i)] = i end

-- hash: the delta's pane hash, gid: its field there; its HyperLogLog of switchable field j is
-- KEYS[hk + j] when withHll.
local function apply(hash, gid, hk, withHll, n, minOff, maxOff, maxOffText, incoming, offsets)
  local count, applied, pruned, body = 0, -1, false, ''
  local switched, switchedList = {}, {}
  local fresh = not withHll and offsets == '' and #incoming <= 2 * threshold and not (pruneAt > 0 and n >= pruneAt)
  -- Most deltas of a backlog create their pane record: one HSETNX writes it unless it exists
  -- (the delta's entries are distinct, and too few to switch a field: no walk needed).
  if fresh and redis.call('HSETNX', hash, gid, n .. ' ' .. maxOffText .. '\n' .. incoming) == 1 then return 1, n end
  local rec = redis.call('HGET', hash, gid)
  if rec then
    local nl = string.find(rec, '\n', 1, true)
    local c, o, rest = string.match(string.sub(rec, 1, nl - 1), '^(%d+) (%-?%d+)(.*)$')
    count, applied = tonumber(c), tonumber(o)
    pruned = string.find(rest, ' x', 1, true) ~= nil
    local hs = string.match(rest, ' h([%d,]+)')
    if hs then
      for i in string.gmatch(hs, '%d+') do
        switched[tonumber(i)] = true
        switchedList[#switchedList + 1] = i
      end
    end
    body = string.sub(rec, nl + 1)
  end

  if applied >= maxOff then return 0, count end
  if #switchedList > 0 and not withHll then return -2, 0 end
  if applied >= minOff then
    if offsets == '' then return -1, 0 end
    n = 0
    for o in string.gmatch(offsets, '%d+') do
      if tonumber(o) > applied then n = n + 1 end
    end
  end
  count = count + n

  if pruned or (pruneAt > 0 and count >= pruneAt) then
    -- Every window holding this pane has count >= K: its entries can never matter again.
    if not pruned and withHll then
      for j = 1, h do redis.call('DEL', KEYS[hk + j]) end
    end
    redis.call('HSET', hash, gid, count .. ' ' .. maxOffText .. ' x\n')
    return 1, count
  end

  if not rec and #incoming <= 2 * threshold then
    -- A new pane record: the delta's entries are distinct already, and fewer than the threshold
    -- (an entry is at least 2 bytes), so no field can switch: no walk, the entries as they came.
    redis.call('HSET', hash, gid, count .. ' ' .. maxOffText .. '\n' .. incoming)
    return 1, count
  end

  local seen, exact = {}, {}
  walk(body, function(code, from, _, to)
    seen[string.sub(body, from, to)] = true
    if hllSlot[code] then exact[code] = (exact[code] or 0) + 1 end
  end)

  local added, toHll = {}, {}
  walk(incoming, function(code, from, start, to)
    if switched[code] then
      local list = toHll[code]
      if not list then list = {}; toHll[code] = list end
      list[#list + 1] = string.sub(incoming, start, to)
      return
    end
    local entry = string.sub(incoming, from, to)
    if not seen[entry] then
      seen[entry] = true
      added[#added + 1] = entry
      if hllSlot[code] then exact[code] = (exact[code] or 0) + 1 end
    end
  end)
  if #added > 0 then body = body .. table.concat(added) end

  -- Above the threshold ES|QL itself is approximate: move such a field to its HyperLogLog.
  for code, c in pairs(exact) do
    if c > threshold then
      if not withHll then return -2, 0 end
      local kept, moved = {}, {}
      walk(body, function(f, from, start, to)
        if f == code then moved[#moved + 1] = string.sub(body, start, to)
        else kept[#kept + 1] = string.sub(body, from, to) end
      end)
      body = table.concat(kept)
      local list = toHll[code] or {}
      for _, v in ipairs(moved) do list[#list + 1] = v end
      toHll[code] = list
      switched[code] = true
      switchedList[#switchedList + 1] = tostring(code)
    end
  end
  for code, list in pairs(toHll) do
    local slot = hllSlot[code]
    if not slot then return redis.error_reply('updatePanes: field ' .. code .. ' switched but has no HyperLogLog key') end
    for i = 1, #list, 1000 do
      redis.call('PFADD', KEYS[hk + slot], unpack(list, i, math.min(i + 999, #list)))
    end
  end
  -- A switched field's HyperLogLog lives as long as its pane record.
  for code in pairs(switched) do
    if hllSlot[code] then redis.call('EXPIRE', KEYS[hk + hllSlot[code]], ttl) end
  end

  local header = count .. ' ' .. maxOffText
  if #switchedList > 0 then header = header .. ' h' .. table.concat(switchedList, ',') end
  redis.call('HSET', hash, gid, header .. '\n' .. body)
  return 1, count
end

local out = {}
local hk = a
for i = 1, d do
  local base = 6 + (i - 1) * 8
  local withHll = ARGV[base + 6] == '1'
  local status, count = apply(KEYS[tonumber(ARGV[base + 7])], ARGV[base + 8], hk, withHll, tonumber(ARGV[base + 1]),
    tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3]), ARGV[base + 3], ARGV[base + 4], ARGV[base + 5])
  if type(status) == 'table' then
    -- An error reply: what was written so far stays (Redis does not roll back), with its TTL.
    for j = 1, a do redis.call('EXPIRE', KEYS[j], ttl) end
    return status
  end
  out[#out + 1] = status
  out[#out + 1] = count
  if withHll then hk = hk + h end
end
for i = 1, a do redis.call('EXPIRE', KEYS[i], ttl) end
return out
