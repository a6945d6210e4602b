-- A launch answered: the placeholder becomes the real node (still starting), recorded
-- before anything uses it, so a crash from here on leaves a record to clean up.
-- KEYS[1] node names (set)
-- ARGV[1] placeholder   ARGV[2] node name   ARGV[3] workload id   ARGV[4] expires   ARGV[5] now
-- Returns 1.
local old, new = 'pool:node:' .. ARGV[1], 'pool:node:' .. ARGV[2]
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('DEL', old)
redis.call('HSET', new, 'state', 'starting', 'busy', 0, 'workload', ARGV[3], 'expires', ARGV[4],
  'launched_at', ARGV[5], 'jobs_run', 0, 'gpu_seconds', 0, 'static', 0)
redis.call('SADD', KEYS[1], ARGV[2])
return 1
