-- Rotate a refresh token (Refresh): one round trip, atomic.
-- Redis runs one script at a time, so the compare-and-swap on `h` below
-- cannot interleave: of N concurrent calls presenting the same token exactly
-- one moves the session forward; the rest find it as the predecessor and get the sealed
-- successor stored by the winner (the grace window). Re-running this script
-- (fred re-sends in-flight commands after a reconnect) is therefore harmless:
-- the second run takes the grace branch and returns the same successor.
--
-- KEYS[1] session hash
-- ARGV: 1 presented hash, 2 new hash, 3 sealed successor, 4 now ms, 5 key prefix,
--       6 session id, 7 presented device fingerprint hash ('' = none),
--       8 keep the session at least until (ms; see keep_session),
--       9 client IP, 10 user agent ('' = keep the stored one),
--       11 thumbprint of the DPoP key that proved this refresh ('' = none),
--       12 that proof's replay-set key ('' = none), 13 when it expires (ms),
--       14 x5t#S256 of the client certificate the refresh came with ('' = none),
--       15 client_id a public client named on the token endpoint ('' = none)
-- SHARED (the deployment's policy, sent once for a batch whose calls agree):
--       1 grace ms, 2 log retention ms, 3 access horizon ms,
--       4 per-subject refresh emission interval ms ('0' = no limit), 5 burst window ms,
--       6 how long the sealed successor is kept (ms: the grace window and a second)
-- The revocation log and channel a reuse writes to are the prefix's (LOG, CHANNEL).
local s = KEYS[1]
local now = tonumber(ARGV[4])
-- Only what every rotation needs: the older hashes and the sealed successor
-- are read in the rarer branches that use them. (Every string Redis hands to
-- Lua is hashed byte by byte; reading, splitting and rebuilding a comma list
-- of older hashes on every rotation made a Refresh cost Redis 1.6 times the
-- instructions it costs now.)
local f = session_get(s, {'g', 'e', 'a', 'i', 'c', 'k', 'rev', 'd', 't', 'u', 'f', 'jk'})
if not f[1] then return {'invalid'} end
local cur, gen, created, idle, uk, rev, data, tid, sub =
  f[1], f[2] or '0', f[6], f[5], f[7], f[8], f[9], f[10], f[11]
-- Each number read once: Lua reads one with strtod, about a thousand
-- instructions for one of 13 digits.
local c = tonumber(created)
local exp, abs = c + tonumber(f[3]), c + tonumber(f[4])
local ring = HISTORY + 1
-- What the reply carries besides the rotation itself: the rest of the
-- session's data (see `schema::decode_data`). The device hash is the one
-- presented: the hash keeps only its first 22 characters, and nothing gets
-- this far with another device.
local function session_fields(reply)
  local device = (f[12] and f[12] ~= '') and ARGV[7] or ''
  -- (Numbers go as Redis integers: no string.format, which is snprintf.)
  for _, v in ipairs({tid, sub, created, abs, idle, device}) do reply[#reply + 1] = v end
  return reply
end
if not session_usable(rev, created, uk, exp, abs, ARGV[5], now) then return {'invalid'} end
-- A bound session rotates only for its device; nothing changes otherwise.
-- Checked only for a holder of the current secret (or of its predecessor in
-- the grace window): the session id is public, and answering a guessed
-- secret with 'fingerprint' would tell which sessions are bound and raise
-- false theft alarms.
local foreign_device = f[12] and f[12] ~= '' and f[12] ~= string.sub(ARGV[7], 1, 22)
-- A DPoP-bound session rotates only with a proof by its key (the same
-- place as the device check: not a reuse, nothing changes).
local foreign_key = f[13] and f[13] ~= '' and f[13] ~= ARGV[11]
-- A certificate-bound session (RFC 8705) rotates only with its certificate.
-- Its thumbprint is read from the data `d`, where schema.rs's StoredData
-- writes it as `x`, last but for `k` (anchored at the end, a custom claim
-- named `x` never passes for it; a unit test there keeps the shape). Every
-- certificate-bound session has it there (the binding came with the short
-- names), so no hash field and no migration; the plain find keeps the
-- unbound case to one scan.
if not foreign_key and string.find(data, '"x":"', 1, true) then
  local x5 = string.match(data, '"x":"([%w_%-]+)"}$') or string.match(data, '"x":"([%w_%-]+)","k":"[%w_%-]+"}$')
  foreign_key = x5 ~= nil and x5 ~= ARGV[14]
end
-- A session issued to a client rotates for no other client_id (decoded
-- only when one is named: the token endpoint's public clients).
if not foreign_key and ARGV[15] ~= '' then
  local ok, d = pcall(cjson.decode, data)
  local issued_to = ok and type(d) == 'table' and (d['i'] or d['client_id']) or ''
  foreign_key = type(issued_to) == 'string' and issued_to ~= '' and issued_to ~= ARGV[15]
end

-- A proof is recorded in the replay set here, once the session is known,
-- usable and bound to the proof's key, so that refreshes with made-up
-- tokens write nothing (issue #32). The entry holds the successor's hash:
-- a re-sent run of this script (PITFALLS: fred re-sends) finds its own
-- entry and goes on to the grace branch; any other use is a replay.
local function proof_replayed()
  if ARGV[12] == '' or not (f[13] and f[13] ~= '') then return false end
  local mine = string.sub(ARGV[2], 1, 22)
  local seen = redis.call('GET', ARGV[12])
  if seen then return seen ~= mine end
  redis.call('SET', ARGV[12], mine, 'PXAT', ARGV[13])
  return false
end

-- What a holder of the current (or, in the grace window, the previous)
-- secret is refused for, in this order; nothing changes then.
local function refusal()
  if foreign_key then return {'binding'} end
  if foreign_device then return {'fingerprint'} end
  if proof_replayed() then return {'replayed'} end
  return nil
end

local presented = ARGV[1]
if same_hash(cur, presented) then
  local refused = refusal()
  if refused then return refused end
  -- Per-subject refresh budget: only real rotations count (a grace-window
  -- retry is idempotent and cheap), checked before anything changes.
  if SHARED[4] ~= '0' then
    local wait = gcra(ARGV[5] .. 'rl:refresh:' .. uk, tonumber(SHARED[4]), tonumber(SHARED[5]))
    if wait > 0 then return {'limited', string.format('%d', wait)} end
  end
  -- Idle expiry moves forward; the absolute lifetime never does.
  local newexp = math.min(now + tonumber(idle), abs)
  local g = tonumber(gen) + 1
  -- The superseded hash joins the history ring (reuse detection) as its
  -- first 16 characters (96 bits: ample to recognise a replay, and less
  -- memory per rotation), in the slot of the new generation: the
  -- predecessor of the new `h` is always o<g % ring>.
  local gs = string.format('%d', g)
  local fields = {'h', string.sub(ARGV[2], 1, 22), 'g', gs,
    'r', string.format('%d', now - c), 'e', string.format('%d', newexp - c),
    'o' .. (g % ring), string.sub(cur, 1, 16)}
  if ARGV[9] ~= '' then fields[#fields + 1] = 'ip'; fields[#fields + 1] = ARGV[9] end
  if ARGV[10] ~= '' then fields[#fields + 1] = 'ua'; fields[#fields + 1] = ARGV[10] end
  redis.call('HSET', s, unpack(fields))
  -- The sealed successor is kept only for the grace window (plus a second
  -- for the clocks of replica and Redis to disagree), in a key of its own
  -- that expires with it: after the window nothing at rest can open into a
  -- usable refresh token.
  redis.call('SET', ARGV[5] .. 'sl:' .. ARGV[6], ARGV[3], 'PX', SHARED[6])
  local keep = math.max(newexp, tonumber(ARGV[8]))
  keep_session(s, ARGV[5], uk, ARGV[6], string.format('%d', keep), now, created, nil, keep)
  return session_fields({'rotated', data, gs, ARGV[4], newexp})
end

local predecessor = redis.call('HGET', s, 'o' .. (tonumber(gen) % ring))
if tonumber(gen) > 0 and predecessor == string.sub(presented, 1, 16) then
  -- Only the immediate predecessor, and only within the window, gets the
  -- successor (django-oauth-toolkit#1617: never older generations).
  -- A window of 0 is no window: even a replay in the same millisecond is reuse.
  local grace = tonumber(SHARED[1])
  -- The last rotation, read only here (`r`, ms after the creation).
  local rot = c + tonumber(redis.call('HGET', s, 'r') or '0')
  if grace > 0 and now - rot <= grace then
    local refused = refusal()
    if refused then return refused end
    local sealed = redis.call('GET', ARGV[5] .. 'sl:' .. ARGV[6])
    if not sealed then return {'invalid'} end
    return session_fields({'grace', data, gen, rot, exp, sealed})
  end
elseif not superseded(s, presented) then
  -- Not a token of this session at all: refuse, but do not let a guess
  -- at a session id revoke someone else's session.
  return {'invalid'}
end

-- Reuse of a rotated token: revoke the whole session (RFC 6819 §5.2.2.3),
-- whatever device presents it: an old secret in any hands means theft.
return {'reused', revoke_session(ARGV[5], ARGV[6], ARGV[5] .. LOG, ARGV[5] .. CHANNEL, tonumber(SHARED[2]), now, tonumber(SHARED[3]))}
