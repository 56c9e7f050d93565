#!/usr/bin/env bash
# Kernel-level weak-network lab: two network namespaces joined by a veth pair,
# with random packet loss applied by iptables (`-m statistic --mode random`)
# in both directions. Needs root. Touches nothing but its own namespaces: the
# veth pair lives inside them, and deleting the namespaces removes it and
# every rule. See docs/lab-netns.md.
#
#   scripts/netns-lab.sh up [--loss P]        create the lab (idempotent: recreates it)
#   scripts/netns-lab.sh loss P [--queue N]   set the loss probability (0 disables);
#                                             --queue N: then send the packets to NFQUEUE N
#                                             (a delay program must consume it)
#   scripts/netns-lab.sh exec server|client -- CMD...
#   scripts/netns-lab.sh counters             veth and drop counters, one line per side
#   scripts/netns-lab.sh status               namespaces, addresses, rules
#   scripts/netns-lab.sh down                 delete both namespaces
#   scripts/netns-lab.sh run [--loss P] -- SERVER CMD... ::: CLIENT CMD...
#       up, start SERVER CMD in the server namespace (background), run CLIENT
#       CMD in the client namespace, stop the server, down (also on failure
#       or Ctrl-C); exits with the client's status.
#
# Environment: NETNS_LAB_PREFIX (default "ternlab") names the namespaces
# PREFIX-s and PREFIX-c and the veth ends PREFIX-s0 / PREFIX-c0 (the names
# must stay short: 15 characters at most for an interface);
# NETNS_LAB_SUBNET (default "10.77.0") gives SUBNET.1/24 (server) and
# SUBNET.2/24 (client).
set -euo pipefail

PREFIX="${NETNS_LAB_PREFIX:-ternlab}"
SUBNET="${NETNS_LAB_SUBNET:-10.77.0}"
NS_S="${PREFIX}-s"
NS_C="${PREFIX}-c"
IF_S="${PREFIX}-s0"
IF_C="${PREFIX}-c0"
IP_S="${SUBNET}.1"
IP_C="${SUBNET}.2"
CHAIN="TERNLAB_LOSS"

die() { echo "netns-lab: $*" >&2; exit 1; }
log() { echo "netns-lab: $*" >&2; }

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

need_root() {
  [ "$(id -u)" -eq 0 ] || die "needs root (network namespaces and iptables)"
}

