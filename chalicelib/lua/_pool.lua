-- Shared prelude of the pool scripts. Every pool key is built here from one prefix, the
-- first ARGV, which the prelude takes off ARGV (each script's ARGV[1] is the one after it).
-- The keys (chalicelib/poolstore.py builds the same names from the same prefix):
--   <prefix>nodes          set of node names
--   <prefix>node:<name>    hash: state (launching | starting | ready | stopping), busy, expires
--                          (0: never), static, workload, launched_at, ready_at, last_used,
--                          idle_since, launched_for, jobs_run, gpu_seconds, unhealthy_until,
--                          stopping_since, and after a failed stop: stop_failures, retry_stop_at, stop_reason
--   <prefix>leases         zset "<name>|<token>" -> lease expiry (unix s): slots jobs hold
--   <prefix>waiting        zset acquire token -> expiry (unix s): jobs waiting for a node
local PREFIX = table.remove(ARGV, 1)
local NODES, LEASES, WAITING = PREFIX .. 'nodes', PREFIX .. 'leases', PREFIX .. 'waiting'

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
