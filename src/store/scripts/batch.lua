
-- Group commit (appended after a script whose body was wrapped as
-- `local function run(KEYS, ARGV) ... end`): runs several calls of that
-- script in one EVALSHA, in order, each as if alone. Every script is safe to
-- re-send, so a re-sent batch is too.
-- KEYS: the keys of the first ARGV[2] calls, one after another.
-- ARGV[1] number of calls; ARGV[2] how many of them declare their keys in
-- KEYS; ARGV[3] and ARGV[4] every call's key count and argument count when
-- all calls have the same ones (calls of one script do), else -1 and -1;
-- then per call: its key count and argument count (when ARGV[3] is -1), its
-- keys if not declared (a Cluster batch declares only the first call's
-- keys, which route it to its master, and runs with allow-cross-slot-keys),
-- its arguments.
-- Returns one reply per call; a call that raised an error replies
-- {'!error', message} and the others go on.
local replies = {}
local k, a = 1, 5
local declared = tonumber(ARGV[2])
local every_nk, every_na = tonumber(ARGV[3]), tonumber(ARGV[4])
for i = 1, tonumber(ARGV[1]) do
  local nk, na = every_nk, every_na
  if nk < 0 then
    nk, na = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
    a = a + 2
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
  local ok, reply = pcall(run, keys, args)
  if ok then
    replies[i] = reply
  else
    replies[i] = {'!error', type(reply) == 'table' and tostring(reply.err) or tostring(reply)}
  end
end
return replies
