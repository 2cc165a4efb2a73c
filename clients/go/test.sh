#!/usr/bin/env bash
# The Go client's test entry point: installs what it needs (Debian, as
# root), checks the checked-in stubs against protoc, then `go test` runs the
# unit tests, the conformance vectors and the live scenarios against a real
# Tessera (TESSERA_BIN) on a redis-server it starts.
#
#   TESSERA_BIN      the server binary (default /tmp/tessera-stable/tessera)
#   TESSERA_VECTORS  the conformance vectors dir (default /tmp/tessera-stable/vectors)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

export TESSERA_BIN="${TESSERA_BIN:-/tmp/tessera-stable/tessera}"
export TESSERA_VECTORS="${TESSERA_VECTORS:-/tmp/tessera-stable/vectors}"

# --- prerequisites (Debian packages; Go modules cannot be fetched here) ---
need=()
command -v go >/dev/null || need+=(golang-go)
command -v protoc >/dev/null || need+=(protobuf-compiler)
command -v protoc-gen-go >/dev/null || need+=(protoc-gen-go)
command -v protoc-gen-go-grpc >/dev/null || need+=(protoc-gen-go-grpc)
[ -f /usr/include/google/protobuf/timestamp.proto ] || need+=(libprotobuf-dev)
command -v redis-server >/dev/null || need+=(redis-server)
[ -d /usr/share/gocode/src/google.golang.org/grpc ] || need+=(golang-google-grpc-dev)
[ -d /usr/share/gocode/src/google.golang.org/protobuf ] || need+=(golang-google-protobuf-dev)
[ -d /usr/share/gocode/src/github.com/golang/protobuf ] || need+=(golang-github-golang-protobuf-1-5-dev)
[ -d /usr/share/gocode/src/google.golang.org/genproto/googleapis/rpc/errdetails ] || need+=(golang-google-genproto-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  if [ "$(id -u)" != 0 ]; then
    echo "test.sh: missing packages (${need[*]}) and not root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
[ -x "$TESSERA_BIN" ] || { echo "test.sh: no server binary at TESSERA_BIN=$TESSERA_BIN" >&2; exit 1; }

# shellcheck source=env.sh
source ./env.sh

# --- the checked-in stubs are exactly what protoc generates ---
gen="$(mktemp -d)"
trap 'rm -rf "$gen"' EXIT
protoc -I ../../proto --go_out="$gen" --go-grpc_out="$gen" tessera/v1/tessera.proto
if ! diff -ru "$gen/tessera.dev/client/go/tesserapb" tesserapb; then
  echo "test.sh: tesserapb/ differs from the generated stubs; regenerate with:" >&2
  echo "  protoc -I ../../proto --go_out=DIR --go-grpc_out=DIR tessera/v1/tessera.proto" >&2
  exit 1
fi
echo "stubs: identical to protoc's output"

cd "$PKG_DIR"
unformatted="$(gofmt -l . | grep -v '^tesserapb/' || true)"
if [ -n "$unformatted" ]; then
  echo "test.sh: not gofmt-formatted: $unformatted" >&2
  exit 1
fi
go vet . ./cmd/...

# --- go test: unit tests, vectors, live scenarios ---
log="$(mktemp)"
start=$(date +%s)
set +e
go test -count=1 -timeout 240s -v . >"$log" 2>&1
status=$?
set -e
passed=$(grep -c -- '--- PASS' "$log" || true)
failed=$(grep -c -- '--- FAIL' "$log" || true)
if [ $status -ne 0 ]; then
  grep -v -E '^(=== (RUN|PAUSE|CONT)|    --- PASS|--- PASS)' "$log" | tail -150
fi
grep -E '^(--- FAIL|ok|FAIL)' "$log" || true
echo "go test: $passed passed, $failed failed (tests and subtests) in $(( $(date +%s) - start )) s"
rm -f "$log"
exit $status
