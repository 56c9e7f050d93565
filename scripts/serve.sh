#!/usr/bin/env bash
# Starts ternd with the embedded default: RocksDB in ./tern-data, raw UDP on
# 127.0.0.1:7400 and QUIC next to it on 127.0.0.1:7401 (override with
# TERN_SERVER_LISTEN / TERN_QUIC_LISTEN / TERN_SERVER_DATA_DIR or pass ternd
# arguments after --). Prints tokens for users 1 and 2 and the seal key
# clients need (raw UDP is encrypted by default); ternd then prints its
# addresses, its QUIC certificate fingerprint and `tern` command lines that
# work against it, over UDP and over QUIC.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --bin ternd --bin tern
data="${TERN_SERVER_DATA_DIR:-./tern-data}"
mkdir -p "$data"
echo "token for user 1, device 1: $(target/release/ternd token --data-dir "$data" --user 1 --device 1)" >&2
echo "token for user 2, device 1: $(target/release/ternd token --data-dir "$data" --user 2 --device 1)" >&2
if key=$(target/release/ternd seal-key --data-dir "$data" 2>/dev/null); then
    echo "seal key (pass as --seal-key or TERN_SEAL_KEY): $key" >&2
else
    echo "no seal key: [seal] policy is off, raw UDP is in the clear (pass no --seal-key)" >&2
fi
exec target/release/ternd serve --data-dir "$data" "$@"
