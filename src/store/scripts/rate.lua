-- A bare rate-limit check (per-caller limits).
-- KEYS[1] rate key; ARGV: 1 emission interval ms, 2 burst window ms (the time
-- is Redis's own: see gcra.lua)
return gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
