-- Shared prelude, prepended to job scripts that can end a job.
--
-- finish_job(job_key, due_key, hook_key, job_id, status, now, result, err, err_kind, ttl)
--   Moves a job to a terminal status, records result or error, and, when the job
--   asked for a 'completed' webhook, writes the delivery to the outbox in the same
--   step: hash hook_key = {job_id, event, url, attempts, state, created_at} and
--   due_key (sorted set delivery id -> due unix time). The job record then lives
--   for ttl seconds.
-- add_delivery(job_key, hook_key, due_key, job_id, event, url, now, ttl)
--   Writes one outbox entry (with the job's owner, whose key may sign it); the
--   delivery id is "<job_id>-<event>".

local function add_delivery(job_key, hook_key, due_key, job_id, event, url, now, ttl)
  local delivery_id = job_id .. '-' .. event
  if redis.call('EXISTS', hook_key) == 1 then
    return delivery_id
  end
  redis.call('HSET', hook_key, 'id', delivery_id, 'job_id', job_id, 'event', event, 'url', url,
    'attempts', 0, 'state', 'pending', 'created_at', now, 'owner', redis.call('HGET', job_key, 'owner') or '')
  redis.call('EXPIRE', hook_key, ttl)
  redis.call('ZADD', due_key, now, delivery_id)
  return delivery_id
end

local function wants(job_key, event)
  local url = redis.call('HGET', job_key, 'notify_url')
  if not url or url == '' then
    return false
  end
  local events = redis.call('HGET', job_key, 'notify_events')
  if not events or events == '' then
    events = 'completed'
  end
  if string.find(',' .. events .. ',', ',' .. event .. ',', 1, true) then
    return url
  end
  return false
end

local function finish_job(job_key, due_key, hook_key, job_id, status, now, result, err, err_kind, ttl)
  redis.call('HSET', job_key, 'status', status, 'finished_at', now, 'updated_at', now)
  if result ~= '' then
    redis.call('HSET', job_key, 'result', result)
  end
  if err ~= '' then
    redis.call('HSET', job_key, 'error', err, 'error_kind', err_kind)
  else
    redis.call('HDEL', job_key, 'error', 'error_kind')
  end
  redis.call('HDEL', job_key, 'run_token', 'lease_until')
  local url = wants(job_key, 'completed')
  if url then
    add_delivery(job_key, hook_key, due_key, job_id, 'completed', url, now, ttl)
    redis.call('HSET', job_key, 'webhook', 'pending')
  end
  redis.call('EXPIRE', job_key, ttl)
end

local TERMINAL = {success = true, failed = true, cancelled = true, timed_out = true}
