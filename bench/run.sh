#!/usr/bin/env bash
# The benchmark: trasloco against Dovecot's own `doveadm backup` over imapc and against a raw
# pipelined MULTIAPPEND ceiling, on one deterministic corpus, in one invocation. Appends the
# table to BENCHMARKS.md. Needs root for the WAN scenario (network namespaces + TUN devices).
#
#   bash bench/run.sh                   4 mailboxes x 2,000 messages (~290 MB), 3 runs, loopback + WAN
#   bash bench/run.sh --scale 8x4000    a bigger corpus
#   bash bench/run.sh --runs 5 --no-wan
#
# Everything lives in bench/work (git-ignored); servers listen on 127.0.0.1 only, and in the WAN
# scenario on an address inside network namespaces this script creates and removes.
set -euo pipefail
cd "$(dirname "$0")/.."
scale=4x2000 runs=3 wan=1 loopback=1 tools=""
# At 40 ms RTT the single-connection ceiling is left out: its one fully pipelined stream stalls
# now and then over the wire (runs of 5 s and of 150 s for the same work), and no WAN target
# depends on it.
wan_tools="ceiling:4,doveadm:1,doveadm:4,trasloco:1,trasloco:4,trasloco-noverify:4"
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) scale=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --no-wan) wan=0; shift ;;
    --no-loopback) loopback=0; shift ;;
    --tools) tools=$2; wan_tools=$2; shift 2 ;;
    --wan-tools) wan_tools=$2; shift 2 ;;
    *) echo "usage: bash bench/run.sh [--scale MAILBOXESxMESSAGES] [--runs N] [--no-wan] [--no-loopback] [--tools T:P,…] [--wan-tools T:P,…]" >&2; exit 64 ;;
  esac
done
command_line="bash bench/run.sh --scale $scale --runs $runs"
if [ "$wan" = 0 ]; then command_line+=" --no-wan"; fi
if [ -n "$tools" ]; then command_line+=" --tools $tools"; fi
if [ "$loopback" = 0 ]; then command_line+=" --no-loopback"; fi

bash scripts/dovecot-pair.sh install
if ! [ -x /usr/bin/time ] || ! command -v tc >/dev/null || ! command -v ip >/dev/null; then
  [ "$(id -u)" = 0 ] || { echo "bench: needs /usr/bin/time and iproute2; run as root or: sudo apt-get install time iproute2" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends time iproute2 >/dev/null
fi
cargo build --release --locked --quiet -p trasloco-cli -p trasloco-bench
bench=$PWD/target/release/trasloco-bench
work=$PWD/bench/work
mkdir -p "$work"
rm -f "$work/wan.json"
tool_args=()
if [ -n "$tools" ]; then tool_args=(--tools "$tools"); fi

if [ "$loopback" = 1 ]; then
  rm -f "$work/loopback.json"
  "$bench" suite --dir "$work/loopback" --label loopback --scale "$scale" --runs "$runs" \
    "${tool_args[@]}" --out "$work/loopback.json"
fi

if [ "$wan" = 1 ]; then
  [ "$(id -u)" = 0 ] || { echo "bench: the WAN scenario needs root (ip netns, TUN devices); use --no-wan" >&2; exit 1; }
  # Tools in one namespace, servers in another, joined by a TUN device on each side and
  # `trasloco-bench wire`, which holds every packet 20 ms each way: a 40 ms round trip.
  # (tc netem would do the same in the kernel, but this machine's kernel has no sch_netem.)
  # Addresses 10.77.0.1/.2 exist only inside these two namespaces.
  tools_ns=trasloco-bench-tools-$$ servers_ns=trasloco-bench-servers-$$
  cleanup() {
    bash scripts/dovecot-pair.sh stop "$work/wan/servers" 2>/dev/null || true
    [ -n "${wire_pid:-}" ] && kill "$wire_pid" 2>/dev/null || true
    ip netns del "$tools_ns" 2>/dev/null || true
    ip netns del "$servers_ns" 2>/dev/null || true
  }
  trap cleanup EXIT
  ip netns add "$tools_ns"
  ip netns add "$servers_ns"
  for ns in "$tools_ns" "$servers_ns"; do ip -n "$ns" link set lo up; done
  ip -n "$tools_ns" tuntap add dev tbwire mode tun
  ip -n "$servers_ns" tuntap add dev tbwire mode tun
  ip -n "$tools_ns" addr add 10.77.0.1 peer 10.77.0.2 dev tbwire
  ip -n "$servers_ns" addr add 10.77.0.2 peer 10.77.0.1 dev tbwire
  # A long device queue: the relay drains it, and a short one would drop bursts the relay is
  # about to read, which a real 40 ms path would not.
  ip -n "$tools_ns" link set tbwire mtu ${WIRE_MTU:-1500} txqueuelen 10000 up
  ip -n "$servers_ns" link set tbwire mtu ${WIRE_MTU:-1500} txqueuelen 10000 up
  "$bench" wire --a "$tools_ns:tbwire" --b "$servers_ns:tbwire" --delay-ms 20 &
  wire_pid=$!
  sleep 0.5
  ip netns exec "$tools_ns" "$bench" suite --dir "$work/wan" --label "40 ms RTT" --scale "$scale" --runs "$runs" \
    --tools "$wan_tools" --host 10.77.0.2 --servers-netns "$servers_ns" --out "$work/wan.json"
fi

# With --no-loopback, the loopback results of the previous invocation (same corpus) are reported.
results=()
if [ -f "$work/loopback.json" ]; then results+=("$work/loopback.json"); fi
if [ "$wan" = 1 ]; then results+=("$work/wan.json"); fi
"$bench" report "${results[@]}" \
  --append BENCHMARKS.md --command "$command_line"
