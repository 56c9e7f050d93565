#!/usr/bin/env bash
# Runs the whole test suite: unit, property, simulation (thousands of seeded
# runs in virtual time), spec test vectors and integration tests against real
# sockets, RocksDB and SIGKILLed daemon processes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo test --workspace --locked "$@"
