#!/usr/bin/env bash
# Benchmarks of the Go client (loopback only, bounded): the Go benchmark of
# LocalVerifier.Verify on one core, then cmd/tessera-bench against a live
# Tessera on a Redis it starts: local vs gRPC Verify, and revocation
# propagation at RATE revocations/s for SECONDS, revoked by the Rust load
# generator (TESSERA_BENCH_BIN, default target/release/tessera-bench:
# `cargo build --release -p tessera-bench`). Results: BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
export TESSERA_BIN="${TESSERA_BIN:-/tmp/tessera-stable/tessera}"
export TESSERA_BENCH_BIN="${TESSERA_BENCH_BIN:-$(cd ../.. && pwd)/target/release/tessera-bench}"
source ./env.sh
cd "$PKG_DIR"
echo "## go test -bench LocalVerify -cpu 1"
go test -count=1 -run '^$' -bench LocalVerify -benchmem -cpu 1 -benchtime 2s .
echo "## cmd/tessera-bench"
go run ./cmd/tessera-bench -rate "${RATE:-1000}" -seconds "${SECONDS_OF_LOAD:-3}" "$@"
