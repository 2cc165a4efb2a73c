#!/usr/bin/env bash
# Generate the Python stubs from the proto (not checked in).
set -euo pipefail
cd "$(dirname "$0")"
PY="${PYTHON:-python3}"
mkdir -p gen
"$PY" -m grpc_tools.protoc -I ../../proto --python_out=gen --grpc_python_out=gen tessera/v1/tessera.proto
touch gen/tessera/__init__.py gen/tessera/v1/__init__.py
