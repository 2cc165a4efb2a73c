-- A page of a subject's usable sessions (ListSessions), newest first: it
-- writes nothing but adopt_legacy's bounded upgrade step, and its work is
-- bounded by the page, never by the subject's size
-- (issue #32: a page once read and sorted the whole index).
-- KEYS[1] the subject's creation index (sc:)
-- ARGV: 1 key prefix, 2 now ms, 3 list after this position ('' = from the
--       newest; else '<created ms>-<session id>' of the last session of
--       the page before), 4 page size
-- Order: creation descending, then session id descending (the index's own
-- order under REV), which never changes while a session lives, so paging
-- neither repeats nor skips a session that lives through it.
-- Returns {next page's position ('' = last page), then per session:
--          id, data, created, last rotation, idle expiry, ip, user agent,
--          tenant, subject, absolute expiry, idle ms, fingerprint hash}.
-- A page reads at most 2 × its size + 32 index entries: behind many dead
-- entries a page can come back short (even empty) with a next position,
-- as AIP-158 allows.
local limit, now, prefix = tonumber(ARGV[4]), tonumber(ARGV[2]), ARGV[1]
local max, at_c, at_sid = '+inf', nil, nil
if ARGV[3] ~= '' then
  local c, sid = string.match(ARGV[3], '^(%d+)%-(.+)$')
  if not c then return {''} end
  max, at_c, at_sid = c, c, sid
end
local budget = limit * 2 + 32
-- Every session here is the subject's: its cut-off is read once (KEYS[1]
-- is the prefix, 'sc:', then the subject key).
local uk = string.sub(KEYS[1], #prefix + 4)
local cut = redis.call('GET', prefix .. 'ru:' .. uk)
adopt_legacy(prefix, uk, '')
local members
if at_c and redis.call('ZSCORE', KEYS[1], at_sid) == at_c then
  -- The position's session is still listed: go on right after it, by rank
  -- (exact however many sessions share its millisecond).
  local r = redis.call('ZREVRANK', KEYS[1], at_sid)
  members = redis.call('ZRANGE', KEYS[1], r + 1, r + budget, 'REV', 'WITHSCORES')
  at_c = nil
else
  -- It has left (revoked, expired): from its instant down, passing over
  -- the ids at that instant at or above its own.
  members = redis.call('ZRANGE', KEYS[1], max, '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, budget, 'WITHSCORES')
end
local out = {''}
local count, last = 0, nil
for i = 1, #members, 2 do
  local sid, c = members[i], members[i + 1]
  -- At the position's own instant, ids at or above the position's came before.
  if not (at_c and c == at_c and not bytes_before(sid, at_sid)) then
    local f = usable_session(prefix, sid, now, {'d', 'r', 'ip', 'ua', 't', 'u', 'i', 'f'}, cut)
    if f then
      if count == limit then
        -- One more usable session exists: there is a next page.
        out[1] = last
        return out
      end
      count = count + 1
      last = f[3] .. '-' .. sid
      -- h, rev, c, k, e, a (instants), then the extra fields above
      for _, v in ipairs({sid, f[7], f[3], string.format('%d', after_c(f[3], f[8] or '0')), f[5],
          f[9] or '', f[10] or '', f[11] or '', f[12] or '', f[6], f[13] or '', f[14] or ''}) do
        out[#out + 1] = v
      end
    end
  end
end
-- The budget ran out before the index did: go on from the last entry read
-- (one that exists, so the next page continues by rank: paging progresses).
if #members == budget * 2 then
  out[1] = members[#members] .. '-' .. members[#members - 1]
end
return out
