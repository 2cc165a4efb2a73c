#!/usr/bin/env bash
# Tests of @tessera/client (clients/node): installs what it needs (as root
# on a fresh Debian: redis-server; npm ci), checks the generated stubs
# against a fresh generation, builds, then runs the unit tests, the
# conformance vectors and the live scenarios with `node --test`.
# Env: TESSERA_BIN (the server binary), TESSERA_VECTORS (the vectors dir).
set -euo pipefail
cd "$(dirname "$0")"
export TESSERA_BIN="${TESSERA_BIN:-/tmp/tessera-stable/tessera}"
export TESSERA_VECTORS="${TESSERA_VECTORS:-/tmp/tessera-stable/vectors}"

missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "test.sh: missing ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
  echo "test.sh: Node.js >= 20 is needed (found $(node --version))" >&2
  exit 1
fi
if [ ! -x "$TESSERA_BIN" ]; then
  echo "test.sh: TESSERA_BIN=$TESSERA_BIN is not an executable" >&2
  exit 1
fi
if [ ! -f "$TESSERA_VECTORS/vectors.json" ]; then
  echo "test.sh: no vectors.json in TESSERA_VECTORS=$TESSERA_VECTORS" >&2
  exit 1
fi

npm ci --no-audit --no-fund --loglevel=error

# The checked-in stubs must be what the proto generates now.
rm -rf .gen-check
npx --no-install buf generate --template buf.gen.yaml -o .gen-check
if ! diff -r .gen-check/src/gen src/gen; then
  echo "test.sh: src/gen is stale: run 'npm run gen' and commit it" >&2
  exit 1
fi
rm -rf .gen-check
echo "stubs: src/gen matches a fresh generation"

npx --no-install tsc -p tsconfig.json
# The emitted .d.ts, as a TypeScript consumer compiles against it.
npx --no-install tsc -p test/types/tsconfig.json
node --test --test-concurrency=1 test/*.test.mjs
