-- Sliding renewal (Verify with renew = true): one round trip, atomic.
-- Extends the session's idle expiry (never past its absolute end) and, when
-- asked to mint, fixes the issue time of the successor of the presented
-- token with SET NX: every replica that renews the same token concurrently
-- reads the same instant and so mints the same token.
--
-- KEYS[1] session hash, KEYS[2] session revocation marker, KEYS[3] renewal marker of the presented jti
-- ARGV: 1 now ms, 2 mint ('1' or '0'), 3 renewal marker TTL ms, 4 key prefix,
--       5 keep the session at least until (ms; see keep_session), 6 session id
local s = KEYS[1]
local now = tonumber(ARGV[1])
local f = redis.call('HMGET', s, 'exp', 'abs', 'i', 'rev', 'c', 'uk')
-- Kept until whatever it may mint below is dead.
local keep = tonumber(ARGV[5])
if not f[1] then return {'invalid'} end
if not session_usable(f[4], f[5], f[6], f[1], f[2], KEYS[2], ARGV[4], now) then return {'invalid'} end
local exp, abs = tonumber(f[1]), tonumber(f[2])
local newexp = math.min(now + tonumber(f[3]), abs)
if newexp > exp then
  redis.call('HSET', s, 'exp', string.format('%d', newexp))
end
if redis.call('PEXPIRETIME', s) < math.max(newexp, keep) then
  keep_session(s, ARGV[4] .. 'ss:' .. f[6], ARGV[6], string.format('%d', math.max(newexp, keep)), now)
end
if ARGV[2] == '1' then
  local iat = redis.call('GET', KEYS[3])
  if not iat then
    iat = ARGV[1]
    redis.call('SET', KEYS[3], iat, 'PX', ARGV[3])
  end
  return {'renewed', iat, f[2]}
end
return {'extended', f[2]}
