--! include _pending
-- Delete a job and everything it left in Redis: its record, timeline, webhook deliveries (their
-- attempts, and any still due), its place in every index, its idempotency key; waiting clients
-- are woken (they then find nothing). A worker still running it finds its claim gone and stops;
-- its result is dropped (finish.lua answers stale). The bucket's objects are the caller's to delete.
-- KEYS[1] job hash   KEYS[2] job timeline   KEYS[3] owner index   KEYS[4] all-jobs index
-- KEYS[5] queued jobs per owner (hash)   KEYS[6] queued-since zset   KEYS[7] webhook due zset
-- KEYS[8] results to sweep (zset)   KEYS[9..12] 'started' and 'completed' delivery hashes, their attempt lists
-- ARGV[1] job id   ARGV[2] the owner's idempotency key prefix   ARGV[3] the job's channel
-- ARGV[4] ARGV[5] the 'started' and 'completed' delivery ids
-- Returns the status the job had, or "missing".
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return 'missing'
end
local owner = redis.call('HGET', KEYS[1], 'owner') or ''
if status == 'queued' then
  redis.call('HINCRBY', KEYS[5], owner, -1)
end
local estimate = redis.call('HGET', KEYS[1], 'estimate')
if estimate then  -- it was queued or running: its GPU estimate leaves the owner's pending count
  add_pending('gpu:pending:' .. owner, -tonumber(estimate))
end
local idem = redis.call('HGET', KEYS[1], 'idempotency_key')
if idem and idem ~= '' then
  redis.call('DEL', ARGV[2] .. idem)
end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[6], ARGV[1])
redis.call('ZREM', KEYS[7], ARGV[4], ARGV[5])
redis.call('ZREM', KEYS[8], ARGV[1])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[9], KEYS[10], KEYS[11], KEYS[12])
redis.call('PUBLISH', ARGV[3], 0)
return status
