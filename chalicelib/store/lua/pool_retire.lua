--! include _pool
-- Take a node out of service before stopping it: only when no job holds it, unless forced
-- (it failed its health check). Stopping nodes get no new jobs.
-- ARGV[1] node name   ARGV[2] "1" to force   ARGV[3] now
-- Returns 1 when it may be stopped now, 0 otherwise.
local key = node_key(ARGV[1])
local state = redis.call('HGET', key, 'state')
if not state or state == 'stopping' then
  return 0
end
if ARGV[2] ~= '1' and tonumber(redis.call('HGET', key, 'busy') or '0') > 0 then
  return 0
end
redis.call('HSET', key, 'state', 'stopping', 'stopping_since', ARGV[3])
return 1
