-- A started node passed its health check: make it ready and give its first slot to
-- the worker that launched it.
-- KEYS[1] worker leases (zset)
-- ARGV[1] node name   ARGV[2] now   ARGV[3] lease expiry   ARGV[4] token
-- Returns 1, or 0 when the node record is gone.
local key = 'pool:node:' .. ARGV[1]
if redis.call('EXISTS', key) == 0 then
  return 0
end
redis.call('HSET', key, 'state', 'ready', 'busy', 1, 'last_used', ARGV[2], 'ready_at', ARGV[2])
redis.call('ZADD', KEYS[1], tonumber(ARGV[3]), ARGV[1] .. '|' .. ARGV[4])
return 1
