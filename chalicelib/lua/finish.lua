--! include _lib
-- The worker that holds the run token ends the job; anyone else is ignored, so
-- a stale or duplicate worker can never overwrite a result.
-- KEYS[1] job hash   KEYS[2] webhook due zset   KEYS[3] 'completed' delivery hash   KEYS[4] job timeline
-- ARGV[1] job id   ARGV[2] run token   ARGV[3] status   ARGV[4] now
-- ARGV[5] result JSON or ""   ARGV[6] error or ""   ARGV[7] error kind   ARGV[8] ttl s
-- ARGV[9] gpu seconds or ""   ARGV[10] the job's channel
-- Returns "ok" or "stale".
local job_key = KEYS[1]
timeline(job_key, KEYS[4], ARGV[10])
if redis.call('HGET', job_key, 'status') ~= 'running'
   or redis.call('HGET', job_key, 'run_token') ~= ARGV[2] then
  return 'stale'
end
if ARGV[9] ~= '' then
  redis.call('HSET', job_key, 'gpu_seconds', ARGV[9])
end
finish_job(KEYS[2], KEYS[3], ARGV[1], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8]))
return 'ok'
