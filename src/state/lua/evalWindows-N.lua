--[[
  Reads the aggregates of several (group, window) pairs of one partition (the union of each
  window's panes); all keys share the partition's hash tag.

  KEYS[1 .. n] are the pane hashes the call reads (field = group id, value = pane record, format
  in updatePanes-N.lua). Then, mode 'c', for each window whose flag in ARGV[6] is '1', in window
  order: per switchable field, per pane of the window, the pane's HyperLogLog of that field; and
  last a scratch key for merging exact values into a HyperLogLog. HyperLogLog keys are sent only
  when needed: a window with a switched pane and no HyperLogLog keys answers { -2 } and is sent
  again with them.

  ARGV[1]   p: number of panes of a window
  ARGV[2]   mode: 'c' counts, 'v' values
  ARGV[3]   switchable field codes, one byte each (h = its length)
  ARGV[4]   codes of the fields read by count_distinct, one byte each
  ARGV[5]   w: number of windows
  ARGV[6]   mode 'c': one character per window, '1' if its HyperLogLog keys are given
  ARGV[7]   n: number of pane hashes at the start of KEYS
  then per window, from ARGV[8 + (i-1)*(p+1)]: its group id, and the indexes in KEYS of its
  p pane hashes, oldest pane first

  Returns one reply per window; mode 'c': { count, pruned (0/1), then pairs field code, distinct
  count } for every distinct field with values or a HyperLogLog; mode 'v': the pane records
  (false when absent), which the caller decodes and unions (values() is read only for alerts).
  A window holding a pruned pane gets { count, 1 } at once: it can never match.
]]
local p = tonumber(ARGV[1])
local mode = ARGV[2]
local w = tonumber(ARGV[5])

local n = tonumber(ARGV[7])

-- The pane record of window i's group in its j-th pane.
local function record(i, j)
  local base = 7 + (i - 1) * (p + 1)
  return redis.call('HGET', KEYS[tonumber(ARGV[base + 1 + j])], ARGV[base + 1])
end

if mode == 'v' then
  local out = {}
  for i = 1, w do
    local recs = {}
    for j = 1, p do recs[j] = record(i, j) end
    out[i] = recs
  end
  return out
end

local switchable, distinctCodes = ARGV[3], ARGV[4]
local isDistinct, hllIndex = {}, {}
for i = 1, #distinctCodes do isDistinct[string.byte(distinctCodes, i)] = true end
for j = 1, #switchable do hllIndex[string.byte(switchable, j)] = j end
local scratch = KEYS[#KEYS]
local flags = ARGV[6]

-- hk: the window's HyperLogLog keys are KEYS[hk + (j - 1) * p + i] (switchable field j, pane i).
local function counts(win, hk, withHll)
  local count = 0
  local bodies = {}
  -- hllKeys[j] = HyperLogLog keys of switchable field j that hold values
  local hllKeys = {}
  for i = 1, p do
    local rec = record(win, i)
    if rec then
      local nl = string.find(rec, '\n', 1, true)
      local c, rest = string.match(string.sub(rec, 1, nl - 1), '^(%d+) %-?%d+(.*)$')
      count = count + tonumber(c)
      if string.find(rest, ' x', 1, true) then return { count, 1 } end
      local h = string.match(rest, ' h([%d,]+)')
      if h then
        if not withHll then return { -2 } end
        for code in string.gmatch(h, '%d+') do
          local j = hllIndex[tonumber(code)]
          if j then
            local list = hllKeys[j] or {}
            list[#list + 1] = KEYS[hk + (j - 1) * p + i]
            hllKeys[j] = list
          end
        end
      end
      bodies[#bodies + 1] = string.sub(rec, nl + 1)
    end
  end

  local seen, distinct, exactValues = {}, {}, {}
  for _, body in ipairs(bodies) do
    local pos, len = 1, #body
    while pos <= len do
      local code = string.byte(body, pos)
      local l = string.byte(body, pos + 1)
      local start = pos + 2
      if l >= 128 then
        l = (l - 128) * 256 + string.byte(body, pos + 2)
        start = pos + 3
      end
      local stop = start + l - 1
      if isDistinct[code] then
        local entry = string.sub(body, pos, stop)
        if not seen[entry] then
          seen[entry] = true
          distinct[code] = (distinct[code] or 0) + 1
          if hllIndex[code] then
            local list = exactValues[code] or {}
            list[#list + 1] = string.sub(body, start, stop)
            exactValues[code] = list
          end
        end
      end
      pos = stop + 1
    end
  end

  for j = 1, #switchable do
    local hlls = hllKeys[j]
    if hlls then
      -- Some pane switched: estimate over the exact values of the others plus the HyperLogLogs.
      local code = string.byte(switchable, j)
      local exact = exactValues[code] or {}
      redis.call('DEL', scratch)
      redis.call('PFADD', scratch)
      for i = 1, #exact, 1000 do
        redis.call('PFADD', scratch, unpack(exact, i, math.min(i + 999, #exact)))
      end
      redis.call('PFMERGE', scratch, scratch, unpack(hlls))
      distinct[code] = redis.call('PFCOUNT', scratch)
      redis.call('DEL', scratch)
    end
  end

  local out = { count, 0 }
  for code, c in pairs(distinct) do
    out[#out + 1] = code
    out[#out + 1] = c
  end
  return out
end

local out = {}
local hk = n
for i = 1, w do
  local withHll = string.sub(flags, i, i) == '1'
  out[i] = counts(i, hk, withHll)
  if withHll then hk = hk + #switchable * p end
end
return out
