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
--       12 key prefix, 13 subject key,
--       14 ('x' only) revoke sessions created at or before this ms, 15 ('x' only) batch size,
--       16 the W3C traceparent the events carry ('' = none)
--
-- Kind 'x' ("log out my other devices"), one bounded batch of it: KEYS[1]
-- and KEYS[3] are the subject's session index and ARGV[7] the session to
-- keep; the oldest sessions created at or before ARGV[14] ms (the request's
-- start: a session signed in since survives), at most ARGV[15] of them, are
-- revoked as sessions (their own event and marker, for ARGV[3] ms), and
-- entries of sessions that are already dead leave the indexes. Returns
-- {last event id or '', '1' if more such sessions may remain else '0'}:
-- the caller calls again until '0', so no single call's work grows with
-- the subject's size (issue #32).
local kind, now = ARGV[1], tonumber(ARGV[2])
if kind == 'x' then
  local prefix, keep, batch = ARGV[12], ARGV[7], tonumber(ARGV[15])
  local idx, cidx = indexes(prefix, ARGV[13])
  -- Sessions from before the creation index join it first, a window a call.
  local adopting = adopt_legacy(prefix, ARGV[13], ARGV[14])
  local cut = redis.call('GET', prefix .. 'ru:' .. ARGV[13])
  local last, done = '', 0
  -- One more than the batch, and one for the kept session: whether more remain.
  local members = redis.call('ZRANGE', cidx, '-inf', ARGV[14], 'BYSCORE', 'LIMIT', 0, batch + 2)
  local more = '0'
  for _, sid in ipairs(members) do
    if sid ~= keep then
      if done == batch then
        more = '1'
        break
      end
      local f = redis.call('HMGET', prefix .. 's:' .. sid, 'rev', 'c')
      -- (Revoked is the flag alone: see session_usable.)
      if f[2] and f[1] ~= '1' and not (cut and tonumber(cut) >= tonumber(f[2])) then
        last = revoke_session(prefix, sid, KEYS[2], ARGV[5], tonumber(ARGV[4]), now, tonumber(ARGV[3]), ARGV[16])
      else
        -- Dead already (expired, revoked or cut off): nothing to log.
        redis.call('ZREM', idx, sid)
        redis.call('ZREM', cidx, sid)
      end
      done = done + 1
    end
  end
  if adopting then more = '1' end
  return {last, more}
end
local tid, sub = ARGV[8], ARGV[9]
local ib = 0
if kind == 'u' then
  -- Anything kept past now? (O(log n): the members past their score are
  -- pruned by the writes, a bounded number at a time.)
  if redis.call('ZCOUNT', KEYS[3], '(' .. ARGV[2], '+inf') == 0 then return false end
  -- The cut-off only moves forward.
  local cur = redis.call('GET', KEYS[1])
  ib = now
  if cur and tonumber(cur) > now then ib = tonumber(cur) end
  redis.call('SET', KEYS[1], string.format('%d', ib), 'PX', ARGV[3])
  -- Every session it held is dead now: its indexes go (UNLINK frees a large
  -- one in the background), and the subject starts again from nothing.
  redis.call('UNLINK', KEYS[3], ARGV[12] .. 'sc:' .. ARGV[13])
else
  local existing = redis.call('GET', KEYS[1])
  if existing then return existing end
  if kind == 's' then
    if redis.call('EXISTS', KEYS[3]) == 0 then return false end
    local h = ARGV[11]
    if h ~= '' and not same_hash(session_get(KEYS[3], {})[1], h) and not superseded(KEYS[3], h) then
      return false
    end
    return revoke_session(ARGV[12], ARGV[7], KEYS[2], ARGV[5], tonumber(ARGV[4]), now, tonumber(ARGV[3]), ARGV[16])
  end
end
local id = log_revocation(KEYS[2], ARGV[5], tonumber(ARGV[4]), now, kind, ARGV[6], ARGV[7], tid, sub, ib, tonumber(ARGV[10]), ARGV[16])
if kind ~= 'u' then
  redis.call('SET', KEYS[1], id, 'PX', ARGV[3])
end
return id
