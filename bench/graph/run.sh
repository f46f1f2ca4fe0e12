#!/usr/bin/env bash
# Graph API latency and graph-maintenance cost (issue #7), one release build. The cost is CPU
# time (the process's, all threads), A/B against an aggregator with graph.enabled: false fed the
# same relay batches; see tests/examples/graph_bench.rs and docs/graph.md, "Benchmarks".
# Usage: bench/graph/run.sh [--big]
#   default: 2,000 nodes / 20,000 edges (440,000 series; the process peaks at ~3 GiB), then the
#   A/B of ingest with the graph's upkeep in separate processes (AB_PAIRS pairs, default 5)
#   --big adds 20,000 nodes / 200,000 edges (4.4 M series) in --lean mode (the aggregator only:
#   no relay encode/decode, no in-memory store or bare table copies), 5 scrapes; it refuses to
#   start with less than 14 GiB available (`free`), and is stopped past 12 GiB resident.
# Side by side with Kiali's PromQL on Prometheus: bench/graph/kiali.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --locked -p meshfed-tests --example graph_bench
bin=target/release/examples/graph_bench
echo "== 2,000 nodes / 20,000 edges"
"$bin" --nodes 2000 --edges 20000
# A/B in separate processes (tests/examples/graph_bench/ab.rs): ingest plus the graph's upkeep
# per scrape with the graph off and on, alternately, AB_PAIRS times (default 5); the graph's
# cost is the median of the pairs' (on - off) / off. 40 scrapes per process, the last 30 timed.
pairs="${AB_PAIRS:-5}"
echo "== A/B, separate processes, ${pairs} pairs"
ab_log=$(mktemp)
for _ in $(seq "$pairs"); do
  for side in off on; do
    "$bin" --nodes 2000 --edges 20000 --ab "$side" --scrapes 40 | tee -a "$ab_log"
  done
done
# Per pair: off and on totals and the ratio; then the median ratio (mawk has no asort).
awk 'match($0, /total [0-9.]+/) { v = substr($0, RSTART + 6, RLENGTH - 6) }
     /^ab off/ { off = v } /^ab on/ { printf "%.2f %.1f %.1f\n", (v - off) / off * 100, off, v }' "$ab_log" |
  tee "$ab_log.pairs" | awk '{ printf "pair %d: off %s ms, on %s ms: +%s%%\n", NR, $2, $3, $1 }'
sort -n "$ab_log.pairs" | awk '{ r[NR] = $1 } END { m = (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2;
  printf "graph appends and upkeep: median +%.1f%% of the ingest CPU without the graph (%d pairs)\n", m, NR }'
rm -f "$ab_log.pairs"
rm -f "$ab_log"
if [ "${1:-}" = "--big" ]; then
  avail_gib=$(free -g | awk '/^Mem:/ {print $7}')
  if [ "$avail_gib" -lt 14 ]; then
    echo "only ${avail_gib} GiB available; the big size needs ~12 GiB: not started" >&2
    exit 1
  fi
  echo "== 20,000 nodes / 200,000 edges (lean)"
  # Watched, so a machine shared with others never comes near the OOM killer.
  "$bin" --nodes 20000 --edges 200000 --lean --scrapes 5 --requests 50 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    rss_kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    if [ "${rss_kib:-0}" -gt $((12 * 1024 * 1024)) ]; then
      echo "resident memory passed 12 GiB: stopped" >&2
      kill "$pid"
    fi
    sleep 1
  done
  wait "$pid"
fi
