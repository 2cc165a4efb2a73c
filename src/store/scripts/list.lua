-- A page of a subject's usable sessions (ListSessions): read only.
-- KEYS[1] the subject's session index
-- ARGV: 1 key prefix, 2 now ms, 3 list after this session id ('' = from the
--       first), 4 page size
-- Returns {next page's 'after' ('' = last page), then per session:
--          id, data, created, last rotation, idle expiry, ip, user agent,
--          tenant, subject, absolute expiry, idle ms, fingerprint hash}.
local limit = tonumber(ARGV[4])
local rows = usable_sessions(KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[3], limit, {'d', 'r', 'ip', 'ua', 't', 'u', 'i', 'f'})
local out = {''}
for i, row in ipairs(rows) do
  if i > limit then
    out[1] = rows[limit][1]
    break
  end
  -- h, rev, c, k, e, a (instants), then the extra fields above
  local f = row[2]
  for _, v in ipairs({row[1], f[7], f[3], string.format('%d', after_c(f[3], f[8] or '0')), f[5],
      f[9] or '', f[10] or '', f[11] or '', f[12] or '', f[6], f[13] or '', f[14] or ''}) do
    out[#out + 1] = v
  end
end
return out
