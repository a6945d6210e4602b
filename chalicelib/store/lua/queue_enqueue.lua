-- Put a job id on the queue, now or after a delay, and wake one blocked worker.
-- KEYS[1] ready list (LPUSH in, RPOP out: FIFO)   KEYS[2] delayed zset (id -> due ms)
-- KEYS[3] wake list (one token per enqueue, capped)
-- ARGV[1] job id   ARGV[2] due ms (0 = now)   ARGV[3] wake list cap
if tonumber(ARGV[2]) > 0 then
  redis.call('ZADD', KEYS[2], tonumber(ARGV[2]), ARGV[1])
else
  redis.call('LPUSH', KEYS[1], ARGV[1])
end
redis.call('LPUSH', KEYS[3], '1')
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[3]) - 1)
return 1
