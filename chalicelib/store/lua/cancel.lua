--! include _lib
-- Cancel a job: a queued one ends at once, a running one is flagged for its worker.
-- KEYS[1] job hash   KEYS[2] webhook due zset   KEYS[3] 'completed' delivery hash
-- KEYS[4] queued jobs per owner (hash owner -> count)   KEYS[5] queued-since zset   KEYS[6] job timeline
-- ARGV[1] job id   ARGV[2] now   ARGV[3] ttl s   ARGV[4] the job's channel
-- Returns {"cancelled"} | {"cancelling"} | {"terminal", status} | {"missing"}
local job_key = KEYS[1]
timeline(job_key, KEYS[6], ARGV[4])
local status = redis.call('HGET', job_key, 'status')
if not status then
  return {'missing'}
end
if TERMINAL[status] then
  return {'terminal', status}
end
if status == 'queued' then
  redis.call('HINCRBY', KEYS[4], redis.call('HGET', job_key, 'owner') or '', -1)
  redis.call('ZREM', KEYS[5], ARGV[1])
  finish_job(KEYS[2], KEYS[3], ARGV[1], 'cancelled', ARGV[2], '', 'cancelled by the client',
    'cancelled', tonumber(ARGV[3]))
  return {'cancelled'}
end
if redis.call('HGET', job_key, 'cancel_requested') ~= '1' then
  redis.call('HSET', job_key, 'cancel_requested', '1', 'updated_at', ARGV[2])
  add_event(ARGV[2], 'cancel_requested', 'cancel requested; the worker is stopping the job')
end
return {'cancelling'}
