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

-- A partition's revocation log and pub/sub channel: these after its key
-- prefix (schema.rs LOG and channel(); a unit test keeps them equal).
local LOG, CHANNEL = 'log', 'revocations'

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

-- Can the session still be used at `now` (ms)? Not revoked, not killed by
-- its subject's cut-off (taken at or after its creation), and within both
-- its idle and its absolute expiry (`exp`, `abs`: numbers).
-- `cut` is the subject's cut-off when the caller read it already (false:
-- none), nil to read it here.
-- Revoked is the hash's flag `rev` alone: every version has set it
-- whenever it revoked a session whose hash exists, in the same script
-- that writes the session's marker `rs:` (for Verify's horizon), so the
-- marker adds nothing for a hash that exists (and reading it cost every
-- Refresh a call: issue 30).
local function session_usable(rev, created, uk, exp, abs, prefix, now, cut)
  if rev == '1' then return false end
  if cut == nil then cut = redis.call('GET', prefix .. 'ru:' .. uk) end
  if cut and tonumber(cut) >= tonumber(created) then return false end
  return now < exp and now < abs
end

-- A subject's two session indexes (schema.rs): `ss:` scores each kept
-- session by how long it is kept (does the subject have anything alive to
-- revoke? how many sessions does it hold?), `sc:` scores the same sessions
-- by their creation (ListSessions' pages, the cap's oldest, log-out-others'
-- batches). Both expire with their last member.
local function indexes(prefix, uk)
  return prefix .. 'ss:' .. uk, prefix .. 'sc:' .. uk
end

-- At most this many members past their score leave the indexes per Issue
-- and per write that moves their expiry (only an Issue adds a member),
-- so that no call's work grows with the subject's size (issue #32: a
-- subject of 100,000 sessions must not stall Redis); the rest go with the
-- next writes, or with the index.
local PRUNE = 64

-- Indexes of at most this many members are not pruned by writes: the few
-- members past their score that such an index can hold go with the index
-- (which expires soon after its longest-kept member), and the subjects with
-- one or two devices, nearly all of them, save a call per Issue and
-- Refresh. Readers never take an index member for a live session (they
-- read the session), so a member past its score is only memory.
local PRUNE_ABOVE = 16

-- An index's expiry is set this long past the member that needs it, so
-- that a subject writing all the time moves it about once a minute
-- rather than on every write (two calls fewer per Issue and Refresh). An
-- index therefore lives at most a minute past its longest-kept member.
local INDEX_SLACK = 60000

-- A large subject's Issue that does not move the indexes' expiry prunes
-- one time in PRUNE_ONE_IN, picked by the last character of its random
-- session id: still up to PRUNE / PRUNE_ONE_IN = 8 members per Issue on
-- average, more than the one each Issue adds, so the dead never pile up,
-- and the other Issues save the call (issue 30).
local PRUNE_ONE_IN = 8

local function prune(idx, cidx, now)
  local gone = redis.call('ZRANGE', idx, '-inf', now, 'BYSCORE', 'LIMIT', 0, PRUNE)
  if #gone > 0 then
    redis.call('ZREM', idx, unpack(gone))
    redis.call('ZREM', cidx, unpack(gone))
  end
end

