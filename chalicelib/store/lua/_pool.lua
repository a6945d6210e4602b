-- Shared prelude of the pool scripts. Every pool key is built here from one prefix, the
-- first ARGV, which the prelude takes off ARGV (each script's ARGV[1] is the one after it).
-- The keys (chalicelib/store/pool.py builds the same names from the same prefix):
--   <prefix>nodes          set of node names
--   <prefix>node:<name>    hash: state (launching | starting | ready | stopping), busy, expires
--                          (0: never), static, workload, launched_at, ready_at, last_used,
--                          idle_since, launched_for, jobs_run, gpu_seconds, unhealthy_until,
--                          stopping_since, and after a failed stop: stop_failures, retry_stop_at, stop_reason
--   <prefix>leases         zset "<name>|<token>" -> lease expiry (unix s): slots jobs hold
--   <prefix>waiting        zset acquire token -> expiry (unix s): jobs waiting for a node
--   <prefix>stopped        zset "<name>|<launched_at>|<stopped_at>" -> stopped_at: nodes stopped lately
--   <prefix>held_at        when MAX_NODE_SECONDS_PER_HOUR last held back a launch (unix s)
local PREFIX = table.remove(ARGV, 1)
local NODES, LEASES, WAITING = PREFIX .. 'nodes', PREFIX .. 'leases', PREFIX .. 'waiting'
local STOPPED, HELD = PREFIX .. 'stopped', PREFIX .. 'held_at'

local function node_key(name)
  return PREFIX .. 'node:' .. name
end

-- Nodes that count against the cap: every one but those being stopped.
local function live_count()
  local total = 0
  for _, name in ipairs(redis.call('SMEMBERS', NODES)) do
    local state = redis.call('HGET', node_key(name), 'state')
    if state and state ~= 'stopping' then
      total = total + 1
    end
  end
  return total
end

-- Node-seconds billed in the hour before now: every launched node's time since it was launched
-- (or since an hour ago), and the part within the hour of the nodes stopped since.
local function billed_last_hour(now)
  local since, total = now - 3600, 0
  for _, name in ipairs(redis.call('SMEMBERS', NODES)) do
    local key = node_key(name)
    local launched = tonumber(redis.call('HGET', key, 'launched_at') or '0')
    if launched > 0 and redis.call('HGET', key, 'static') ~= '1' then
      total = total + math.max(0, now - math.max(launched, since))
    end
  end
  for _, entry in ipairs(redis.call('ZRANGEBYSCORE', STOPPED, since, '+inf')) do
    local launched, stopped = string.match(entry, '|([^|]*)|([^|]*)$')
    total = total + math.max(0, tonumber(stopped) - math.max(tonumber(launched), since))
  end
  return total
end

-- MAX_NODE_SECONDS_PER_HOUR: may a node be launched now, if it bills at least min_bill? (cap 0: no guard)
local function within_hourly_cap(now, cap, min_bill)
  if cap <= 0 or billed_last_hour(now) + min_bill <= cap then
    return true
  end
  redis.call('SET', HELD, now)
  return false
end
