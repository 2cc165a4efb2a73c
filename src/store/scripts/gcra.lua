-- GCRA rate limit (generic cell rate algorithm), shared by the scripts that
-- need it (prepended at build time). One key per limited thing holds its
-- theoretical arrival time (TAT) in ms and expires when idle. Atomic, so a
-- budget holds across every replica sharing the Redis.
-- Time comes from the Redis server clock, not from the calling replica:
-- replicas' clocks (and the moments they read them) differ by milliseconds,
-- which would eat into the burst. Returns the ms to wait before retrying;
-- 0 = allowed (and counted).
local function gcra(key, interval, burst)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local new_tat = tat + interval
  local over = new_tat - now - burst
  if over > 0 then
    return over
  end
  redis.call('SET', key, string.format('%d', new_tat), 'PX', string.format('%d', math.max(new_tat - now, 1)))
  return 0
end
