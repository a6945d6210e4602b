--! include _pool
-- A launch answered: the placeholder becomes the real node (still starting), recorded
-- before anything uses it, so a crash from here on leaves a record to clean up.
-- ARGV[1] placeholder   ARGV[2] node name   ARGV[3] workload id   ARGV[4] expires   ARGV[5] now
-- Returns 1.
local old, new = node_key(ARGV[1]), node_key(ARGV[2])
redis.call('SREM', NODES, ARGV[1])
redis.call('DEL', old)
redis.call('HSET', new, 'state', 'starting', 'busy', 0, 'workload', ARGV[3], 'expires', ARGV[4],
  'launched_at', ARGV[5], 'jobs_run', 0, 'gpu_seconds', 0, 'static', 0)
redis.call('SADD', NODES, ARGV[2])
return 1
