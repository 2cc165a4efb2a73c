
-- Group commit (appended after a script whose body was wrapped as
-- `local function run(KEYS, ARGV) ... end`): runs several calls of that
-- script in one EVALSHA, in order, each as if alone. Every script is safe to
-- re-send, so a re-sent batch is too.
-- KEYS: the keys of the first ARGV[2] calls, one after another.
-- ARGV[1] number of calls; ARGV[2] how many of them declare their keys in
-- KEYS; then per call: key count, argument count, its keys if not declared
-- (a Cluster batch declares only the first call's keys, which route it to
-- its master, and runs with allow-cross-slot-keys), arguments.
-- Returns one reply per call; a call that raised an error replies
-- {'!error', message} and the others go on.
local replies = {}
local k, a = 1, 3
local declared = tonumber(ARGV[2])
for i = 1, tonumber(ARGV[1]) do
  local nk, na = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  a = a + 2
  local keys, args = {}, {}
  if i <= declared then
    for j = 1, nk do keys[j] = KEYS[k]; k = k + 1 end
  else
    for j = 1, nk do keys[j] = ARGV[a]; a = a + 1 end
  end
  for j = 1, na do args[j] = ARGV[a]; a = a + 1 end
  local ok, reply = pcall(run, keys, args)
  if ok then
    replies[i] = reply
  else
    replies[i] = {'!error', type(reply) == 'table' and tostring(reply.err) or tostring(reply)}
  end
end
return replies
