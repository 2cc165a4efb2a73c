-- Revoke a token (t), a session (s) or a subject (u), append the event to the
-- log and publish its id: one round trip, atomic, so a revocation is never in
-- the state without being in the feed, or the other way round.
-- Idempotent for tokens and sessions: a second call returns the first event's
-- id and appends nothing (RFC 7009: revoking twice succeeds).
--
-- A session that is no longer kept (never existed, or nothing of it can be
-- alive) and a subject with no kept session are no-ops: nothing is written
-- and no event is published, so revoking made-up ids holds no state and
-- reaches no watcher. Returns false then.
--
-- KEYS[1] marker (rt:<jti> | rs:<sid> | ru:<subject key>), KEYS[2] log,
-- KEYS[3] session hash (s), the subject's session index (u), or the marker (t)
-- ARGV: 1 kind, 2 now ms, 3 marker TTL ms, 4 log retention ms, 5 channel,
--       6 jti, 7 sid, 8 tenant, 9 subject, 10 event expiry ms,
--       11 refresh hash that must belong to the session ('' = no check),
--       12 unused, '' (the ring's size is common.lua's HISTORY), 13 key prefix, 14 subject key
--
-- Kind 'x' ("log out my other devices"): KEYS[1] and KEYS[3] are the
-- subject's session index and ARGV[7] the session to keep; every other
-- session still revocable is revoked as a session (its own event and
-- marker, for ARGV[3] ms). Returns the last event's id, or false.
local kind, now = ARGV[1], tonumber(ARGV[2])
if kind == 'x' then
  local prefix = ARGV[13]
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  local cut = redis.call('GET', prefix .. 'ru:' .. ARGV[14])
  local last = false
  local members = redis.call('ZRANGE', KEYS[1], 0, -1)
  table.sort(members, bytes_before)
  for _, sid in ipairs(members) do
    if sid ~= ARGV[7] then
      local f = redis.call('HMGET', prefix .. 's:' .. sid, 'rev', 'c')
      if f[2] and f[1] ~= '1' and redis.call('EXISTS', prefix .. 'rs:' .. sid) == 0
          and not (cut and tonumber(cut) >= tonumber(f[2])) then
        last = revoke_session(prefix, sid, KEYS[2], ARGV[5], tonumber(ARGV[4]), now, tonumber(ARGV[3]))
      end
    end
  end
  return last
end
local tid, sub = ARGV[8], ARGV[9]
local ib = 0
if kind == 'u' then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) == 0 then return false end
  -- The cut-off only moves forward.
  local cur = redis.call('GET', KEYS[1])
  ib = now
  if cur and tonumber(cur) > now then ib = tonumber(cur) end
  redis.call('SET', KEYS[1], string.format('%d', ib), 'PX', ARGV[3])
else
  local existing = redis.call('GET', KEYS[1])
  if existing then return existing end
  if kind == 's' then
    if redis.call('EXISTS', KEYS[3]) == 0 then return false end
    local h = ARGV[11]
    if h ~= '' and not same_hash(session_get(KEYS[3], {})[1], h) and not superseded(KEYS[3], h) then
      return false
    end
    return revoke_session(ARGV[13], ARGV[7], KEYS[2], ARGV[5], tonumber(ARGV[4]), now, tonumber(ARGV[3]))
  end
end
local id = log_revocation(KEYS[2], ARGV[5], tonumber(ARGV[4]), now, kind, ARGV[6], ARGV[7], tid, sub, ib, tonumber(ARGV[10]))
if kind ~= 'u' then
  redis.call('SET', KEYS[1], id, 'PX', ARGV[3])
end
return id
