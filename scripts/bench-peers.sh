#!/usr/bin/env bash
# Tern against a real peer (Mosquitto, MQTT QoS 1) under kernel-level loss:
# installs what it needs (mosquitto, iptables, ethtool, build deps), builds
# release, sets up the namespace lab (scripts/netns-lab.sh), runs
# tern-peerbench inside it, writes raw results to docs/charts/data/ and the
# SVG charts to docs/charts/, and removes the namespaces at exit (also on
# failure or Ctrl-C). Needs root. About 5 minutes with the defaults.
#
#   scripts/bench-peers.sh                 full run
#   scripts/bench-peers.sh --quick         smoke run (small counts, ~1 minute)
#   scripts/bench-peers.sh [tern-peerbench run options...]
#
# Environment: OUT (default docs/charts/data), CHARTS (default docs/charts),
# NETNS_LAB_PREFIX (default ternlab; see scripts/netns-lab.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" -eq 0 ] || { echo "bench-peers: needs root (network namespaces, iptables)" >&2; exit 1; }

OUT="${OUT:-docs/charts/data}"
CHARTS="${CHARTS:-docs/charts}"
PREFIX="${NETNS_LAB_PREFIX:-ternlab}"
export NETNS_LAB_PREFIX="$PREFIX"

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
command -v ethtool >/dev/null 2>&1 || need+=(ethtool)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v git >/dev/null 2>&1 || need+=(git)
if [ ${#need[@]} -gt 0 ]; then
  echo "bench-peers: installing ${need[*]}" >&2
  apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The Debian package starts a broker on 1883 in the host namespace; this
# benchmark starts its own in the lab and needs none of it.
MOSQUITTO="$(command -v mosquitto || echo /usr/sbin/mosquitto)"

scripts/deps.sh
cargo build --release --locked --workspace --bin ternd --bin tern-proxy --bin tern-peerbench
TARGET="${CARGO_TARGET_DIR:-target}/release"

cleanup() { scripts/netns-lab.sh down || true; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

scripts/netns-lab.sh up --loss 0
mkdir -p "$OUT" "$CHARTS"
scripts/netns-lab.sh exec client -- "$TARGET/tern-peerbench" run \
  --netns "$PREFIX" --lab-script "$PWD/scripts/netns-lab.sh" \
  --ternd "$TARGET/ternd" --proxy "$TARGET/tern-proxy" --mosquitto "$MOSQUITTO" \
  --out "$OUT" --charts "$CHARTS" "$@"
