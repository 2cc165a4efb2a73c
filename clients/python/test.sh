#!/usr/bin/env bash
# Test entry point of the Python client (clients/python):
#   installs what it needs (Debian packages as root, a venv with pinned
#   wheels from PyPI), checks that the checked-in stubs regenerate
#   identically from proto/, then runs pytest: offline unit tests, the
#   conformance vectors and the live scenarios against a real Tessera on a
#   real redis-server (started on free loopback ports by the harness).
# Env: TESSERA_BIN (default /tmp/tessera-stable/tessera),
#      TESSERA_VECTORS (default /tmp/tessera-stable/vectors),
#      PYTEST_ARGS (extra pytest arguments).
set -euo pipefail
cd "$(dirname "$0")"
here="$(pwd)"

export TESSERA_BIN="${TESSERA_BIN:-/tmp/tessera-stable/tessera}"
export TESSERA_VECTORS="${TESSERA_VECTORS:-/tmp/tessera-stable/vectors}"

# --- system prerequisites (Debian) -------------------------------------------
need=()
command -v python3 >/dev/null 2>&1 || need+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "test.sh: missing ${need[*]} and not root to install them" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
python3 - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"test.sh: CPython >= 3.11 needed, found {sys.version.split()[0]}")
PY

# --- venv with pinned dependencies ------------------------------------------
venv="$here/.venv"
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi
if ! cmp -s requirements.txt "$venv/.requirements.installed" 2>/dev/null; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r requirements.txt
  cp requirements.txt "$venv/.requirements.installed"
fi
py="$venv/bin/python"

# --- the stubs regenerate identically ---------------------------------------
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
PYTHON="$py" scripts/gen_stubs.sh "$tmp/pb"
for f in tessera_pb2.py tessera_pb2.pyi tessera_pb2_grpc.py; do
  if ! diff -u "src/tessera_client/pb/$f" "$tmp/pb/$f"; then
    echo "test.sh: src/tessera_client/pb/$f differs from what scripts/gen_stubs.sh generates" >&2
    exit 1
  fi
done
echo "stubs: up to date"

# --- types (the package ships py.typed) -----------------------------------------
"$py" -m mypy --ignore-missing-imports --exclude 'pb/' src/tessera_client

# --- prerequisites the caller provides ----------------------------------------
[[ -x "$TESSERA_BIN" ]] || { echo "test.sh: TESSERA_BIN=$TESSERA_BIN is not executable" >&2; exit 1; }
[[ -f "$TESSERA_VECTORS/vectors.json" ]] || { echo "test.sh: no $TESSERA_VECTORS/vectors.json" >&2; exit 1; }

# --- tests ---------------------------------------------------------------------
export PYTHONDONTWRITEBYTECODE=1
# shellcheck disable=SC2086
"$py" -m pytest -q -p no:cacheprovider ${PYTEST_ARGS:-} tests
