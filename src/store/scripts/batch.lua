
-- Group commit (appended after a script whose body was wrapped as
-- `local function run(KEYS, ARGV, SHARED) ... end`): runs several calls of
-- that script in one EVALSHA, in order, each as if alone. Every script is
-- safe to re-send, so a re-sent batch is too.
-- KEYS: the keys of the first ARGV[2] calls, one after another.
-- ARGV[1] number of calls; ARGV[2] how many of them declare their keys in
-- KEYS; ARGV[3], ARGV[4] and ARGV[5] every call's key count, argument count
-- and shared argument count when all calls have the same ones (calls of one
-- script do), else -1, -1 and -1; ARGV[6] the number of shared arguments
-- when every call has the same ones (a deployment's policy: they follow,
-- once, as every call's SHARED), else -1; then per call: its three counts
-- (when ARGV[3] is -1), its keys if not declared (a Cluster batch declares
-- only the first call's keys, which route it to its master, and runs with
-- allow-cross-slot-keys), its arguments, its shared arguments (when ARGV[6]
-- is -1).
-- Returns one reply per call; a call that raised an error replies
-- {'!error', message} and the others go on.
local replies = {}
local k, a = 1, 7
local declared = tonumber(ARGV[2])
local every_nk, every_na, every_ns = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local once = tonumber(ARGV[6])
local shared
if once >= 0 then
  shared = {unpack(ARGV, a, a + once - 1)}
  a = a + once
end
for i = 1, tonumber(ARGV[1]) do
  local nk, na, ns = every_nk, every_na, every_ns
  if nk < 0 then
    nk, na, ns = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    a = a + 3
  end
  -- Each table is made at its size in one step (a loop would grow it
  -- five times for create.lua's arguments, in bytecode).
  local keys
  if i <= declared then
    keys = {unpack(KEYS, k, k + nk - 1)}
    k = k + nk
  else
    keys = {unpack(ARGV, a, a + nk - 1)}
    a = a + nk
  end
  local args = {unpack(ARGV, a, a + na - 1)}
  a = a + na
  if once < 0 then
    shared = {unpack(ARGV, a, a + ns - 1)}
    a = a + ns
  end
  local ok, reply = pcall(run, keys, args, shared)
  if ok then
    replies[i] = reply
  else
    replies[i] = {'!error', type(reply) == 'table' and tostring(reply.err) or tostring(reply)}
  end
end
return replies
