--! include _inflight
-- Claim due webhook deliveries, fairly: at most ARGV[4] in flight per receiving host and ARGV[5]
-- per owner, across every notifier. A claimed delivery's due time moves to the end of its claim,
-- so a notifier that dies mid-delivery leaves it to be delivered again (with the same
-- webhook-id) once the claim runs out. A due delivery over a cap is deferred by ARGV[8] seconds,
-- so the look at the next ARGV[6] due ones reaches other tenants' deliveries behind it.
-- KEYS[1] due zset (delivery id -> due unix s)
-- ARGV[1] now   ARGV[2] claim until   ARGV[3] max deliveries   ARGV[4] per-host cap
-- ARGV[5] per-owner cap   ARGV[6] due deliveries looked at   ARGV[7] delivery hash prefix ('webhook:')
-- ARGV[8] deferral s   ARGV[9] in-flight sets prefix ('webhooks:inflight:')
-- Returns the claimed delivery ids.
local now, claim_until, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local host_cap, owner_cap = tonumber(ARGV[4]), tonumber(ARGV[5])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[6]))
local claimed, counts = {}, {}
local function in_flight(key)
  if counts[key] == nil then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    counts[key] = redis.call('ZCARD', key)
  end
  return counts[key]
end
for _, id in ipairs(ids) do
  if #claimed >= limit then
    break
  end
  local host_key, owner_key = inflight_keys(ARGV[9], ARGV[7] .. id)
  if in_flight(host_key) < host_cap and in_flight(owner_key) < owner_cap then
    redis.call('ZADD', KEYS[1], claim_until, id)
    for _, key in ipairs({host_key, owner_key}) do
      redis.call('ZADD', key, claim_until, id)
      redis.call('EXPIREAT', key, math.ceil(claim_until) + 1)
      counts[key] = counts[key] + 1
    end
    claimed[#claimed + 1] = id
  else
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[8]), id)
  end
end
return claimed
