-- A bare rate-limit check (per-caller limits).
-- KEYS[1] rate key; ARGV: 1 now ms (unused: Redis's clock decides), 2 emission interval ms, 3 burst window ms
return gcra(KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]))
