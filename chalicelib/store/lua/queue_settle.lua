-- Settle a lease held with the right token: ack, nack (back on the queue,
-- optionally delayed) or extend. A stale token (the lease expired and the id was
-- handed to someone else) changes nothing.
-- KEYS[1] ready list   KEYS[2] leases zset   KEYS[3] lease tokens hash   KEYS[4] delayed zset
-- ARGV[1] "ack" | "nack" | "extend"   ARGV[2] job id   ARGV[3] token
-- ARGV[4] for nack: due ms (0 = now); for extend: new deadline ms
-- Returns 1 when settled, 0 when the token was stale.
if redis.call('HGET', KEYS[3], ARGV[2]) ~= ARGV[3] then
  return 0
end
if ARGV[1] == 'extend' then
  redis.call('ZADD', KEYS[2], 'XX', tonumber(ARGV[4]), ARGV[2])
  return 1
end
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
if ARGV[1] == 'nack' then
  if tonumber(ARGV[4]) > 0 then
    redis.call('ZADD', KEYS[4], tonumber(ARGV[4]), ARGV[2])
  else
    redis.call('RPUSH', KEYS[1], ARGV[2])
  end
end
return 1
