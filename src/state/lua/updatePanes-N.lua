--[[
  Applies one batch's pre-aggregated deltas to the panes of several groups of one partition
  (all keys share the partition's hash tag).

  KEYS[1 .. a] are the active-group lists of the panes of this call (STRING, group ids each
  followed by ','): a group id is appended when its pane record is first written, so a list holds
  the groups with data in its pane, once each; the id is read from the record's key
  (`...}:<gid>:<pane>`). Then each delta owns, in order, its pane record and, when its sixth
  argument is 1, one HyperLogLog key per switchable field (count_distinct only), in ARGV[4]'s
  order (h = #ARGV[4]). HyperLogLog keys are sent only when needed: a pane whose field switched
  (or would switch now) answers -2 without writing anything, and is sent again with them.
  The pane record (STRING): header line "<count> <last applied offset>[ x][ h<i>,<j>...]\n"
  (x: pruned; h: fields that switched to a HyperLogLog), then entries: one byte field code, the
  value length (one byte below 128, else two: 128 + high, low), the value; code 255 is the
  group key. Entries are canonical: equal bytes = equal (field, value).

  ARGV[1]   TTL in seconds of every key written
  ARGV[2]   prune bound K: once a pane's count reaches K its entries are dropped (0: never)
  ARGV[3]   exact threshold: a switchable field above this many values becomes a HyperLogLog
  ARGV[4]   switchable field codes, one byte each
  ARGV[5]   d: number of deltas
  ARGV[6]   a: number of active-group lists at the start of KEYS; then 7 arguments per delta,
            from ARGV[7 + (i-1)*7]:
            count delta (records in this batch for this group and pane), smallest and largest
            Kafka offset among those records, the entries (same encoding, the group key first;
            distinct within the delta), the offsets of the counted records, comma-separated
            (empty unless retrying a partial replay), 1 if its HyperLogLog keys follow its record,
            the index in KEYS of its pane's active-group list

  Returns { status_1, count_1, status_2, count_2, ... }: status 1 applied, 0 already applied
  (replay of an applied batch), -1 partial overlap with an applied batch and no offsets given,
  -2 HyperLogLog keys needed and not given: send that delta again with what it lacked. The count
  is guarded by the offset so a replay after a crash never counts twice; entries and
  HyperLogLogs are idempotent by nature. One GET and one SET per delta on the common path; a new
  record (most deltas of a backlog) is one SET NX GET (Redis >= 7.0), without walking its entries,
  and the group ids of the records a call creates are appended to each active list at once.
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

-- k: index of the delta's pane record in KEYS; its HyperLogLog of switchable field j is KEYS[k + j]
-- when withHll; KEYS[active] lists the groups of its pane.
-- Active-list index -> group ids (each followed by ',') of the records this call created: one
-- APPEND per list at the end, not one per record.
local appends = {}
local function flushAppends()
  for i, ids in pairs(appends) do redis.call('APPEND', KEYS[i], table.concat(ids)) end
end

local function apply(k, withHll, active, n, minOff, maxOff, maxOffText, incoming, offsets)
  local key = KEYS[k]
  local count, applied, pruned, body = 0, -1, false, ''
  local switched, switchedList = {}, {}
  local rec
  -- Writing a new pane record makes its group active in the pane.
  local function created()
    if not rec then
      local ids = appends[active]
      if not ids then ids = {}; appends[active] = ids end
      ids[#ids + 1] = string.match(key, '}:([^:]+):[^:]+$') .. ','
    end
  end
  if not withHll and offsets == '' and #incoming <= 2 * threshold and not (pruneAt > 0 and n >= pruneAt) then
    -- Most deltas of a backlog create their pane record: one SET writes it (the delta's entries
    -- are distinct, and too few to switch a field) unless it exists, and then answers it.
    rec = redis.call('SET', key, n .. ' ' .. maxOffText .. '\n' .. incoming, 'NX', 'GET', 'EX', ttl)
    if not rec then
      created()
      return 1, n
    end
  else
    rec = redis.call('GET', key)
  end
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
      for j = 1, h do redis.call('DEL', KEYS[k + j]) end
    end
    redis.call('SET', key, count .. ' ' .. maxOffText .. ' x\n', 'EX', ttl)
    created()
    return 1, count
  end

  if not rec and #incoming <= 2 * threshold then
    -- A new pane record: the delta's entries are distinct already, and fewer than the threshold
    -- (an entry is at least 2 bytes), so no field can switch: no walk, the entries as they came.
    redis.call('SET', key, count .. ' ' .. maxOffText .. '\n' .. incoming, 'EX', ttl)
    created()
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
      redis.call('PFADD', KEYS[k + slot], unpack(list, i, math.min(i + 999, #list)))
    end
  end
  -- A switched field's HyperLogLog lives as long as its pane record.
  for code in pairs(switched) do
    if hllSlot[code] then redis.call('EXPIRE', KEYS[k + hllSlot[code]], ttl) end
  end

  local header = count .. ' ' .. maxOffText
  if #switchedList > 0 then header = header .. ' h' .. table.concat(switchedList, ',') end
  redis.call('SET', key, header .. '\n' .. body, 'EX', ttl)
  created()
  return 1, count
end

local out = {}
local k = a + 1
for i = 1, d do
  local base = 6 + (i - 1) * 7
  local withHll = ARGV[base + 6] == '1'
  local status, count = apply(k, withHll, tonumber(ARGV[base + 7]), tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2]),
    tonumber(ARGV[base + 3]), ARGV[base + 3], ARGV[base + 4], ARGV[base + 5])
  if type(status) == 'table' then
    -- The records written so far stay (Redis does not roll back): list their groups.
    flushAppends()
    return status
  end
  out[#out + 1] = status
  out[#out + 1] = count
  k = k + 1
  if withHll then k = k + h end
end
flushAppends()
for i = 1, a do redis.call('EXPIRE', KEYS[i], ttl) end
return out
