--! include _lib
-- The worker running a job adds an event to its timeline (inputs fetched, a node launched or
-- acquired, progress, outputs stored), only while the run is still its own. A 'progress' event
-- (fields.progress) also sets the job's progress, and sends a 'progress' webhook when the job asked for one, at most one per ARGV[9] seconds
-- (best effort: sent once, never retried).
-- KEYS[1] job hash   KEYS[2] job timeline   KEYS[3] webhook due zset
-- ARGV[1] run token   ARGV[2] now   ARGV[3] type   ARGV[4] message   ARGV[5] more fields (JSON object)
-- ARGV[6] the job's channel   ARGV[7] delivery hash prefix ('webhook:')   ARGV[8] record ttl s
-- ARGV[9] seconds between progress webhooks
-- Returns the event's seq, or 0 when the job is no longer this run's.
local job_key, now = KEYS[1], tonumber(ARGV[2])
timeline(job_key, KEYS[2], ARGV[6])
if redis.call('HGET', job_key, 'status') ~= 'running' or redis.call('HGET', job_key, 'run_token') ~= ARGV[1] then
  return 0
end
local fields = cjson.decode(ARGV[5])
local seq = add_event(ARGV[2], ARGV[3], ARGV[4], fields)
if ARGV[3] == 'progress' then
  redis.call('HSET', job_key, 'progress', fields.progress)
  local url = wants('progress')
  local last = tonumber(redis.call('HGET', job_key, 'progress_hook_at') or '0')
  if url and now - last >= tonumber(ARGV[9]) then
    local job_id = redis.call('HGET', job_key, 'id')
    local event = 'progress-' .. seq
    add_delivery(ARGV[7] .. job_id .. '-' .. event, KEYS[3], job_id, event, url, ARGV[2], tonumber(ARGV[8]))
    redis.call('HSET', ARGV[7] .. job_id .. '-' .. event, 'best_effort', '1')
    redis.call('HSET', job_key, 'progress_hook_at', now)
  end
end
return seq
