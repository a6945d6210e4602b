-- Record a new job and, when an Idempotency-Key is given, claim it atomically.
-- KEYS[1] job hash            KEYS[2] owner index (zset, score = seq)
-- KEYS[3] all-jobs index (score = seq)   KEYS[4] sequence counter   KEYS[5] idempotency key
-- ARGV[1] job id   ARGV[2] (unused)   ARGV[3] "1" when KEYS[5] is used
-- ARGV[4] request fingerprint   ARGV[5] idempotency ttl s   ARGV[6] record ttl s
-- ARGV[7] the job hash's fields as a JSON object of strings (one argument: cheap to send)
-- ARGV[8] "1" to also enqueue the id on a Redis queue in the same step:
--   KEYS[6] the queue's ready list   KEYS[7] its wake list   ARGV[9] wake list cap
-- Returns {"created", seq} or {"exists", job id, fingerprint} for a replayed key.
if ARGV[3] == '1' then
  local prior = redis.call('GET', KEYS[5])
  if prior then
    local sep = string.find(prior, ' ', 1, true)
    return {'exists', string.sub(prior, 1, sep - 1), string.sub(prior, sep + 1)}
  end
  redis.call('SET', KEYS[5], ARGV[1] .. ' ' .. ARGV[4], 'EX', tonumber(ARGV[5]))
end
local seq = redis.call('INCR', KEYS[4])
local fields = {}
for name, value in pairs(cjson.decode(ARGV[7])) do
  fields[#fields + 1] = name
  fields[#fields + 1] = value
end
redis.call('HSET', KEYS[1], 'seq', seq, unpack(fields))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[6]))
redis.call('ZADD', KEYS[2], seq, ARGV[1])
redis.call('ZADD', KEYS[3], seq, ARGV[1])
if ARGV[8] == '1' then
  redis.call('LPUSH', KEYS[6], ARGV[1])
  redis.call('LPUSH', KEYS[7], '1')
  redis.call('LTRIM', KEYS[7], 0, tonumber(ARGV[9]) - 1)
end
return {'created', seq}