# Installs what is missing: iproute2 (ip), iptables, ethtool.
ensure_tools() {
  local need=()
  command -v ip >/dev/null 2>&1 || need+=(iproute2)
  command -v iptables >/dev/null 2>&1 || need+=(iptables)
  command -v ethtool >/dev/null 2>&1 || need+=(ethtool)
  if [ ${#need[@]} -gt 0 ]; then
    log "installing: ${need[*]}"
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
}

ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$1"; }

in_s() { ip netns exec "$NS_S" "$@"; }
in_c() { ip netns exec "$NS_C" "$@"; }

valid_prob() {
  awk -v p="$1" 'BEGIN { exit !(p ~ /^[0-9]*\.?[0-9]+$/ && p >= 0 && p <= 1) }' \
    || die "loss must be a probability in 0..1, got '$1'"
}

# Loss is applied where a packet ARRIVES: the INPUT chain of the receiving
# namespace, for packets coming in on the veth. A DROP in OUTPUT would not be
# a loss: the kernel reports it to the sending socket (EPERM for UDP, and TCP
# keeps the segment queued and sends it again without counting a loss).
# Dropping on input, the packet has crossed the veth (and been counted there)
# and then vanishes, as on a real path.
set_loss() {
  local p="$1" queue="${2:-}"
  valid_prob "$p"
  local ns ifc
  for pair in "$NS_S:$IF_S" "$NS_C:$IF_C"; do
    ns="${pair%%:*}"
    ifc="${pair##*:}"
    ip netns exec "$ns" iptables -w -F "$CHAIN"
    # Counting rules first (no target: they only count), then the drop.
    ip netns exec "$ns" iptables -w -A "$CHAIN" -p udp
    ip netns exec "$ns" iptables -w -A "$CHAIN" -p tcp
    if awk -v p="$p" 'BEGIN { exit !(p > 0) }'; then
      ip netns exec "$ns" iptables -w -A "$CHAIN" -m statistic --mode random \
        --probability "$p" -j DROP
    fi
    # Optional delay: what survives the loss goes to an NFQUEUE, where a
    # user-space program (tern-peerbench delay --queue N --ms D, one per
    # namespace) holds each packet and then accepts it. Without such a
    # program the packets are dropped, so start it first.
    if [ -n "$queue" ]; then
      ip netns exec "$ns" iptables -w -A "$CHAIN" -j NFQUEUE --queue-num "$queue"
    fi
  done
  log "loss $p on input, both directions ($IF_S, $IF_C)${queue:+, then NFQUEUE $queue}"
}

cmd_down() {
  need_root
  local any=0
  for ns in "$NS_S" "$NS_C"; do
    if ns_exists "$ns"; then
      # Deleting a namespace deletes the veth end inside it (and so the pair)
      # and the namespace's own iptables rules.
      ip netns pids "$ns" 2>/dev/null | while read -r pid; do
        kill "$pid" 2>/dev/null || true
      done
      ip netns delete "$ns"
      any=1
    fi
  done
  [ "$any" -eq 1 ] && log "removed namespaces $NS_S and $NS_C"
  return 0
}

cmd_up() {
  need_root
  local loss=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --loss) loss="${2:?--loss needs a value}"; shift 2 ;;
      *) die "up: unknown argument '$1'" ;;
    esac
  done
  valid_prob "$loss"
  ensure_tools
  cmd_down >/dev/null 2>&1 || true
  ip netns add "$NS_S"
  ip netns add "$NS_C"
  # Create the pair directly inside the namespaces: at no moment does an
  # interface of ours exist in the caller's namespace.
  ip link add "$IF_S" netns "$NS_S" type veth peer name "$IF_C" netns "$NS_C"
  in_s ip addr add "$IP_S/24" dev "$IF_S"
  in_c ip addr add "$IP_C/24" dev "$IF_C"
  for ns in "$NS_S" "$NS_C"; do
    ip netns exec "$ns" ip link set lo up
    # IPv4 only: no IPv6 neighbour or router chatter in the counters.
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 || true
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 || true
  done
  in_s ip link set "$IF_S" up
  in_c ip link set "$IF_C" up
  # Real links carry frames of at most the MTU: without this, TCP would hand
  # the veth 64 KB segments (TSO/GSO) and one random drop would take out
  # dozens of MSS-sized packets at once, or count them as one.
  in_s ethtool -K "$IF_S" tso off gso off gro off >/dev/null 2>&1 || log "ethtool -K failed on $IF_S"
  in_c ethtool -K "$IF_C" tso off gso off gro off >/dev/null 2>&1 || log "ethtool -K failed on $IF_C"
  for pair in "$NS_S:$IF_S" "$NS_C:$IF_C"; do
    ns="${pair%%:*}"
    ifc="${pair##*:}"
    ip netns exec "$ns" iptables -w -N "$CHAIN"
    ip netns exec "$ns" iptables -w -A INPUT -i "$ifc" -j "$CHAIN"
  done
  set_loss "$loss"
  log "up: $NS_S ($IF_S $IP_S/24) <-> $NS_C ($IF_C $IP_C/24), loss $loss each way"
}

cmd_exec() {
  need_root
  local side="${1:-}"
  shift || true
  [ "${1:-}" = "--" ] && shift
  [ $# -gt 0 ] || die "exec: no command"
  case "$side" in
    server|s) exec ip netns exec "$NS_S" "$@" ;;
    client|c) exec ip netns exec "$NS_C" "$@" ;;
    *) die "exec: side must be server or client, got '$side'" ;;
  esac
}

