--! include _pool
-- A job is done with its node: free the slot and count the work.
-- ARGV[1] node name   ARGV[2] token   ARGV[3] now   ARGV[4] gpu seconds of the job
-- Returns 1, or 0 when the lease had already expired (the slot was reclaimed).
if redis.call('ZREM', LEASES, ARGV[1] .. '|' .. ARGV[2]) == 0 then
  return 0
end
local key = node_key(ARGV[1])
if redis.call('EXISTS', key) == 0 then
  return 1
end
if tonumber(redis.call('HINCRBY', key, 'busy', -1)) <= 0 then
  redis.call('HSET', key, 'busy', 0, 'idle_since', ARGV[3])
end
redis.call('HINCRBY', key, 'jobs_run', 1)
redis.call('HINCRBYFLOAT', key, 'gpu_seconds', ARGV[4])
return 1
