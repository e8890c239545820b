--[[
  Applies one batch's pre-aggregated delta to one pane of one group.

  KEYS[1]   pane hash: n (count), o (last applied Kafka offset), k (group key), x (pruned),
            c<i> (exact member count of field i), h<i> ('1' once field i is a HyperLogLog)
  KEYS[2]   pane set: members "<field index>:<value>"
  KEYS[3..] one HyperLogLog key per field that may switch (count_distinct only)

  ARGV[1]   count delta (records in this batch for this group and pane)
  ARGV[2]   smallest Kafka offset among those records
  ARGV[3]   largest Kafka offset among those records
  ARGV[4]   TTL in seconds of every key written
  ARGV[5]   prune bound K: once the pane's count reaches K its sets are dropped (0: never)
  ARGV[6]   exact threshold: a switchable field above this many members becomes a HyperLogLog
  ARGV[7]   group key (JSON), kept for alerts
  ARGV[8]   m: number of explicit offsets that follow (0 unless retrying a partial replay)
  ARGV[9 .. 8+m]   the offsets of the records counted in ARGV[1]
  then      f: number of fields, and per field: field index, KEYS position of its HyperLogLog
            (0 if it never switches), member count c, then c members

  Returns { status, count }: status 1 applied, 0 already applied (replay of an applied batch),
  -1 partial overlap with an applied batch and no offsets given: call again with the offsets.
  The count is guarded by the offset so a replay after a crash never counts twice; sets and
  HyperLogLogs are idempotent by nature.
]]
local hash, set = KEYS[1], KEYS[2]
local n = tonumber(ARGV[1])
local minOff, maxOff = tonumber(ARGV[2]), tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local pruneAt = tonumber(ARGV[5])
local threshold = tonumber(ARGV[6])
local m = tonumber(ARGV[8])

local applied = tonumber(redis.call('HGET', hash, 'o') or '-1')
if applied >= maxOff then
  return { 0, tonumber(redis.call('HGET', hash, 'n') or '0') }
end
if applied >= minOff then
  if m == 0 then return { -1, 0 } end
  n = 0
  for i = 1, m do
    if tonumber(ARGV[8 + i]) > applied then n = n + 1 end
  end
end

local count = redis.call('HINCRBY', hash, 'n', n)
redis.call('HSET', hash, 'o', ARGV[3], 'k', ARGV[7])
redis.call('EXPIRE', hash, ttl)

if pruneAt > 0 and count >= pruneAt then
  -- Every window holding this pane has count >= K: the sets can never matter again.
  if redis.call('HSETNX', hash, 'x', '1') == 1 then
    redis.call('DEL', set)
    for i = 3, #KEYS do redis.call('DEL', KEYS[i]) end
  end
  return { 1, count }
end

local pos = 9 + m
local fields = tonumber(ARGV[pos]); pos = pos + 1
local touchedSet = false
for _ = 1, fields do
  local idx, hllPos, c = ARGV[pos], tonumber(ARGV[pos + 1]), tonumber(ARGV[pos + 2])
  pos = pos + 3
  local first, last = pos, pos + c - 1
  pos = pos + c
  if c > 0 then
    if hllPos > 0 and redis.call('HGET', hash, 'h' .. idx) == '1' then
      for i = first, last, 1000 do
        redis.call('PFADD', KEYS[hllPos], unpack(ARGV, i, math.min(i + 999, last)))
      end
      redis.call('EXPIRE', KEYS[hllPos], ttl)
    else
      local added = 0
      for i = first, last, 1000 do
        added = added + redis.call('SADD', set, unpack(ARGV, i, math.min(i + 999, last)))
      end
      touchedSet = true
      if hllPos > 0 and added > 0 then
        local exact = redis.call('HINCRBY', hash, 'c' .. idx, added)
        if exact > threshold then
          -- Above the threshold ES|QL itself is approximate: move this field to a HyperLogLog.
          local prefix = idx .. ':'
          local moved = {}
          for _, member in ipairs(redis.call('SMEMBERS', set)) do
            if string.sub(member, 1, #prefix) == prefix then moved[#moved + 1] = member end
          end
          for i = 1, #moved, 1000 do
            local last2 = math.min(i + 999, #moved)
            redis.call('PFADD', KEYS[hllPos], unpack(moved, i, last2))
            redis.call('SREM', set, unpack(moved, i, last2))
          end
          redis.call('HSET', hash, 'h' .. idx, '1')
          redis.call('EXPIRE', KEYS[hllPos], ttl)
        end
      end
    end
  end
end
if touchedSet then redis.call('EXPIRE', set, ttl) end
return { 1, count }
