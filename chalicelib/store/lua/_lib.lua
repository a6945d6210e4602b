--! include _pending
-- Shared prelude of the job scripts: the timeline, webhooks and ending a job.
--
-- timeline(job_key, events_key, channel)
--   Names the job whose events the script writes: events_key is its timeline (a list of
--   JSON objects {seq, at, type, message, ...}, at most EVENTS_CAP, the oldest dropped
--   first), kept as long as the job record; channel is where every change to the job is
--   published (the API's waiting clients listen there).
-- add_event(now, type, message, fields) -> seq
--   Appends one event (fields: a table of more keys) and publishes its seq on the channel.
-- finish_job(due_key, hook_key, job_id, status, now, result, err, err_kind, ttl)
--   Moves the job to a terminal status, records result or error, adds its 'finished'
--   event, and, when the job asked for a 'completed' webhook, writes the delivery to the
--   outbox in the same step: hash hook_key = {job_id, event, url, attempts, state,
--   created_at} and due_key (sorted set delivery id -> due unix time). A successful job's
--   progress becomes exactly 1. The job record and its timeline then live for ttl seconds.
-- release_estimate()
--   Takes the job's GPU estimate (set by create.lua) off its owner's pending count
--   (gpu:pending:<owner>, see chalicelib/store/keys.py): the job no longer waits or runs.
-- add_delivery(hook_key, due_key, job_id, event, url, now, ttl)
--   Writes one outbox entry (with the job's owner, whose key may sign it); the
--   delivery id is "<job_id>-<event>".

local EVENTS_CAP = 1000
local job = {}

local function timeline(job_key, events_key, channel)
  job.key, job.events, job.channel = job_key, events_key, channel
end

local function add_event(now, kind, message, fields)
  local seq = redis.call('HINCRBY', job.key, 'event_seq', 1)
  local event = fields or {}
  event.seq, event.at, event.type, event.message = seq, tonumber(now), kind, message
  redis.call('RPUSH', job.events, cjson.encode(event))
  redis.call('LTRIM', job.events, -EVENTS_CAP, -1)
  local ttl = redis.call('PTTL', job.key)
  if ttl > 0 then
    redis.call('PEXPIRE', job.events, ttl)
  end
  redis.call('PUBLISH', job.channel, seq)
  return seq
end

local function add_delivery(hook_key, due_key, job_id, event, url, now, ttl)
  local delivery_id = job_id .. '-' .. event
  if redis.call('EXISTS', hook_key) == 1 then
    return delivery_id
  end
  redis.call('HSET', hook_key, 'id', delivery_id, 'job_id', job_id, 'event', event, 'url', url,
    'attempts', 0, 'state', 'pending', 'created_at', now, 'owner', redis.call('HGET', job.key, 'owner') or '')
  redis.call('EXPIRE', hook_key, ttl)
  redis.call('ZADD', due_key, now, delivery_id)
  return delivery_id
end

local function wants(event)
  local url = redis.call('HGET', job.key, 'notify_url')
  if not url or url == '' then
    return false
  end
  local events = redis.call('HGET', job.key, 'notify_events')
  if not events or events == '' then
    events = 'completed'
  end
  if string.find(',' .. events .. ',', ',' .. event .. ',', 1, true) then
    return url
  end
  return false
end

local function release_estimate()
  local estimate = redis.call('HGET', job.key, 'estimate')
  if not estimate then
    return
  end
  add_pending('gpu:pending:' .. (redis.call('HGET', job.key, 'owner') or ''), -tonumber(estimate))
  redis.call('HDEL', job.key, 'estimate')
end

local function finish_job(due_key, hook_key, job_id, status, now, result, err, err_kind, ttl)
  local job_key = job.key
  redis.call('HSET', job_key, 'status', status, 'finished_at', now, 'updated_at', now)
  if status == 'success' then
    redis.call('HSET', job_key, 'progress', 1)  -- whatever the engine last reported
  end
  if result ~= '' then
    redis.call('HSET', job_key, 'result', result)
  end
  if err ~= '' then
    redis.call('HSET', job_key, 'error', err, 'error_kind', err_kind)
  else
    redis.call('HDEL', job_key, 'error', 'error_kind')
  end
  redis.call('HDEL', job_key, 'run_token', 'lease_until')
  release_estimate()
  local url = wants('completed')
  if url then
    add_delivery(hook_key, due_key, job_id, 'completed', url, now, ttl)
    redis.call('HSET', job_key, 'webhook', 'pending')
  end
  redis.call('EXPIRE', job_key, ttl)
  local fields = {status = status}
  if err ~= '' then
    fields.error = err
  end
  add_event(now, 'finished', status == 'success' and 'finished' or (status .. ': ' .. err), fields)
  if status ~= 'cancelled' and redis.call('HGET', job_key, 'cancel_requested') == '1' then
    add_event(now, 'cancel_too_late', 'the cancel came too late: the job had already ' ..
      (status == 'success' and 'succeeded' or 'ended ' .. status), {status = status})
  end
end

local TERMINAL = {success = true, failed = true, cancelled = true, timed_out = true}
