#!/usr/bin/env bash
# Install ghz (the Go gRPC load generator the benchmark runs beside its own) with `go install`.
# Idempotent: does nothing when ghz is already on PATH or in $(go env GOPATH)/bin (~/go/bin,
# where payswitch-bench looks). Needs Go and the module proxy; exits 1 when it cannot install,
# and payswitch-bench then reports "ghz not found" and runs everything else.
#   GHZ_VERSION=v0.93.0 benchmarks/install_ghz.sh    # default: latest
set -euo pipefail

version="${GHZ_VERSION:-latest}"

if command -v ghz >/dev/null 2>&1; then
  echo "ghz: already installed at $(command -v ghz)"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  for candidate in /usr/local/go/bin/go /usr/lib/go/bin/go; do
    if [ -x "$candidate" ]; then PATH="$(dirname "$candidate"):$PATH"; break; fi
  done
fi
if ! command -v go >/dev/null 2>&1; then
  echo "ghz: Go is not installed; install Go (https://go.dev/dl/) to run ghz" >&2
  exit 1
fi
bin="$(go env GOPATH)/bin/ghz"
if [ -x "$bin" ]; then
  echo "ghz: already installed at $bin"
  exit 0
fi
echo "ghz: go install github.com/bojand/ghz/cmd/ghz@${version}"
if ! go install "github.com/bojand/ghz/cmd/ghz@${version}"; then
  echo "ghz: go install failed" >&2
  exit 1
fi
echo "ghz: installed at $bin"
