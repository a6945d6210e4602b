--! include _pool
-- Take a slot on a GPU node for one job, or be told to launch one, or to wait.
-- Keys: see _pool.lua.
-- ARGV[1] now   ARGV[2] lease expiry   ARGV[3] the job could end by (now + max_time)
-- ARGV[4] jobs per node   ARGV[5] node cap   ARGV[6] queued jobs now   ARGV[7] scale-up threshold
-- (jobs waiting or queued, per node slot)   ARGV[8] token   ARGV[9] placeholder name for a launch
-- ARGV[10] "1" when this caller may launch (it has no launch of its own in flight)
-- ARGV[11] seconds this job has waited   ARGV[12] launch anyway after waiting this long
-- ARGV[13] placement: "pack" (the most recently used node with a free slot, so the others
-- go idle and stop) or "spread" (the least busy node, then the one idle longest, so every
-- node that is up keeps being used and stays warm for the next burst)
-- ARGV[14] MAX_NODE_SECONDS_PER_HOUR (0: none)   ARGV[15] the least a new node bills (launch + idle timeout)
--
-- When to launch: when no node could take this job (none, or all expire before it could
-- end, or are unhealthy); when demand (jobs queued + jobs waiting
-- here) per node slot passes the threshold (a burst); or when this job has waited
-- ARGV[12] seconds and nothing is launching. A single job finding every node busy waits
-- for a slot instead: a launch takes longer than most jobs, and it would idle afterwards.
-- A launch for a burst launches as many nodes at once as the demand needs (demand per node slot at
-- most the threshold), up to the cap and the hourly guard: the first is this job's, the others
-- (placeholder names "<placeholder>+<n>") are launched by the same caller for whichever job comes.
-- Returns {"node", name} | {"launch", placeholder, more placeholders...} | {"wait", reason}
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', WAITING, '-inf', now)
for _, lease in ipairs(redis.call('ZRANGEBYSCORE', LEASES, '-inf', now)) do
  redis.call('ZREM', LEASES, lease)
  local key = node_key(string.match(lease, '^(.*)|[^|]*$'))
  if redis.call('EXISTS', key) == 1 and tonumber(redis.call('HINCRBY', key, 'busy', -1)) <= 0 then
    redis.call('HSET', key, 'busy', 0, 'idle_since', now)
  end
end
local per_node, job_end = tonumber(ARGV[4]), tonumber(ARGV[3])
local spread = ARGV[13] == 'spread'
local best, best_rank, total, launching, usable = nil, nil, 0, 0, 0
for _, name in ipairs(redis.call('SMEMBERS', NODES)) do
  local key = node_key(name)
  local state = redis.call('HGET', key, 'state')
  if not state then
    redis.call('SREM', NODES, name)
  elseif state ~= 'stopping' then
    total = total + 1
    if state == 'launching' or state == 'starting' then
      launching = launching + 1
      usable = usable + 1
    elseif state == 'ready' then
      local busy = tonumber(redis.call('HGET', key, 'busy') or '0')
      local expires = tonumber(redis.call('HGET', key, 'expires') or '0')
      local unhealthy_until = tonumber(redis.call('HGET', key, 'unhealthy_until') or '0')
      local used = tonumber(redis.call('HGET', key, 'last_used') or '0')
      -- A node launched for this very job is the longest-lived there can be: it may take it.
      local lasts = expires == 0 or expires >= job_end or redis.call('HGET', key, 'launched_for') == ARGV[8]
      if lasts and unhealthy_until <= now then
        usable = usable + 1
      end
      if busy < per_node and lasts and unhealthy_until <= now then
        -- Lower ranks win: packing prefers the latest used; spreading the least busy, then the
        -- longest idle.
        local rank = spread and (busy * 1e12 + used) or -used
        if best_rank == nil or rank < best_rank then
          best, best_rank = name, rank
        end
      end
    end
  end
end
if best then
  redis.call('ZREM', WAITING, ARGV[8])
  local key = node_key(best)
  redis.call('HINCRBY', key, 'busy', 1)
  redis.call('HSET', key, 'last_used', now)
  redis.call('ZADD', LEASES, tonumber(ARGV[2]), best .. '|' .. ARGV[8])
  return {'node', best}
end
redis.call('ZADD', WAITING, tonumber(ARGV[2]), ARGV[8])
if total >= tonumber(ARGV[5]) then
  return {'wait', 'at the node cap'}
end
local capacity = math.max(1, usable * per_node)
local demand = tonumber(ARGV[6]) + redis.call('ZCARD', WAITING)
local waited_long = launching == 0 and tonumber(ARGV[11]) >= tonumber(ARGV[12])
if ARGV[10] == '1' and (usable == 0 or waited_long or demand / capacity > tonumber(ARGV[7])) then
  if not within_hourly_cap(now, tonumber(ARGV[14]), tonumber(ARGV[15])) then
    return {'wait', 'MAX_NODE_SECONDS_PER_HOUR holds back a launch: the last hour has billed as much as it may'}
  end
  local launches = {'launch', ARGV[9]}
  local needed = math.ceil(demand / (per_node * math.max(tonumber(ARGV[7]), 0.001))) - usable
  local room = tonumber(ARGV[5]) - total
  for n = 1, math.min(needed, room) do
    if n > 1 and not within_hourly_cap(now, tonumber(ARGV[14]), n * tonumber(ARGV[15])) then
      break
    end
    local name = n == 1 and ARGV[9] or (ARGV[9] .. '+' .. (n - 1))
    redis.call('HSET', node_key(name), 'state', 'launching', 'busy', 0, 'launched_at', now, 'jobs_run', 0,
      'gpu_seconds', 0)
    redis.call('SADD', NODES, name)
    if n > 1 then
      launches[#launches + 1] = name
    end
  end
  if needed < 1 then  -- waited long, or no usable node: this job's launch alone
    redis.call('HSET', node_key(ARGV[9]), 'state', 'launching', 'busy', 0, 'launched_at', now, 'jobs_run', 0,
      'gpu_seconds', 0)
    redis.call('SADD', NODES, ARGV[9])
  end
  return launches
end
if launching > 0 then
  return {'wait', 'a node is being launched'}
end
if usable == 0 then
  return {'wait', 'no node lives long enough for this job'}
end
return {'wait', 'every node is busy'}
