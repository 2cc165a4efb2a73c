# Sourced by the bench-* scripts: a process's CPU time, and CPU per call.

# utime + stime of process $1, in clock ticks (1/100 s).
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Microseconds per call for $1 ticks spent over $2 calls, one decimal.
us_per_call() { awk -v t="$1" -v n="$2" 'BEGIN {printf "%.1f", t * 10000 / n}'; }

# Start a throwaway redis-server on loopback port $1 (no persistence), data
# in $WORK/$1, extra arguments after; its pid joins PIDS (the caller's
# cleanup kills them) and goes to $WORK/$1/pid.
redis() { # port extra-args...
  local port=$1
  shift
  mkdir -p "$WORK/$port"
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK/$port" \
    --daemonize yes --pidfile "$WORK/$port/pid" "$@" >/dev/null
  for _ in $(seq 50); do [ -s "$WORK/$port/pid" ] && break; sleep 0.1; done
  PIDS+=("$(cat "$WORK/$port/pid")")
}
