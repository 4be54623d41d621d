#!/usr/bin/env bash
# The test suite: unit, property and integration tests of every crate. The integration tests
# start the real server on loopback ports with temporary data directories; nothing else is needed.
set -euo pipefail
cd "$(dirname "$0")/.."

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "$@"
else
  cargo test --workspace --locked --no-fail-fast "$@"
fi
