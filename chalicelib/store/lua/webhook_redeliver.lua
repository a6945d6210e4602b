-- Send a job's completion webhook again: a fresh series of attempts, same webhook-id.
-- KEYS[1] delivery hash   KEYS[2] due zset   KEYS[3] the job hash
-- ARGV[1] delivery id   ARGV[2] now
-- Returns 1, or 0 when there is no such delivery.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'pending', 'series_start', redis.call('HGET', KEYS[1], 'attempts') or '0')
redis.call('HDEL', KEYS[1], 'body')
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[3], 'webhook', 'pending')
return 1
