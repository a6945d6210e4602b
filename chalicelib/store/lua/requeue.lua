--! include _lib
-- The worker that holds the run token gives the job back after a retryable
-- failure (the node's fault) or on shutdown; the next start counts an attempt.
-- KEYS[1] job hash   KEYS[2] queued jobs per owner (hash owner -> count)
-- KEYS[3] queued-since zset (job id -> unix s)   KEYS[4] job timeline
-- ARGV[1] run token   ARGV[2] now   ARGV[3] last error or ""   ARGV[4] "1" to refund the attempt
-- ARGV[5] the job's channel   ARGV[6] seconds before it is tried again
-- Returns "ok" or "stale".
local job_key = KEYS[1]
timeline(job_key, KEYS[4], ARGV[5])
if redis.call('HGET', job_key, 'status') ~= 'running'
   or redis.call('HGET', job_key, 'run_token') ~= ARGV[1] then
  return 'stale'
end
redis.call('HSET', job_key, 'status', 'queued', 'updated_at', ARGV[2])
redis.call('HINCRBY', KEYS[2], redis.call('HGET', job_key, 'owner') or '', 1)
redis.call('ZADD', KEYS[3], ARGV[2], redis.call('HGET', job_key, 'id'))
redis.call('HDEL', job_key, 'run_token', 'lease_until', 'progress')
if ARGV[3] ~= '' then
  redis.call('HSET', job_key, 'last_error', ARGV[3])
end
if ARGV[4] == '1' then
  redis.call('HINCRBY', job_key, 'attempt', -1)
  add_event(ARGV[2], 'requeued', 'given back to the queue (its worker is shutting down)')
else
  add_event(ARGV[2], 'retry', 'will be tried again: ' .. ARGV[3],
    {reason = ARGV[3], delay_s = tonumber(ARGV[6])})
end
return 'ok'
