--! include _lib
-- The worker that holds the run token ends the job; anyone else is ignored, so
-- a stale or duplicate worker can never overwrite a result.
-- KEYS[1] job hash   KEYS[2] webhook due zset   KEYS[3] 'completed' delivery hash   KEYS[4] job timeline
-- ARGV[1] job id   ARGV[2] run token   ARGV[3] status   ARGV[4] now
-- ARGV[5] result JSON or ""   ARGV[6] error or ""   ARGV[7] error kind   ARGV[8] ttl s
-- ARGV[9] gpu seconds or ""   ARGV[10] the job's channel   ARGV[11] GPU price per second or ""
-- ARGV[12] today (UTC, YYYYMMDD)   ARGV[13] how long usage is kept, s
-- The job's GPU seconds (and cost, at the price) are added to its owner's usage of the day
-- (usage:<day>:<owner>, usage-owners:<day>: chalicelib/store/keys.py), and to its type's moving mean
-- (gpu:mean:<type>), the estimate create.lua admits the next job of that type at.
-- Returns "ok" or "stale".
local job_key = KEYS[1]
timeline(job_key, KEYS[4], ARGV[10])
if redis.call('HGET', job_key, 'status') ~= 'running'
   or redis.call('HGET', job_key, 'run_token') ~= ARGV[2] then
  return 'stale'
end
local owner = redis.call('HGET', job_key, 'owner') or ''
local usage = 'usage:' .. ARGV[12] .. ':' .. owner
redis.call('HINCRBY', usage, 'jobs', 1)
if ARGV[9] ~= '' then
  local gpu = tonumber(ARGV[9])
  redis.call('HSET', job_key, 'gpu_seconds', ARGV[9])
  redis.call('HINCRBYFLOAT', usage, 'gpu_seconds', gpu)
  if ARGV[11] ~= '' then
    local cost = gpu * tonumber(ARGV[11])
    redis.call('HSET', job_key, 'cost', cost)
    redis.call('HINCRBYFLOAT', usage, 'cost', cost)
  end
  local mean_key = 'gpu:mean:' .. (redis.call('HGET', job_key, 'type') or '')
  local mean = tonumber(redis.call('GET', mean_key) or '-1')
  redis.call('SET', mean_key, tostring(mean < 0 and gpu or 0.8 * mean + 0.2 * gpu))
end
redis.call('EXPIRE', usage, tonumber(ARGV[13]))
redis.call('SADD', 'usage-owners:' .. ARGV[12], owner)
redis.call('EXPIRE', 'usage-owners:' .. ARGV[12], tonumber(ARGV[13]))
finish_job(KEYS[2], KEYS[3], ARGV[1], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8]))
return 'ok'
