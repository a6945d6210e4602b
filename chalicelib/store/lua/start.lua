--! include _lib
-- A worker takes a delivered job id: queued (or running with an expired lease,
-- i.e. its worker died) -> running, attempt + 1.
-- KEYS[1] job hash   KEYS[2] queue head (highest started seq)
-- KEYS[3] webhook due zset   KEYS[4] 'started' delivery hash   KEYS[5] 'completed' delivery hash
-- KEYS[6] queued jobs per owner (hash owner -> count): a queued job leaving the line counts down
-- KEYS[7] queued-since zset (job id -> unix s)   KEYS[8] job timeline
-- ARGV[1] job id   ARGV[2] now (unix s)   ARGV[3] run token   ARGV[4] lease until (unix s)
-- ARGV[5] worker id   ARGV[6] result ttl s   ARGV[7] the job's channel
-- Returns {"run", attempt} | {"skip", status} | {"busy", lease_until} | {"missing"}
--       | {"expired"} (deadline passed: timed_out) | {"exhausted", attempts} (failed)
local job_key = KEYS[1]
timeline(job_key, KEYS[8], ARGV[7])
local status = redis.call('HGET', job_key, 'status')
if not status then
  return {'missing'}
end
if TERMINAL[status] then
  return {'skip', status}
end
local now = tonumber(ARGV[2])
if status == 'running' then
  local lease_until = tonumber(redis.call('HGET', job_key, 'lease_until') or '0')
  if lease_until > now then
    return {'busy', tostring(lease_until)}
  end
end
local ttl = tonumber(ARGV[6])
if status == 'queued' then
  redis.call('HINCRBY', KEYS[6], redis.call('HGET', job_key, 'owner') or '', -1)
  redis.call('ZREM', KEYS[7], ARGV[1])
end
local seq = tonumber(redis.call('HGET', job_key, 'seq') or '0')
if seq > tonumber(redis.call('GET', KEYS[2]) or '0') then
  redis.call('SET', KEYS[2], seq)
end
local deadline = tonumber(redis.call('HGET', job_key, 'deadline_at') or '0')
if deadline > 0 and now >= deadline then
  finish_job(KEYS[3], KEYS[5], ARGV[1], 'timed_out', ARGV[2], '',
    'the job could not finish before its complete_in deadline', 'deadline', ttl)
  return {'expired'}
end
local attempt = tonumber(redis.call('HGET', job_key, 'attempt') or '0') + 1
local max_attempts = tonumber(redis.call('HGET', job_key, 'max_attempts') or '3')
if attempt > max_attempts then
  local last = redis.call('HGET', job_key, 'last_error') or 'the worker running it was lost'
  finish_job(KEYS[3], KEYS[5], ARGV[1], 'failed', ARGV[2], '',
    'gave up after ' .. max_attempts .. ' attempts: ' .. last, 'attempts', ttl)
  return {'exhausted', tostring(max_attempts)}
end
redis.call('HSET', job_key, 'status', 'running', 'attempt', attempt, 'run_token', ARGV[3],
  'lease_until', ARGV[4], 'worker', ARGV[5], 'updated_at', ARGV[2], 'cancel_requested', '0')
redis.call('HSETNX', job_key, 'started_at', ARGV[2])
redis.call('HDEL', job_key, 'progress')
if attempt == 1 then
  local url = wants('started')
  if url then
    add_delivery(KEYS[4], KEYS[3], ARGV[1], 'started', url, ARGV[2], ttl)
  end
end
add_event(ARGV[2], 'started', attempt == 1 and 'started' or ('started again, attempt ' .. attempt),
  {attempt = attempt, worker = ARGV[5]})
return {'run', attempt}
