-- Create a session (Issue): one round trip, atomic.
-- KEYS[1] session hash
-- ARGV: 1 session data (JSON), 2 refresh hash, 3 created ms, 4 refresh expiry
--       (ms after created), 5 absolute expiry (ms after created), 6 idle ms,
--       7 subject key, 8 tenant, 9 subject,
--       10 device fingerprint hash ('' = not bound),
--       11 subject rate key ('' = no limit),
--       12 keep until ms (>= the refresh expiry: see keep_session), 13 session id,
--       14 caller rate key ('' = no limit, or counted before): on one Redis only
--       (standalone, Sentinel), where a script may touch the caller's partition
--       too; a Cluster counts the caller's budget in a call of its own, in the
--       caller's partition, first,
--       15 client IP ('' = none), 16 user agent ('' = none), 17 key prefix,
--       18 DPoP key thumbprint ('' = not bound)
-- SHARED (the deployment's policy, sent once for a batch whose calls agree):
--       1 subject budget's emission interval ms, 2 its burst window ms,
--       3 caller budget's emission interval ms, 4 its burst window ms,
--       5 live sessions allowed per subject ('0' = no cap), 6 at the cap: '1' evict
--       the oldest, '0' refuse, 7 log retention ms, 8 access horizon ms,
--       9 most sessions the cap evicts in this call
-- An eviction's event goes to the prefix's revocation log and channel (LOG, CHANNEL).
-- Returns {'ok', last eviction event id or '', evicted session ids (oldest first)...},
-- {'limited', retry ms} or {'full'} (then nothing but the budgets was written).
-- Invariant: the hash lives until its refresh token and the access token
-- minted with it are dead (PEXPIREAT), and no longer, so no key grows
-- without bound (ory/hydra#1574).
-- The caller's budget first: a call its subject's budget refuses still
-- counts against the caller that made it.
if ARGV[14] ~= '' then
  local wait = gcra(ARGV[14], tonumber(SHARED[3]), tonumber(SHARED[4]))
  if wait > 0 then return {'limited', string.format('%d', wait)} end
end
if ARGV[11] ~= '' then
  local wait = gcra(ARGV[11], tonumber(SHARED[1]), tonumber(SHARED[2]))
  if wait > 0 then return {'limited', string.format('%d', wait)} end
end
local reply = {'ok', ''}
local prefix = ARGV[17]
-- The subject's sessions before this one (live or not yet pruned): none
-- is the common case, a first sign-in, which needs no count, cap or prune.
local idx, cidx = indexes(prefix, ARGV[7])
local before = redis.call('ZCARD', idx)
if SHARED[5] ~= '0' and before > 0 then
  -- The cap counts the sessions the store keeps (ss: by score, so the
  -- count costs O(log n) whatever the subject holds); the oldest by
  -- creation (then id) go first, at most SHARED[9] of them per Issue, so that
  -- a cap lowered below a subject's sessions converges over a few Issues
  -- instead of one long script.
  local now = tonumber(ARGV[3])
  local over = redis.call('ZCOUNT', idx, '(' .. ARGV[3], '+inf') + 1 - tonumber(SHARED[5])
  if over > 0 then
    if SHARED[6] ~= '1' then return {'full'} end
    -- The oldest are found in `sc:`, which a subject's first session is
    -- not in (adopt_legacy).
    adopt_legacy(prefix, ARGV[7], '', before)
    -- Entries whose session is gone (past its keep, not yet pruned) leave
    -- the indexes without an event; a bounded look past them.
    local most = tonumber(SHARED[9])
    local want, done = math.min(over, most), 0
    for _, sid in ipairs(redis.call('ZRANGE', cidx, 0, 2 * most - 1)) do
      if done == want then break end
      if redis.call('EXISTS', prefix .. 's:' .. sid) == 1 then
        reply[2] = revoke_session(prefix, sid, prefix .. LOG, prefix .. CHANNEL, tonumber(SHARED[7]), now, tonumber(SHARED[8]))
        reply[#reply + 1] = sid
        done = done + 1
      else
        redis.call('ZREM', idx, sid)
        redis.call('ZREM', cidx, sid)
      end
    end
    before = nil -- counted again by keep_session
  end
end
-- The layout of common.lua. Nothing empty or zero is written (`g`, `r`,
-- `rev`, `f`, `ip`, `ua`, `jk` are absent until they mean something), so
-- small hashes stay listpacks. The refresh and device hashes are kept as
-- their first 22 characters (see same_hash).
-- (The expiries come as the hash keeps them, after `c`: Lua reads a number
-- with strtod, which costs about a thousand instructions for one of 13 digits.)
local fields = {'d', ARGV[1], 'h', string.sub(ARGV[2], 1, 22), 'c', ARGV[3],
  'e', ARGV[4], 'a', ARGV[5], 'i', ARGV[6], 'k', ARGV[7], 't', ARGV[8], 'u', ARGV[9]}
local n = #fields
if ARGV[10] ~= '' then fields[n + 1], fields[n + 2], n = 'f', string.sub(ARGV[10], 1, 22), n + 2 end
if ARGV[15] ~= '' then fields[n + 1], fields[n + 2], n = 'ip', ARGV[15], n + 2 end
if ARGV[16] ~= '' then fields[n + 1], fields[n + 2], n = 'ua', ARGV[16], n + 2 end
if ARGV[18] ~= '' then fields[n + 1], fields[n + 2], n = 'jk', ARGV[18], n + 2 end
redis.call('HSET', KEYS[1], unpack(fields))
keep_session(KEYS[1], prefix, ARGV[7], ARGV[13], ARGV[12], ARGV[3], ARGV[3], before, nil, true)
return reply
