-- Create a session (Issue): one round trip, atomic.
-- KEYS[1] session hash, KEYS[2] the subject's session index
-- ARGV: 1 session data (JSON), 2 refresh hash, 3 created ms, 4 refresh expiry ms,
--       5 absolute expiry ms, 6 idle ms, 7 subject cut-off key, 8 tenant, 9 subject,
--       10 device fingerprint hash ('' = not bound),
--       11 subject rate key ('' = no limit), 12 emission interval ms, 13 burst window ms,
--       14 keep until ms (>= the refresh expiry: see keep_session), 15 session id,
--       16 caller rate key ('' = no limit), 17 emission interval ms, 18 burst window ms
-- Returns {'ok'} or {'limited', retry ms} (then nothing was written).
-- Invariant: the hash lives until its refresh token and the access token
-- minted with it are dead (PEXPIREAT), and no longer, so no key grows
-- without bound (ory/hydra#1574).
-- The caller's budget first: a call its subject's budget refuses still
-- counts against the caller that made it.
if ARGV[16] ~= '' then
  local wait = gcra(ARGV[16], tonumber(ARGV[17]), tonumber(ARGV[18]))
  if wait > 0 then return {'limited', string.format('%d', wait)} end
end
if ARGV[11] ~= '' then
  local wait = gcra(ARGV[11], tonumber(ARGV[12]), tonumber(ARGV[13]))
  if wait > 0 then return {'limited', string.format('%d', wait)} end
end
redis.call('HSET', KEYS[1],
  'data', ARGV[1], 'cur', ARGV[2], 'prev', '',
  'gen', '0', 'rot', ARGV[3], 'created', ARGV[3], 'exp', ARGV[4],
  'abs', ARGV[5], 'idle', ARGV[6], 'uk', ARGV[7], 'tid', ARGV[8], 'sub', ARGV[9], 'fp', ARGV[10], 'rev', '0')
keep_session(KEYS[1], KEYS[2], ARGV[15], ARGV[14], ARGV[3])
return {'ok'}
