--! include _pool
-- Reserve a launch that no job asked for (the janitor replacing a spent node), only under
-- the node cap. The placeholder record counts against the cap at once, as a job's launch
-- does in pool_acquire.
-- ARGV[1] placeholder name   ARGV[2] now   ARGV[3] node cap   ARGV[4] MAX_NODE_SECONDS_PER_HOUR (0: none)
-- ARGV[5] the least a new node bills
-- Returns 1 when reserved, 0 at the cap (of nodes, or of node-seconds in the last hour).
if live_count() >= tonumber(ARGV[3]) then
  return 0
end
if not within_hourly_cap(tonumber(ARGV[2]), tonumber(ARGV[4]), tonumber(ARGV[5])) then
  return 0
end
redis.call('HSET', node_key(ARGV[1]), 'state', 'launching', 'busy', 0, 'launched_at', ARGV[2],
  'jobs_run', 0, 'gpu_seconds', 0)
redis.call('SADD', NODES, ARGV[1])
return 1
