-- Reserve a launch that no job asked for (the janitor replacing a spent node), only under
-- the node cap. The placeholder record counts against the cap at once, as a job's launch
-- does in pool_acquire.
-- KEYS[1] node names (set)
-- ARGV[1] placeholder name   ARGV[2] now   ARGV[3] node cap
-- Returns 1 when reserved, 0 at the cap.
local total = 0
for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local state = redis.call('HGET', 'pool:node:' .. name, 'state')
  if state and state ~= 'stopping' then
    total = total + 1
  end
end
if total >= tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', 'pool:node:' .. ARGV[1], 'state', 'launching', 'busy', 0, 'launched_at', ARGV[2],
  'jobs_run', 0, 'gpu_seconds', 0)
redis.call('SADD', KEYS[1], ARGV[1])
return 1
