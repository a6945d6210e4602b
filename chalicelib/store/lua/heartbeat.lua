-- The running worker extends its claim and learns whether to stop.
-- KEYS[1] job hash
-- ARGV[1] run token   ARGV[2] lease until   ARGV[3] now   ARGV[4] progress (0..1) or ""
-- Returns {"ok", cancel_requested} or {"stale"} when the job is no longer ours.
local job_key = KEYS[1]
if redis.call('HGET', job_key, 'status') ~= 'running'
   or redis.call('HGET', job_key, 'run_token') ~= ARGV[1] then
  return {'stale'}
end
redis.call('HSET', job_key, 'lease_until', ARGV[2], 'updated_at', ARGV[3])
if ARGV[4] ~= '' then
  redis.call('HSET', job_key, 'progress', ARGV[4])
end
return {'ok', redis.call('HGET', job_key, 'cancel_requested') or '0'}
