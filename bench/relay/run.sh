#!/usr/bin/env bash
# Relay benchmark: throughput from many collectors into one aggregator over loopback, aggregator
# memory per connected collector, and 1,000 idle collectors. Bytes per sample on the wire against
# remote_write 1.0 is measured by `cargo test -p meshfed-relay --test wire_size -- --nocapture`.
#
#   bench/relay/run.sh [COLLECTORS=50] [SECONDS=20] [SERIES=1000] [IDLE=1000]
set -euo pipefail
cd "$(dirname "$0")/../.."
collectors=${1:-50}; seconds=${2:-20}; series=${3:-1000}; idle=${4:-1000}
ulimit -n 65536 2>/dev/null || true
cargo build --release --locked -q -p meshfed-cli --bin meshfed
cargo build --release --locked -q -p meshfed-tests --example relay_load
bin=target/release/meshfed
load=target/release/examples/relay_load
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run_aggregator() {
  local relay=$(port) http=$(port)
  "$bin" aggregator --insecure --relay-listen "127.0.0.1:$relay" --http-listen "127.0.0.1:$http" \
    --data-dir "$tmp/data-$RANDOM" 2>"$tmp/aggregator.log" &
  agg=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$http/-/ready" >/dev/null && break; sleep 0.1; done
  relay_addr="127.0.0.1:$relay"
}

echo "== throughput: $collectors collectors x $series series, ${seconds}s, WAL fsync per batch"
run_aggregator
base=$(rss_kb $agg)
stream=$("$load" stream "$relay_addr" "$collectors" "$seconds" "$series")
after=$(rss_kb $agg)
cpu=$(awk '{print ($14+$15)/100}' /proc/$agg/stat)
kill $agg; wait $agg 2>/dev/null || true
echo "$stream"
echo "aggregator RSS: ${base} KiB idle -> ${after} KiB after the run; CPU ${cpu}s"

echo "== $idle idle collectors"
run_aggregator
base=$(rss_kb $agg)
READY_FILE="$tmp/ready" "$load" idle "$relay_addr" "$idle" 10 >"$tmp/idle.json" &
loader=$!
for _ in $(seq 600); do [ -f "$tmp/ready" ] && break; sleep 0.1; done
sleep 2
held=$(rss_kb $agg)
wait $loader
cat "$tmp/idle.json"
kill $agg; wait $agg 2>/dev/null || true
echo "aggregator RSS: ${base} KiB -> ${held} KiB with $idle collectors connected: $(( (held - base) / idle )) KiB per idle collector"
