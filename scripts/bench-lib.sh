# Sourced by the bench-* scripts: a process's CPU time, and CPU per call.

# utime + stime of process $1, in clock ticks (1/100 s).
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Microseconds per call for $1 ticks spent over $2 calls, one decimal.
us_per_call() { awk -v t="$1" -v n="$2" 'BEGIN {printf "%.1f", t * 10000 / n}'; }
