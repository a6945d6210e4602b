-- Shared prelude of the webhook scripts: deliveries in flight, per receiving host and per owner
-- (the API key whose job it is), so one tenant's slow receivers cannot take every notifier slot.
-- Sets: <inflight prefix>host:<host[:port]> and <inflight prefix>owner:<owner>, each a zset
-- delivery id -> claim expiry (unix s): a notifier that dies leaves nothing counted past it.
-- inflight_keys(prefix, hook_key) -> host set key, owner set key (from the delivery hash's url, owner)
local function inflight_keys(prefix, hook_key)
  local url = redis.call('HGET', hook_key, 'url') or ''
  local host = string.match(url, '^%a[%w+.-]*://([^/?#]*)') or ''
  host = string.gsub(host, '^.*@', '')
  return prefix .. 'host:' .. string.lower(host), prefix .. 'owner:' .. (redis.call('HGET', hook_key, 'owner') or '')
end
