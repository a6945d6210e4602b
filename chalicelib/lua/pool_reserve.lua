--! include _pool
-- Reserve a launch that no job asked for (the janitor replacing a spent node), only under
-- the node cap. The placeholder record counts against the cap at once, as a job's launch
-- does in pool_acquire.
-- ARGV[1] placeholder name   ARGV[2] now   ARGV[3] node cap
-- Returns 1 when reserved, 0 at the cap.
if live_count() >= tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', node_key(ARGV[1]), 'state', 'launching', 'busy', 0, 'launched_at', ARGV[2],
  'jobs_run', 0, 'gpu_seconds', 0)
redis.call('SADD', NODES, ARGV[1])
return 1
