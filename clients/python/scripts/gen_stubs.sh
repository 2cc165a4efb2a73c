#!/usr/bin/env bash
# Regenerate the checked-in gRPC stubs from the repository's proto.
# Usage: scripts/gen_stubs.sh [OUTDIR]   (default: src/tessera_client/pb)
# Needs grpcio-tools (the pinned version in requirements.txt).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
proto_root="$(cd "$here/../../proto" && pwd)"
out="${1:-$here/src/tessera_client/pb}"
py="${PYTHON:-$here/.venv/bin/python}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$py" -m grpc_tools.protoc -I "$proto_root" \
  --python_out="$tmp" --grpc_python_out="$tmp" --pyi_out="$tmp" \
  tessera/v1/tessera.proto
mkdir -p "$out"
# The generated service module imports the messages as the absolute module
# `tessera.v1.tessera_pb2`; inside this package it is a sibling module.
sed -e 's/^from tessera\.v1 import tessera_pb2 as/from . import tessera_pb2 as/' \
  "$tmp/tessera/v1/tessera_pb2_grpc.py" > "$out/tessera_pb2_grpc.py"
cp "$tmp/tessera/v1/tessera_pb2.py" "$tmp/tessera/v1/tessera_pb2.pyi" "$out/"
