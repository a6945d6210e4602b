--! include _ratelimit
-- Charge one request to a key's rate limit.
-- KEYS[1] the key's GCRA state
-- ARGV[1] now (unix s)   ARGV[2] interval s (1 / rate)   ARGV[3] burst
-- Returns {allowed 1|0, remaining, retry_after_s, reset_s} (numbers as strings).
local ok, remaining, retry, reset = gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
return {ok and 1 or 0, tostring(remaining), tostring(retry), tostring(reset)}
