-- Claim due webhook deliveries: push each one's due time to the end of its claim,
-- so a notifier that dies mid-delivery leaves it to be delivered again (with the
-- same webhook-id) once the claim runs out.
-- KEYS[1] due zset (delivery id -> due unix s)
-- ARGV[1] now   ARGV[2] claim until   ARGV[3] max deliveries
-- Returns the claimed delivery ids.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], ARGV[2], id)
end
return ids
