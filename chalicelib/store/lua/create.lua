--! include _ratelimit
--! include _pending
-- Admit and record a new job, in one step: rate limit, idempotency, the owner's
-- cap on queued jobs, the record, its indexes and (optionally) the enqueue.
-- KEYS[1] job hash             KEYS[2] owner index (zset, score = seq)
-- KEYS[3] all-jobs index       KEYS[4] sequence counter     KEYS[5] idempotency key
-- KEYS[6] owner's GCRA state   KEYS[7] queued jobs per owner (hash owner -> count)
-- KEYS[8] queue ready list     KEYS[9] queue wake list      (used when ARGV[11] == "1")
-- KEYS[10] queued-since zset (job id -> unix s)
-- KEYS[11] the owner's usage today (hash: gpu_seconds ...)   KEYS[12] the owner's pending GPU estimate
-- KEYS[13] the job type's mean GPU seconds
-- ARGV[1] job id   ARGV[2] owner   ARGV[3] "1" when KEYS[5] is used   ARGV[4] request fingerprint
-- ARGV[5] idempotency ttl s   ARGV[6] record ttl s
-- ARGV[7] now (unix s)   ARGV[8] rate interval s (0 = no limit)   ARGV[9] burst
-- ARGV[10] max queued jobs for the owner (0 = no cap)   ARGV[11] "1" to enqueue   ARGV[12] wake list cap
-- ARGV[13] the job hash's fields as a JSON object of strings (one argument: cheap to send)
-- ARGV[14] the owner's GPU seconds per UTC day (0 = no budget)   ARGV[15] a job's GPU estimate when its
-- type has no mean yet
-- Budget: the GPU seconds of the owner's jobs that ended today, plus the estimate of those queued and
-- running (each at its type's mean when it was admitted), plus this one's, must stay within the budget.
-- Every admitted job adds its estimate to the pending count (and keeps it as 'estimate'); the step that
-- ends it takes it off (_lib.lua), so a key cannot queue its way past its budget.
-- The job's first timeline event, 'queued', is its creation itself (the store reads it from
-- created_at), so the record starts with event_seq 1 and nothing is published: nobody can be
-- waiting for a job that did not exist.
-- Returns {"created", seq, remaining, reset_s} | {"exists", job id, fingerprint}
--       | {"limited", retry_after_s, reset_s} | {"capped", queued} | {"budget", used, pending, estimate}
local now = tonumber(ARGV[7])
local remaining, reset = -1, 0
if tonumber(ARGV[8]) > 0 then
  local ok, left, retry, reset_s = gcra(KEYS[6], now, tonumber(ARGV[8]), tonumber(ARGV[9]))
  if not ok then
    return {'limited', tostring(retry), tostring(reset_s)}
  end
  remaining, reset = left, reset_s
end
if ARGV[3] == '1' then
  local prior = redis.call('GET', KEYS[5])
  if prior then
    local sep = string.find(prior, ' ', 1, true)
    return {'exists', string.sub(prior, 1, sep - 1), string.sub(prior, sep + 1)}
  end
end
local cap = tonumber(ARGV[10])
if cap > 0 then
  local queued = tonumber(redis.call('HGET', KEYS[7], ARGV[2]) or '0')
  if queued >= cap then
    return {'capped', tostring(queued)}
  end
end
local estimate = tonumber(redis.call('GET', KEYS[13]) or ARGV[15])
local budget = tonumber(ARGV[14])
if budget > 0 then
  local used = tonumber(redis.call('HGET', KEYS[11], 'gpu_seconds') or '0')
  local pending = tonumber(redis.call('GET', KEYS[12]) or '0')
  if used + pending + estimate > budget then
    return {'budget', tostring(used), tostring(pending), tostring(estimate)}
  end
end
if ARGV[3] == '1' then
  redis.call('SET', KEYS[5], ARGV[1] .. ' ' .. ARGV[4], 'EX', tonumber(ARGV[5]))
end
local seq = redis.call('INCR', KEYS[4])
local fields = {}
for name, value in pairs(cjson.decode(ARGV[13])) do
  fields[#fields + 1] = name
  fields[#fields + 1] = value
end
redis.call('HSET', KEYS[1], 'seq', seq, 'estimate', estimate, unpack(fields))
add_pending(KEYS[12], estimate)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[6]))
redis.call('ZADD', KEYS[2], seq, ARGV[1])
redis.call('ZADD', KEYS[3], seq, ARGV[1])
redis.call('HINCRBY', KEYS[7], ARGV[2], 1)
redis.call('ZADD', KEYS[10], now, ARGV[1])
if ARGV[11] == '1' then
  redis.call('LPUSH', KEYS[8], ARGV[1])
  redis.call('LPUSH', KEYS[9], '1')
  redis.call('LTRIM', KEYS[9], 0, tonumber(ARGV[12]) - 1)
end
return {'created', seq, tostring(remaining), tostring(reset)}
