-- Helpers shared by the session scripts (prepended at build time, like gcra.lua).

-- Can the session still be used at `now` (ms)? Not revoked (flag or marker),
-- not killed by its subject's cut-off (taken at or after its creation),
-- and within both its idle and its absolute expiry.
local function session_usable(rev, created, uk, exp, abs, marker, prefix, now)
  if rev == '1' or redis.call('EXISTS', marker) == 1 then return false end
  local cut = redis.call('GET', prefix .. 'ru:' .. uk)
  if cut and tonumber(cut) >= tonumber(created) then return false end
  return now < tonumber(exp) and now < tonumber(abs)
end

-- Keep session `sid` (and its hash `s`) until `keep` ms, and list it in its
-- subject's index `idx` with that score: the index tells whether a subject
-- has anything alive to revoke (a subject revocation of nobody is a no-op).
-- Members past their score are dropped here, and the index expires with its
-- last member, so it holds live sessions only.
local function keep_session(s, idx, sid, keep, now)
  redis.call('PEXPIREAT', s, keep)
  redis.call('ZADD', idx, 'GT', keep, sid)
  redis.call('ZREMRANGEBYSCORE', idx, '-inf', now)
  local top = redis.call('ZRANGE', idx, -1, -1, 'WITHSCORES')
  if top[2] then redis.call('PEXPIREAT', idx, top[2]) end
end

-- Append a revocation event to the log (trimmed by age) and announce its id
-- on the channel; returns the id, which is the event's cursor.
local function log_revocation(log, channel, retention, now, kind, jti, sid, tid, sub, ib, exp)
  local id = redis.call('XADD', log, 'MINID', '~', string.format('%d', now - retention), '*',
    'k', kind, 'jti', jti, 'sid', sid, 'tid', tid, 'sub', sub, 'at', string.format('%d', now),
    'ib', string.format('%d', ib), 'exp', string.format('%d', exp))
  redis.call('SPUBLISH', channel, id)
  return id
end

-- Revoke session `sid` (under key prefix `prefix`): flag it, drop it from its
-- subject's index, log a session event, and set its marker for `horizon` ms.
-- Returns the event id.
local function revoke_session(prefix, sid, log, channel, retention, now, horizon)
  local s = prefix .. 's:' .. sid
  local f = redis.call('HMGET', s, 'tid', 'sub', 'uk')
  redis.call('HSET', s, 'rev', '1')
  -- Nothing of it is alive now: it leaves its subject's index.
  if f[3] then redis.call('ZREM', prefix .. 'ss:' .. f[3], sid) end
  local id = log_revocation(log, channel, retention, now, 's', '', sid, f[1] or '', f[2] or '', 0, now + horizon)
  redis.call('SET', prefix .. 'rs:' .. sid, id, 'PX', string.format('%d', horizon))
  return id
end

-- Byte order of two strings (Lua's own `<` follows the server's locale).
local function bytes_before(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- The usable sessions of index `idx` at `now`, each as {sid, HMGET of the
-- given fields after the five usability ones}, in session-id byte order,
-- starting after `after` ('' = from the first) and stopping after `limit`
-- of them plus one (`limit` 0 = all).
local function usable_sessions(idx, prefix, now, after, limit, extra)
  local members = redis.call('ZRANGEBYSCORE', idx, now, '+inf')
  table.sort(members, bytes_before)
  local out = {}
  for _, sid in ipairs(members) do
    if after == '' or bytes_before(after, sid) then
      local f = redis.call('HMGET', prefix .. 's:' .. sid, 'rev', 'c', 'uk', 'exp', 'abs', unpack(extra))
      if f[2] and session_usable(f[1], f[2], f[3], f[4], f[5], prefix .. 'rs:' .. sid, prefix, now) then
        out[#out + 1] = {sid, f}
        if limit > 0 and #out > limit then break end
      end
    end
  end
  return out
end

-- Refresh hashes are kept as their first 22 characters (132 bits of a
-- SHA-256 of a 256-bit secret: still out of reach, and 21 bytes less per
-- hash); versions before kept all 43. Is `stored` the hash `presented`?
local function same_hash(stored, presented)
  return stored ~= nil and stored ~= '' and
    (stored == string.sub(presented, 1, 22) or stored == presented)
end

-- Was `h` one of the older refresh hashes of session `s` (before `prev`)?
-- They sit in a ring of `n` fields o0..o<n-1>, one written per rotation and
-- read only here; sessions last rotated by versions before the ring keep them
-- as a comma list in 'old', which is still honoured.
local function superseded(s, h, n)
  local fields = {'old'}
  for i = 0, n - 1 do fields[#fields + 1] = 'o' .. i end
  local f = redis.call('HMGET', s, unpack(fields))
  local short = string.sub(h, 1, 16)
  for i = 2, #f do
    -- The ring keeps 16-character prefixes; versions before kept whole hashes.
    if f[i] == short or f[i] == h then return true end
  end
  for x in string.gmatch(f[1] or '', '[^,]+') do
    if x == h then return true end
  end
  return false
end
