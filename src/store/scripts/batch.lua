
-- Group commit (appended after a script whose body was wrapped as
-- `local function run(KEYS, ARGV) ... end`): runs several calls of that
-- script in one EVALSHA, in order, each as if alone. Every script is safe to
-- re-send, so a re-sent batch is too.
-- KEYS: every call's keys, one after another.
-- ARGV[1] number of calls; then per call: key count, argument count, arguments.
-- Returns one reply per call; a call that raised an error replies
-- {'!error', message} and the others go on.
local replies = {}
local k, a = 1, 2
for i = 1, tonumber(ARGV[1]) do
  local nk, na = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  a = a + 2
  local keys, args = {}, {}
  for j = 1, nk do keys[j] = KEYS[k]; k = k + 1 end
  for j = 1, na do args[j] = ARGV[a]; a = a + 1 end
  local ok, reply = pcall(run, keys, args)
  if ok then
    replies[i] = reply
  else
    replies[i] = {'!error', type(reply) == 'table' and tostring(reply.err) or tostring(reply)}
  end
end
return replies