# One line per side: interface, rx/tx bytes and packets (the veth's own
# counters: every frame that crossed it, Ethernet header included), then the
# packets and bytes the loss rule dropped on input.
cmd_counters() {
  need_root
  local ns ifc
  for pair in "$NS_S:$IF_S" "$NS_C:$IF_C"; do
    ns="${pair%%:*}"
    ifc="${pair##*:}"
    ns_exists "$ns" || die "namespace $ns does not exist (run: $0 up)"
    local st="/sys/class/net/$ifc/statistics"
    local rxb txb rxp txp
    rxb=$(ip netns exec "$ns" cat "$st/rx_bytes")
    txb=$(ip netns exec "$ns" cat "$st/tx_bytes")
    rxp=$(ip netns exec "$ns" cat "$st/rx_packets")
    txp=$(ip netns exec "$ns" cat "$st/tx_packets")
    # Rules of the loss chain, in order: udp count, tcp count, DROP. The
    # counting rules see every packet that ARRIVED (before the drop), IP
    # header included, Ethernet header not.
    local rules
    rules=$(ip netns exec "$ns" iptables -w -L "$CHAIN" -n -v -x \
      | awk 'NR > 2 { if ($3 == "DROP") { dp += $1; db += $2 }
                      else if ($3 == "17" || $3 == "udp") { up += $1; ub += $2 }
                      else if ($3 == "6" || $3 == "tcp") { tp += $1; tb += $2 } }
             END { printf "in_udp_packets=%d in_udp_bytes=%d in_tcp_packets=%d in_tcp_bytes=%d dropped_packets=%d dropped_bytes=%d", up, ub, tp, tb, dp, db }')
    echo "$ifc rx_bytes=$rxb tx_bytes=$txb rx_packets=$rxp tx_packets=$txp $rules"
  done
}

cmd_status() {
  need_root
  for ns in "$NS_S" "$NS_C"; do
    if ns_exists "$ns"; then
      echo "== $ns"
      ip netns exec "$ns" ip -brief addr
      ip netns exec "$ns" iptables -w -L "$CHAIN" -n -v -x 2>/dev/null || true
    else
      echo "== $ns: absent"
    fi
  done
}

cmd_run() {
  need_root
  local loss=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --loss) loss="${2:?--loss needs a value}"; shift 2 ;;
      --) shift; break ;;
      *) die "run: unknown argument '$1' (expected --loss P -- SERVER ::: CLIENT)" ;;
    esac
  done
  local server=() client=() seen=0
  for a in "$@"; do
    if [ "$seen" -eq 0 ] && [ "$a" = ":::" ]; then seen=1; continue; fi
    if [ "$seen" -eq 0 ]; then server+=("$a"); else client+=("$a"); fi
  done
  [ ${#server[@]} -gt 0 ] && [ ${#client[@]} -gt 0 ] \
    || die "run: expected SERVER CMD ::: CLIENT CMD"
  local spid=""
  cleanup() {
    local rc=$?
    if [ -n "$spid" ] && kill -0 "$spid" 2>/dev/null; then
      kill "$spid" 2>/dev/null || true
      wait "$spid" 2>/dev/null || true
    fi
    cmd_down || true
    exit "$rc"
  }
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  cmd_up --loss "$loss"
  ip netns exec "$NS_S" "${server[@]}" &
  spid=$!
  local rc=0
  ip netns exec "$NS_C" "${client[@]}" || rc=$?
  exit "$rc"
}

main() {
  local sub="${1:-}"
  [ $# -gt 0 ] && shift
  case "$sub" in
    up) cmd_up "$@" ;;
    down) cmd_down ;;
    loss)
      need_root
      case "$#:${2:-}" in
        1:) set_loss "$1" ;;
        3:--queue) set_loss "$1" "$3" ;;
        *) die "loss P [--queue N]" ;;
      esac ;;
    exec) cmd_exec "$@" ;;
    counters) cmd_counters ;;
    status) cmd_status ;;
    run) cmd_run "$@" ;;
    -h|--help|help|"") usage ;;
    *) die "unknown subcommand '$sub' (try --help)" ;;
  esac
}

main "$@"
