-- Sliding renewal (Verify with renew = true): one round trip, atomic.
-- Extends the session's idle expiry (never past its absolute end) and, when
-- asked to mint, fixes the issue time of the successor of the presented
-- token with SET NX: every replica that renews the same token concurrently
-- reads the same instant and so mints the same token.
--
-- KEYS[1] session hash, KEYS[2] renewal marker of the presented jti
-- ARGV: 1 now ms, 2 mint ('1' or '0'), 3 renewal marker TTL ms, 4 key prefix,
--       5 keep the session at least until (ms; see keep_session), 6 session id
local s = KEYS[1]
local now = tonumber(ARGV[1])
local f = session_get(s, {'e', 'a', 'i', 'rev', 'c', 'k'})
-- Kept until whatever it may mint below is dead.
local keep = tonumber(ARGV[5])
if not f[1] then return {'invalid'} end
local c = tonumber(f[6])
local exp, abs = c + tonumber(f[2]), c + tonumber(f[3])
if not session_usable(f[5], f[6], f[7], exp, abs, ARGV[4], now) then return {'invalid'} end
local newexp = math.min(now + tonumber(f[4]), abs)
if newexp > exp then
  redis.call('HSET', s, 'e', string.format('%d', newexp - c))
end
local keep_to = math.max(newexp, keep)
if redis.call('PEXPIRETIME', s) < keep_to then
  keep_session(s, ARGV[4], f[7], ARGV[6], string.format('%d', keep_to), now, f[6], nil, keep_to)
end
if ARGV[2] == '1' then
  local iat = redis.call('GET', KEYS[2])
  if not iat then
    iat = ARGV[1]
    redis.call('SET', KEYS[2], iat, 'PX', ARGV[3])
  end
  return {'renewed', iat, abs}
end
-- (The instant goes as a Redis integer: no string.format, which is snprintf.)
return {'extended', abs}
