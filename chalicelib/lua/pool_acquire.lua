-- Take a slot on a GPU node for one job, or be told to launch one, or to wait.
-- Node records are hashes "pool:node:<name>" (state launching|starting|ready|stopping,
-- busy, expires, static, last_used, idle_since, jobs_run, gpu_seconds); KEYS[1] lists the names.
-- KEYS[1] node names (set)   KEYS[2] worker leases (zset "<name>|<token>" -> expiry unix s)
-- ARGV[1] now   ARGV[2] lease expiry   ARGV[3] the job could end by (now + max_time)
-- ARGV[4] jobs per node   ARGV[5] node cap   ARGV[6] queued jobs now   ARGV[7] scale-up threshold
-- (queued jobs per node)   ARGV[8] token   ARGV[9] placeholder name for a launch
-- Returns {"node", name} | {"launch", placeholder} | {"wait", reason}
local now = tonumber(ARGV[1])
for _, lease in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do
  redis.call('ZREM', KEYS[2], lease)
  local key = 'pool:node:' .. string.match(lease, '^(.*)|[^|]*$')
  if redis.call('EXISTS', key) == 1 and tonumber(redis.call('HINCRBY', key, 'busy', -1)) <= 0 then
    redis.call('HSET', key, 'busy', 0, 'idle_since', now)
  end
end
local per_node, job_end = tonumber(ARGV[4]), tonumber(ARGV[3])
local best, best_used, total, launching = nil, -1, 0, 0
for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = 'pool:node:' .. name
  local state = redis.call('HGET', key, 'state')
  if not state then
    redis.call('SREM', KEYS[1], name)
  elseif state ~= 'stopping' then
    total = total + 1
    if state == 'launching' or state == 'starting' then
      launching = launching + 1
    elseif state == 'ready' then
      local busy = tonumber(redis.call('HGET', key, 'busy') or '0')
      local expires = tonumber(redis.call('HGET', key, 'expires') or '0')
      local unhealthy_until = tonumber(redis.call('HGET', key, 'unhealthy_until') or '0')
      local used = tonumber(redis.call('HGET', key, 'last_used') or '0')
      -- Pack work onto the most recently used node, so the others go idle and stop.
      if busy < per_node and (expires == 0 or expires >= job_end) and unhealthy_until <= now and used > best_used then
        best, best_used = name, used
      end
    end
  end
end
if best then
  local key = 'pool:node:' .. best
  redis.call('HINCRBY', key, 'busy', 1)
  redis.call('HSET', key, 'last_used', now)
  redis.call('ZADD', KEYS[2], tonumber(ARGV[2]), best .. '|' .. ARGV[8])
  return {'node', best}
end
if total >= tonumber(ARGV[5]) then
  return {'wait', 'at the node cap'}
end
local capacity = math.max(1, total * per_node)
if launching == 0 or tonumber(ARGV[6]) / capacity > tonumber(ARGV[7]) then
  local key = 'pool:node:' .. ARGV[9]
  redis.call('HSET', key, 'state', 'launching', 'busy', 0, 'launched_at', now, 'jobs_run', 0, 'gpu_seconds', 0)
  redis.call('SADD', KEYS[1], ARGV[9])
  return {'launch', ARGV[9]}
end
return {'wait', 'a node is being launched'}
