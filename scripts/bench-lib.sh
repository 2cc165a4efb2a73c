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

# Calls of Redis command $1 (lower case) that the redis-server on port $2
# has served so far (INFO commandstats; 0 before the first).
calls_of() { redis-cli -p "$2" INFO commandstats | awk -F'[=,]' "/^cmdstat_$1:/ {print \$2}" | grep . || echo 0; }

# Join the Redis nodes on ports $2... (started with --cluster-enabled) into
# one Cluster with $1 replicas per master (a node alone takes every slot; it
# needs --cluster-announce-ip to tell clients its address), and wait, up to
# 30 s, until every node says the Cluster is ok.
cluster_up() { # replicas port...
  local replicas=$1 p ok
  shift
  if [ $# = 1 ]; then
    redis-cli -p "$1" CLUSTER ADDSLOTSRANGE 0 16383 >/dev/null
  else
    # shellcheck disable=SC2046 # one address a node
    redis-cli --cluster create $(printf '127.0.0.1:%s ' "$@") --cluster-replicas "$replicas" \
      --cluster-yes >/dev/null
  fi
  for _ in $(seq 150); do
    ok=1
    for p in "$@"; do redis-cli -p "$p" CLUSTER INFO | grep -q cluster_state:ok || ok=0; done
    [ $ok = 1 ] && return
    sleep 0.2
  done
}

# A tessera binary for $1: the file itself if it is one, else a git
# revision built here (release, once) in a worktree under target/bench-ab/.
other_build() {
  if [ -x "$1" ] && [ -f "$1" ]; then
    realpath "$1"
    return
  fi
  local rev tree
  rev=$(git rev-parse --verify "$1^{commit}")
  tree=$PWD/target/bench-ab/$rev
  if [ ! -x "$tree/target/release/tessera" ]; then
    [ -d "$tree" ] || git worktree add --detach "$tree" "$rev" >/dev/null
    (cd "$tree" && cargo build --release --quiet --bin tessera) >&2
  fi
  echo "$tree/target/release/tessera"
}

# The median of column $3 over the rows of file $4 whose first two columns
# are $1 and $2.
median() { # key1 key2 column file
  awk -v a="$1" -v b="$2" -v c="$3" '$1 == a && $2 == b {print $c}' "$4" |
    sort -g | awk '{v[NR] = $1} END {if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

# Start build $2 as server "$1" on its own Redis (port $3), gRPC on $4 and
# admin on $5, signing with $WORK/key.pem, with the flags after; its pid
# goes to $WORK/$1.pid and joins PIDS.
serve_on_redis() { # label binary redis-port grpc-port admin-port flags...
  local label=$1 bin=$2 rport=$3 gport=$4 aport=$5
  shift 5
  redis "$rport"
  "$bin" serve --listen 127.0.0.1:"$gport" --admin-listen 127.0.0.1:"$aport" \
    --redis-url redis://127.0.0.1:"$rport" --signing-key "$WORK/key.pem" "$@" \
    2>"$WORK/tessera-$label.log" &
  PIDS+=($!)
  echo $! >"$WORK/$label.pid"
}

# One row "$1 $2 req/s p99-ms server-us/op store-us/op [$3 / calls]" from
# `tessera-bench load`'s table on stdin ($3: a count to divide by the calls
# answered, e.g. microseconds Redis spent in scripts).
load_row() { # load build [total]
  awk -v l="$1" -v b="$2" -v t="${3:-}" '
    / ok / {ok = $2; rps = $4} /latency ms/ {p99 = $8}
    /CPU/ {for (i = 1; i <= NF; i++) {if ($i == "server") srv = $(i + 1); if ($i == "store") st = $(i + 1)}}
    END {printf "%s %s %s %s %s %s", l, b, rps, p99, srv, st; if (t != "") printf " %.1f", t / ok; printf "\n"}'
}

# The introspection benches' caller: "gateway", key "change-me", allowed
# every RPC, as a callers file written to $1; FORM and BASIC are the headers
# of its introspection over HTTP.
FORM='content-type: application/x-www-form-urlencoded'
BASIC='authorization: Basic Z2F0ZXdheTpjaGFuZ2UtbWU=' # gateway:change-me
gateway_callers() {
  cat >"$1" <<TOML
[[caller]]
name = "gateway"
api_key_sha256 = "$(printf %s change-me | sha256sum | cut -d' ' -f1)"
allow = ["*"]
TOML
}
