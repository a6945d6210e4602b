-- Shared prelude: GCRA rate limiting (a leaky bucket without a timer).
--
-- gcra(key, now, interval, burst) -> allowed (bool), remaining, retry_after_s, reset_s
--   key holds the theoretical arrival time (TAT) of the next request, unix s.
--   interval = 1 / rate; burst = how many requests may arrive at once.
--   The key expires once the bucket would be full again.
local function gcra(key, now, interval, burst)
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then
    tat = now
  end
  local window = interval * burst
  local new_tat = tat + interval
  local allow_at = new_tat - window
  if now < allow_at then
    return false, 0, allow_at - now, tat - now
  end
  redis.call('SET', key, tostring(new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1)
  local remaining = math.floor((now - allow_at) / interval)
  return true, remaining, 0, new_tat - now
end
