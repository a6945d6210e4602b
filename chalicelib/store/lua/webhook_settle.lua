--! include _inflight
-- Record one delivery attempt and decide what comes next; the delivery is no longer in flight.
-- KEYS[1] delivery hash   KEYS[2] its attempts list   KEYS[3] due zset   KEYS[4] the job hash
-- ARGV[1] delivery id   ARGV[2] attempt record (JSON)   ARGV[3] new state:
--   pending (retry at ARGV[4]) | delivered | failed | gone | blocked
-- ARGV[4] next due unix s (pending only)   ARGV[5] ttl s of the records
-- ARGV[6] in-flight sets prefix (see _inflight.lua)
-- Returns the number of attempts so far.
local host_key, owner_key = inflight_keys(ARGV[6], KEYS[1])
redis.call('ZREM', host_key, ARGV[1])
redis.call('ZREM', owner_key, ARGV[1])
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[5]))
redis.call('HSET', KEYS[1], 'state', ARGV[3])
if ARGV[3] == 'pending' then
  redis.call('ZADD', KEYS[3], tonumber(ARGV[4]), ARGV[1])
else
  redis.call('ZREM', KEYS[3], ARGV[1])
  if redis.call('HGET', KEYS[1], 'event') == 'completed' and redis.call('EXISTS', KEYS[4]) == 1 then
    redis.call('HSET', KEYS[4], 'webhook', ARGV[3])
  end
end
return attempts
