#!/usr/bin/env bash
# Fuzzes both HTTP APIs against their OpenAPI documents with schemathesis
# (every check: no 5xx, responses and status codes as documented, invalid
# input refused, valid input accepted): ternd's server API
# (src/server/api/openapi.json) and `tern sidecar`'s local API
# (src/sidecar/openapi.json), each served by the real binary on loopback.
# Bounded: EXAMPLES generated cases per operation and phase (default 25),
# deterministic generation, about a minute in all.
#
#   scripts/api-fuzz.sh [EXAMPLES]
#
# scripts/api_fuzz_hooks.py caps the waits the APIs allow by design
# (?wait=... up to timeout_ms, open event streams) so the run stays short.
# The WebSocket endpoint is left out: an HTTP fuzzer cannot complete a
# WebSocket handshake (tests/sidecar_stream.rs covers it).
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${1:-25}"
scripts/deps-web.sh schemathesis
cargo build --locked --bin ternd --bin tern
bin="${CARGO_TARGET_DIR:-target}/debug"
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# Waits up to 30 s for a line starting with $2 in file $1; prints the rest.
wait_line() {
  for _ in $(seq 300); do
    if line=$(grep -m1 "^$2" "$1" 2>/dev/null); then
      echo "${line#"$2"}"
      return 0
    fi
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1" >&2
  cat "$1" >&2 || true
  return 1
}

key="fuzz-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
TERN_API_LISTEN=127.0.0.1:0 TERN_API_KEYS="$key" RUST_LOG=warn \
  "$bin/ternd" serve --listen 127.0.0.1:0 --data-dir "$work/ternd" >"$work/ternd.out" 2>"$work/ternd.log" &
pids+=($!)
udp=$(wait_line "$work/ternd.out" "listening on udp://")
api=$(wait_line "$work/ternd.out" "listening on api ")
seal=$(wait_line "$work/ternd.out" "seal key ")
token=$("$bin/ternd" token --data-dir "$work/ternd" --user 1 --device 1)
RUST_LOG=warn "$bin/tern" sidecar --server "$udp" --token "$token" --seal-key "$seal" \
  --state-dir "$work/sidecar" --listen 127.0.0.1:0 >"$work/sidecar.out" 2>"$work/sidecar.log" &
pids+=($!)
sidecar=$(wait_line "$work/sidecar.out" "listening on ")
bearer=$(cat "$work/sidecar/api.token")

export SCHEMATHESIS_HOOKS=api_fuzz_hooks PYTHONPATH="$PWD/scripts${PYTHONPATH:+:$PYTHONPATH}"
common=(--checks all -n "$examples" --request-timeout 5 --generation-deterministic --no-color)
status=0
# The sidecar first: the server API's fuzzing kicks random users, the
# sidecar's among them (a kicked device is logged out for good).
echo "== schemathesis: tern sidecar local API ($sidecar)"
st run "$sidecar/v1/openapi.json" --url "$sidecar" -H "Authorization: Bearer $bearer" \
  --exclude-path /v1/events/ws "${common[@]}" || status=1
echo "== schemathesis: ternd server API ($api)"
st run "$api/v1/openapi.json" --url "$api" -H "Authorization: Bearer $key" "${common[@]}" || status=1
if [ "$status" -ne 0 ]; then
  echo "== logs"; tail -n 50 "$work/ternd.log" "$work/sidecar.log" >&2 || true
fi
exit "$status"
