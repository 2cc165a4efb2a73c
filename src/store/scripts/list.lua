-- A page of a subject's usable sessions (ListSessions): read only.
-- KEYS[1] the subject's session index
-- ARGV: 1 key prefix, 2 now ms, 3 list after this session id ('' = from the
--       first), 4 page size
-- Returns {next page's 'after' ('' = last page), then per session:
--          id, data, created, last rotation, idle expiry, ip, user agent,
--          tenant, subject, absolute expiry, idle ms, fingerprint hash}.
local limit = tonumber(ARGV[4])
local rows = usable_sessions(KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[3], limit, {'d', 'rot', 'ip', 'ua', 'tid', 'sub', 'i', 'fp'})
local out = {''}
for i, row in ipairs(rows) do
  if i > limit then
    out[1] = rows[limit][1]
    break
  end
  local f = row[2]
  out[#out + 1] = row[1]
  out[#out + 1] = f[6]
  out[#out + 1] = f[2]
  out[#out + 1] = f[7] or f[2]
  out[#out + 1] = f[4]
  out[#out + 1] = f[8] or ''
  out[#out + 1] = f[9] or ''
  out[#out + 1] = f[10] or ''
  out[#out + 1] = f[11] or ''
  out[#out + 1] = f[5]
  out[#out + 1] = f[12] or ''
  out[#out + 1] = f[13] or ''
end
return out
