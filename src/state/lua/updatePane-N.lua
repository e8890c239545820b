--[[
  Applies one batch's pre-aggregated delta to one pane of one group.

  KEYS[1]   pane record (STRING): header line "<count> <last applied offset>[ x][ h<i>,<j>...]\n"
            (x: pruned; h: fields that switched to a HyperLogLog), then entries: one byte field
            code, the value length (one byte below 128, else two: 128 + high, low), the value;
            code 255 is the group key. Entries are canonical: equal bytes = equal (field, value).
  KEYS[2..] one HyperLogLog per switchable field (count_distinct only), in ARGV[7]'s order

  ARGV[1]   count delta (records in this batch for this group and pane)
  ARGV[2]   smallest Kafka offset among those records
  ARGV[3]   largest Kafka offset among those records
  ARGV[4]   TTL in seconds of every key written
  ARGV[5]   prune bound K: once the pane's count reaches K its entries are dropped (0: never)
  ARGV[6]   exact threshold: a switchable field above this many values becomes a HyperLogLog
  ARGV[7]   switchable field codes, one byte each (KEYS[1 + i] is the HyperLogLog of the i-th)
  ARGV[8]   the delta's entries (same encoding, the group key first; distinct within the delta)
  ARGV[9]   m: number of explicit offsets that follow (0 unless retrying a partial replay)
  ARGV[10 .. 9+m]  the offsets of the records counted in ARGV[1]

  Returns { status, count }: status 1 applied, 0 already applied (replay of an applied batch),
  -1 partial overlap with an applied batch and no offsets given: call again with the offsets.
  The count is guarded by the offset so a replay after a crash never counts twice; entries and
  HyperLogLogs are idempotent by nature. One GET and one SET on the common path.
]]
local key = KEYS[1]
local n = tonumber(ARGV[1])
local minOff, maxOff = tonumber(ARGV[2]), tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local pruneAt = tonumber(ARGV[5])
local threshold = tonumber(ARGV[6])
local codes = ARGV[7]
local incoming = ARGV[8]
local m = tonumber(ARGV[9])

local count, applied, pruned, body = 0, -1, false, ''
local switched, switchedList = {}, {}
local rec = redis.call('GET', key)
if rec then
  local nl = string.find(rec, '\n', 1, true)
  local c, o, rest = string.match(string.sub(rec, 1, nl - 1), '^(%d+) (%-?%d+)(.*)$')
  count, applied = tonumber(c), tonumber(o)
  pruned = string.find(rest, ' x', 1, true) ~= nil
  local h = string.match(rest, ' h([%d,]+)')
  if h then
    for i in string.gmatch(h, '%d+') do
      switched[tonumber(i)] = true
      switchedList[#switchedList + 1] = i
    end
  end
  body = string.sub(rec, nl + 1)
end

if applied >= maxOff then return { 0, count } end
if applied >= minOff then
  if m == 0 then return { -1, 0 } end
  n = 0
  for i = 1, m do
    if tonumber(ARGV[9 + i]) > applied then n = n + 1 end
  end
end
count = count + n

if pruned or (pruneAt > 0 and count >= pruneAt) then
  -- Every window holding this pane has count >= K: its entries can never matter again.
  if not pruned then
    for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
  end
  redis.call('SET', key, count .. ' ' .. ARGV[3] .. ' x\n', 'EX', ttl)
  return { 1, count }
end

-- Calls fn(code, from, to) for each entry of s (bytes from..to are the whole entry).
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

local hllOf = {}
for i = 1, #codes do hllOf[string.byte(codes, i)] = i + 1 end

local seen, exact = {}, {}
walk(body, function(code, from, _, to)
  seen[string.sub(body, from, to)] = true
  if hllOf[code] then exact[code] = (exact[code] or 0) + 1 end
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
    if hllOf[code] then exact[code] = (exact[code] or 0) + 1 end
  end
end)
if #added > 0 then body = body .. table.concat(added) end

-- Above the threshold ES|QL itself is approximate: move such a field to its HyperLogLog.
for code, c in pairs(exact) do
  if c > threshold then
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
  local hll = KEYS[hllOf[code]]
  if not hll then return redis.error_reply('updatePane: field ' .. code .. ' switched but has no HyperLogLog key') end
  for i = 1, #list, 1000 do
    redis.call('PFADD', hll, unpack(list, i, math.min(i + 999, #list)))
  end
end
-- A switched field's HyperLogLog lives as long as its pane record.
for code in pairs(switched) do
  if hllOf[code] then redis.call('EXPIRE', KEYS[hllOf[code]], ttl) end
end

local header = count .. ' ' .. ARGV[3]
if #switchedList > 0 then header = header .. ' h' .. table.concat(switchedList, ',') end
redis.call('SET', key, header .. '\n' .. body, 'EX', ttl)
return { 1, count }
