--! include _pool
-- A started node passed its health check: it is ready, with every slot free; the
-- waiting job that launched it (or any other) takes a slot through pool_acquire.
-- ARGV[1] node name   ARGV[2] now   ARGV[3] token of the job that launched it (it may use the
-- node even if the node expires before that job's max_time could end)   ARGV[4] idle since:
-- now, or for a replacement (pool_reserve) the idle clock of the node it replaces, so that
-- unused it stops when the old one would have
-- Returns 1, or 0 when the node record is gone (the janitor gave up on it) or the node is
-- already ready (the launcher and the janitor may both see it pass; jobs may hold slots).
local key = node_key(ARGV[1])
local state = redis.call('HGET', key, 'state')
if not state or state == 'ready' or state == 'stopping' then
  return 0
end
redis.call('HSET', key, 'state', 'ready', 'busy', 0, 'last_used', ARGV[2], 'ready_at', ARGV[2],
  'idle_since', ARGV[4], 'launched_for', ARGV[3])
return 1
