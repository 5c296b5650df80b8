#!/usr/bin/env bash
# Generates the Python protobuf and gRPC code for proto/payswitch/v1 into OUT/payswitch/v1.
# The one command behind `make proto`; `make proto-check` runs it into a scratch folder and diffs.
set -euo pipefail
out=${1:?usage: gen_proto.sh OUT_DIR}
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out/payswitch/v1"
cd "$here"
"$here/.venv/bin/python" -m grpc_tools.protoc -Iproto \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  proto/payswitch/v1/*.proto
