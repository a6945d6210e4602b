--! include _lib
-- Mark a job as the first version's POST /job/{id} did: any job, finished or not, takes the
-- status given (failed, cancelled or timed_out) and the error, and keeps it: `marked` says the
-- status was set by the client, so views show it as set. A queued job leaves the queue (its
-- delivery is skipped: start.lua runs only queued jobs); a running one loses its claim (its
-- worker's heartbeat and finish find no run token) and is flagged so its engine stops. No
-- webhook is sent for a mark; one already due for the job is left as it is.
-- KEYS[1] job hash   KEYS[2] queued jobs per owner (hash)   KEYS[3] queued-since zset   KEYS[4] job timeline
-- ARGV[1] job id   ARGV[2] now   ARGV[3] ttl s   ARGV[4] the job's channel   ARGV[5] status   ARGV[6] error
-- Returns the status the job had, or "missing".
local job_key = KEYS[1]
timeline(job_key, KEYS[4], ARGV[4])
local status = redis.call('HGET', job_key, 'status')
if not status then
  return 'missing'
end
if status == 'queued' then
  redis.call('HINCRBY', KEYS[2], redis.call('HGET', job_key, 'owner') or '', -1)
  redis.call('ZREM', KEYS[3], ARGV[1])
end
if status == 'running' then
  redis.call('HSET', job_key, 'cancel_requested', '1')
end
if not TERMINAL[status] then
  redis.call('HSET', job_key, 'finished_at', ARGV[2])
  release_estimate()
end
redis.call('HSET', job_key, 'status', ARGV[5], 'marked', '1', 'error', ARGV[6], 'error_kind', 'marked',
  'updated_at', ARGV[2])
redis.call('HDEL', job_key, 'run_token', 'lease_until')
if not TERMINAL[status] then
  redis.call('EXPIRE', job_key, tonumber(ARGV[3]))  -- an ended job keeps the expiry it had (its results')
end
add_event(ARGV[2], 'marked', 'marked ' .. ARGV[5] .. ' by the client: ' .. ARGV[6],
  {status = ARGV[5], error = ARGV[6], previous = status})
return status
