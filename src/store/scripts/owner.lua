-- The tenant of a session, read before a caller scoped to tenants may
-- refresh or revoke it (store::Store::session_tenant). A read: nothing
-- changes (but the one-time rewrite of a hash of the layout before).
-- KEYS[1] session hash
-- ARGV: 1 refresh hash that must be the session's current one or one it
--       superseded and remembers ('' = no check)
-- Returns the tenant ('' for none), or false when there is no such session
-- (none kept under that id, or the hash is not one of its).
local f = session_get(KEYS[1], {'t'})
if not f[1] then return false end
local h = ARGV[1]
if h ~= '' and not same_hash(f[1], h) and not superseded(KEYS[1], h) then return false end
return f[2] or ''
