-- Take the next job id and lease it, in one step, so no id is ever held by nobody.
-- Due delayed ids and ids whose lease expired (their worker died) go back to the
-- head of the line first.
-- KEYS[1] ready list   KEYS[2] leases zset (id -> deadline ms)   KEYS[3] lease tokens hash
-- KEYS[4] delayed zset
-- ARGV[1] now ms   ARGV[2] lease ms   ARGV[3] new lease token   ARGV[4] max ids moved per call
-- Returns {id, token} or {"", "", next due ms or -1}.
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[4])
for _, key in ipairs({KEYS[4], KEYS[2]}) do
  local due = redis.call('ZRANGEBYSCORE', key, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    redis.call('ZREM', key, id)
    if key == KEYS[2] then
      redis.call('HDEL', KEYS[3], id)
    end
    redis.call('RPUSH', KEYS[1], id)
  end
end
local id = redis.call('RPOP', KEYS[1])
if not id then
  local next_due = -1
  for _, key in ipairs({KEYS[4], KEYS[2]}) do
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if first[2] and (next_due < 0 or tonumber(first[2]) < next_due) then
      next_due = tonumber(first[2])
    end
  end
  return {'', '', next_due}
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), id)
redis.call('HSET', KEYS[3], id, ARGV[3])
return {id, ARGV[3]}
