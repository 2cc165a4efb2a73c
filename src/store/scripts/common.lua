-- Helpers shared by the session scripts (prepended at build time, like gcra.lua).

-- A session's hash (schema.rs, "A session's hash"): one-letter names, and
-- its instants after the first as milliseconds after its creation `c`, so
-- that with the default claims it stays a listpack in jemalloc's 224-byte
-- class (BENCHMARKS.md, memory per session):
--   d data (JSON)            h current refresh hash (22 characters)
--   c created (ms)           e idle expiry (ms after c)
--   a absolute expiry (ms after c)                i idle lifetime (ms)
--   k subject key            t tenant             u subject
--   f device fingerprint hash (22 characters; absent = not bound)
--   ip, ua, jk               client IP, user agent, DPoP key thumbprint
--   g generation and r last rotation (ms after c), from the first rotation
--   o0 .. o<n>               ring of superseded hashes (16 characters): slot
--                            g % (n + 1) holds the predecessor of `h`
--   rev '1' once revoked

-- How many superseded generations a session remembers besides its
-- predecessor (store::REUSE_HISTORY; a unit test keeps the two equal).
local HISTORY = 16

-- The instant `delta` ms after `c` (both strings from the hash).
local function after_c(c, delta)
  return tonumber(c) + tonumber(delta)
end

-- Sessions written before this layout (by the first version with
-- partitions) named their fields cur, prev, gen, rot, exp, abs, uk, tid, sub
-- and fp, kept instants as such, the whole fingerprint hash and a history
-- ring o0..o15 of the hashes before `prev`, each written at the rotation of
-- its generation + 2, in slot (that rotation) % 16. Rewrite hash `s` in this
-- layout, once, the first time a script touches it; false if it is not such
-- a session.
local function upgrade(s)
  local f = redis.call('HMGET', s, 'cur', 'prev', 'gen', 'rot', 'exp', 'abs', 'uk', 'tid', 'sub', 'fp', 'c')
  if not f[1] or not f[11] then return false end
  local c, g = tonumber(f[11]), tonumber(f[3] or '0')
  local new = {'h', f[1], 'e', string.format('%d', tonumber(f[5]) - c),
    'a', string.format('%d', tonumber(f[6]) - c), 'k', f[7], 't', f[8], 'u', f[9]}
  local function put(name, v) new[#new + 1] = name; new[#new + 1] = v end
  if g > 0 then
    put('g', string.format('%d', g))
    put('r', string.format('%d', tonumber(f[4] or f[11]) - c))
  end
  if f[10] and f[10] ~= '' then put('f', string.sub(f[10], 1, 22)) end
  local m, old = HISTORY + 1, {}
  for i = 0, 15 do old[#old + 1] = 'o' .. i end
  local ring = redis.call('HMGET', s, unpack(old))
  redis.call('HDEL', s, 'cur', 'prev', 'gen', 'rot', 'exp', 'abs', 'uk', 'tid', 'sub', 'fp', unpack(old))
  -- Slot i was last written at rotation w (the latest <= g with w % 16 = i)
  -- and holds generation w - 2, whose slot here is (w - 1) % m.
  for i = 0, 15 do
    if ring[i + 1] then
      local w = g - ((g - i) % 16)
      if w >= 2 then put('o' .. ((w - 1) % m), string.sub(ring[i + 1], 1, 16)) end
    end
  end
  if f[2] and f[2] ~= '' then put('o' .. (g % m), string.sub(f[2], 1, 16)) end
  redis.call('HSET', s, unpack(new))
  return true
end

-- HMGET of session hash `s`: {h, then the fields `names`} (h nil: no
-- session), after upgrading a hash of the layout before.
local function session_get(s, names)
  local f = redis.call('HMGET', s, 'h', unpack(names))
  if not f[1] and upgrade(s) then f = redis.call('HMGET', s, 'h', unpack(names)) end
  return f
end

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
  local f = session_get(s, {'t', 'u', 'k'})
  redis.call('HSET', s, 'rev', '1')
  -- Nothing of it is alive now: it leaves its subject's index.
  if f[4] then redis.call('ZREM', prefix .. 'ss:' .. f[4], sid) end
  local id = log_revocation(log, channel, retention, now, 's', '', sid, f[2] or '', f[3] or '', 0, now + horizon)
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

-- The usable sessions of index `idx` at `now`, each as {sid, f}, in
-- session-id byte order, starting after `after` ('' = from the first) and
-- stopping after `limit` of them plus one (`limit` 0 = all). `f` is
-- session_get of {'rev', 'c', 'k', 'e', 'a', extra...}, with `e` and `a`
-- made instants.
local function usable_sessions(idx, prefix, now, after, limit, extra)
  local members = redis.call('ZRANGEBYSCORE', idx, now, '+inf')
  table.sort(members, bytes_before)
  local out = {}
  for _, sid in ipairs(members) do
    if after == '' or bytes_before(after, sid) then
      local f = session_get(prefix .. 's:' .. sid, {'rev', 'c', 'k', 'e', 'a', unpack(extra)})
      if f[1] then
        f[5], f[6] = string.format('%d', after_c(f[3], f[5])), string.format('%d', after_c(f[3], f[6]))
        if session_usable(f[2], f[3], f[4], f[5], f[6], prefix .. 'rs:' .. sid, prefix, now) then
          out[#out + 1] = {sid, f}
          if limit > 0 and #out > limit then break end
        end
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

-- Was `h` one of the superseded refresh hashes of session `s` (its
-- predecessor or one of the HISTORY before)? They sit in the ring o0..o<HISTORY>, one
-- written per rotation and read only here. ('old', a comma list of whole
-- hashes, is where versions before the ring kept them; still honoured.)
local function superseded(s, h)
  local fields = {'old'}
  for i = 0, HISTORY do fields[#fields + 1] = 'o' .. i end
  local f = redis.call('HMGET', s, unpack(fields))
  local short = string.sub(h, 1, 16)
  for i = 2, #f do
    if f[i] == short then return true end
  end
  for x in string.gmatch(f[1] or '', '[^,]+') do
    if x == h then return true end
  end
  return false
end