-- Sessions written before the creation index existed are in `ss:` only,
-- and so is a subject's only session: `sc:` is written from a subject's
-- second session on (keep_session), which spares the first sign-in of
-- every subject a key, its expiry and two calls (issue #30). A call that
-- writes a subject's sessions, lists them, caps them or logs them out
-- adopts up to ADOPT of them into `sc:`, walking `ss:` from where the last
-- call stopped (`sm:`, written only while more remain), while `sc:` counts
-- fewer: bounded work per call, and after an upgrade a subject's sessions
-- are all listed, capped and logged out again within a few calls. `pass`
-- names a caller that needs one whole pass (log-out-others: its request),
-- '' for the others, which go round and round. `n` is the size of `ss:`
-- when the caller knows it (nil: counted here). Returns true while that
-- pass is under way.
local ADOPT = 64

local function adopt_legacy(prefix, uk, pass, n)
  local idx, cidx = indexes(prefix, uk)
  n = n or redis.call('ZCARD', idx)
  if redis.call('ZCARD', cidx) >= n then return false end
  local mark = prefix .. 'sm:' .. uk
  -- A pass that one call completes needs no mark.
  local marked = n > ADOPT or pass ~= ''
  local from = 0
  if marked then
    local p, at = string.match(redis.call('GET', mark) or '', '^(.*):(%d+)$')
    from = tonumber(at or '0')
    if p ~= pass then
      from = 0
    elseif from >= n then
      if pass ~= '' then return false end -- that pass is complete
      from = 0
    end
  end
  for _, sid in ipairs(redis.call('ZRANGE', idx, from, from + ADOPT - 1)) do
    if not redis.call('ZSCORE', cidx, sid) then
      local c = redis.call('HGET', prefix .. 's:' .. sid, 'c')
      if c then redis.call('ZADD', cidx, c, sid) end
    end
  end
  -- Both go with the session index (which always has a TTL).
  local until_ms = redis.call('PEXPIRETIME', idx)
  if until_ms > 0 then
    redis.call('PEXPIREAT', cidx, until_ms)
    if marked then
      redis.call('SET', mark, pass .. ':' .. string.format('%d', from + ADOPT), 'PXAT', until_ms)
    end
  end
  return from + ADOPT < n
end

-- Keep session `sid` (and its hash `s`, created at `created` ms) until
-- `keep` ms, and list it in its subject's indexes (prefix, subject key
-- `uk`): `ss:` always, `sc:` once the subject holds two sessions (see
-- adopt_legacy). The indexes expire within INDEX_SLACK after their
-- longest-kept member, so they hold live sessions, and what prune() has
-- not reached yet. `before` is the size of `ss:` before this call when the
-- caller counted it (a new session: create.lua), nil otherwise (the
-- session may be there already). `keep_n` is `keep` as a number when the
-- caller has it (nil: read here, once). `new`: a session being created
-- (true), or one already kept (nil: a rotation or renewal).
local function keep_session(s, prefix, uk, sid, keep, now, created, before, keep_n, new)
  local idx, cidx = indexes(prefix, uk)
  redis.call('PEXPIREAT', s, keep)
  redis.call('ZADD', idx, 'GT', keep, sid)
  keep_n = keep_n or tonumber(keep)
  if before == 0 then
    -- A subject with nothing in the store: `ss:` is new, and this session
    -- its only member.
    redis.call('PEXPIREAT', idx, string.format('%d', keep_n + INDEX_SLACK))
    return
  end
  local moves = redis.call('PEXPIRETIME', idx) < keep_n
  -- A rotation or renewal that leaves the indexes' expiry where it is
  -- (nearly all of them: it moves about once a minute) is done: its
  -- session is listed already (below), and the members past their score
  -- are pruned by the next Issue or expiry move; that spares each such
  -- rotation the index's count, and a large subject's the prune (issue 30).
  if not new and not moves then return end
  local n = before and before + 1 or redis.call('ZCARD', idx)
  if n > 1 then
    -- A new session joins `sc:` (NX: a session's creation never changes).
    -- One already kept is there: a subject's sessions from its second on
    -- joined when created, its first was adopted then, and sessions from
    -- before `sc:` are adopted as below. (Re-adding it cost every rotation
    -- in a subject of two or more sessions a lookup in `sc:`: for up to 128
    -- sessions a listpack scan, ~10k instructions.)
    local added = new and redis.call('ZADD', cidx, 'NX', created, sid) or 0
    -- A subject is checked for sessions missing from `sc:` on every Issue
    -- while it is small, so one that grew past PRUNE_ABOVE has them all
    -- unless they are from before `sc:` existed; those are adopted by the
    -- readers, the cap, the writes that move the expiry (about once a
    -- minute) and the writes that add a new session to `sc:` (then `sc:`
    -- may be new too, and adoption gives it its expiry).
    if n <= PRUNE_ABOVE or moves or added == 1 then adopt_legacy(prefix, uk, '', n) end
    if n > PRUNE_ABOVE and (moves or string.byte(sid, -1) % PRUNE_ONE_IN == 0) then
      prune(idx, cidx, now)
    end
  end
  if moves then
    local until_ms = string.format('%d', keep_n + INDEX_SLACK)
    redis.call('PEXPIREAT', idx, until_ms)
    if n > 1 then redis.call('PEXPIREAT', cidx, until_ms) end
  end
end

-- Append a revocation event to the log (trimmed by age) and announce its id
-- on the channel; returns the id, which is the event's cursor. `tp`, the
-- W3C traceparent of the span that revoked (nil or '' for none), is kept as
-- field 'tp' only when given: entries without it read as "no trace".
local function log_revocation(log, channel, retention, now, kind, jti, sid, tid, sub, ib, exp, tp)
  local fields = {'k', kind, 'jti', jti, 'sid', sid, 'tid', tid, 'sub', sub,
    'at', string.format('%d', now), 'ib', string.format('%d', ib), 'exp', string.format('%d', exp)}
  if tp and tp ~= '' then
    fields[#fields + 1] = 'tp'
    fields[#fields + 1] = tp
  end
  local id = redis.call('XADD', log, 'MINID', '~', string.format('%d', now - retention), '*',
    unpack(fields))
  redis.call('SPUBLISH', channel, id)
  return id
end

-- Revoke session `sid` (under key prefix `prefix`): flag it, drop it from its
-- subject's index, log a session event, and set its marker for `horizon` ms.
-- Returns the event id; `tp` as in log_revocation.
local function revoke_session(prefix, sid, log, channel, retention, now, horizon, tp)
  local s = prefix .. 's:' .. sid
  local f = session_get(s, {'t', 'u', 'k'})
  redis.call('HSET', s, 'rev', '1')
  -- Nothing of it is alive now: it leaves its subject's indexes.
  if f[4] then
    local idx, cidx = indexes(prefix, f[4])
    redis.call('ZREM', idx, sid)
    redis.call('ZREM', cidx, sid)
  end
  local id = log_revocation(log, channel, retention, now, 's', '', sid, f[2] or '', f[3] or '', 0, now + horizon, tp)
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

-- Session `sid` of hash prefix `prefix` as session_get of {'rev', 'c',
-- 'k', 'e', 'a', extra...} with `e` and `a` made instants, if it is usable
-- at `now` (`cut`: as session_usable's); nil otherwise.
local function usable_session(prefix, sid, now, extra, cut)
  local f = session_get(prefix .. 's:' .. sid, {'rev', 'c', 'k', 'e', 'a', unpack(extra)})
  if not f[1] then return nil end
  -- The creation read once (strtod), the instants checked as numbers.
  local c = tonumber(f[3])
  local exp, abs = c + tonumber(f[5]), c + tonumber(f[6])
  if not session_usable(f[2], f[3], f[4], exp, abs, prefix, now, cut) then return nil end
  f[5], f[6] = string.format('%d', exp), string.format('%d', abs)
  return f
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
