--[[
  Reads the aggregates of one group over one window (the union of its panes).

  KEYS[1 .. 2p]        per pane, oldest first: pane hash, pane set
  KEYS[2p+1 .. 2p+h*p] per switchable field, per pane: the pane's HyperLogLog of that field
  KEYS[last]           scratch key (same hash tag) for merging exact members into a HyperLogLog

  ARGV[1]   p: number of panes
  ARGV[2]   mode: 'c' counts, 'v' values
  ARGV[3]   h: number of switchable fields, followed by their field indexes

  Returns, mode 'c': { count, pruned (0/1), then pairs field index, distinct count } for every
  field with members or a HyperLogLog; mode 'v': { group key or false, members of the union }.
  A window holding a pruned pane returns { count, 1 } at once: it can never match.
]]
local p = tonumber(ARGV[1])
local mode = ARGV[2]
local h = tonumber(ARGV[3])

if mode == 'v' then
  local key = false
  for i = 1, p do
    local k = redis.call('HGET', KEYS[2 * i - 1], 'k')
    if k then key = k break end
  end
  local sets = {}
  for i = 1, p do sets[i] = KEYS[2 * i] end
  local members = redis.call('SUNION', unpack(sets))
  table.insert(members, 1, key)
  return members
end

local count = 0
for i = 1, p do
  local hash = KEYS[2 * i - 1]
  local v = redis.call('HMGET', hash, 'n', 'x')
  if v[2] == '1' then return { count + tonumber(v[1] or '0'), 1 } end
  count = count + tonumber(v[1] or '0')
end

local sets = {}
for i = 1, p do sets[i] = KEYS[2 * i] end
local distinct = {}
local members = redis.call('SUNION', unpack(sets))
for _, member in ipairs(members) do
  local colon = string.find(member, ':', 1, true)
  local idx = string.sub(member, 1, colon - 1)
  distinct[idx] = (distinct[idx] or 0) + 1
end

local scratch = KEYS[#KEYS]
for j = 1, h do
  local idx = ARGV[3 + j]
  local hlls = {}
  for i = 1, p do
    local hll = KEYS[2 * p + (j - 1) * p + i]
    if redis.call('EXISTS', hll) == 1 then hlls[#hlls + 1] = hll end
  end
  if #hlls > 0 then
    -- Some pane switched: estimate over the exact members of the others plus the HyperLogLogs.
    redis.call('DEL', scratch)
    local prefix = idx .. ':'
    local exact = {}
    for _, member in ipairs(members) do
      if string.sub(member, 1, #prefix) == prefix then exact[#exact + 1] = member end
    end
    redis.call('PFADD', scratch)
    for i = 1, #exact, 1000 do
      redis.call('PFADD', scratch, unpack(exact, i, math.min(i + 999, #exact)))
    end
    redis.call('PFMERGE', scratch, scratch, unpack(hlls))
    distinct[idx] = redis.call('PFCOUNT', scratch)
    redis.call('DEL', scratch)
  end
end

local out = { count, 0 }
for idx, c in pairs(distinct) do
  out[#out + 1] = tonumber(idx)
  out[#out + 1] = c
end
return out
