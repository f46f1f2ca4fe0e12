#!/usr/bin/env bash
# Graph API latency and graph-maintenance cost (issue #7), one release build. The cost is CPU
# time (the process's, all threads), A/B against an aggregator with graph.enabled: false fed the
# same relay batches; see tests/examples/graph_bench/ and docs/graph.md, "Benchmarks".
# Usage: bench/graph/run.sh [--big]
#   default: 2,000 nodes / 20,000 edges (440,000 series; the process peaks at ~3 GiB), then the
#   A/B of ingest with the graph's upkeep, paired in one process (PAIRED_RUNS runs, default 3)
#   for two series mixes (graph-only series; Istio's default telemetry, 2.1 M series, ~4 GiB)
#   and, with AB_PAIRS > 0, in separate processes
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
# The graph's cost: paired A/B in one process (tests/examples/graph_bench/paired.rs): two
# aggregators, graph off and on (with its derived series, as by default), fed the same scrapes
# alternately with the caches flushed between turns; cost = (median per-scrape ingest difference
# + mean upkeep) / median graph-off scrape over scrapes 20..80 (two whole cycles of the
# upkeep's bursts). PAIRED_RUNS runs (default 3) per series mix; the figure is the median.
runs="${PAIRED_RUNS:-3}"
paired() { # label, graph_bench arguments...
  local label=$1 log
  shift
  log=$(mktemp)
  for _ in $(seq "$runs"); do
    "$bin" "$@" --ab paired --scrapes 80 --skip 20 | tee -a "$log"
  done
  grep -o 'graph cost [-+][0-9.]*' "$log" | sed 's/graph cost +*//' | sort -n |
    awk -v label="$label" '{ r[NR] = $1 } END { printf "%s: graph cost median %+.1f%% of the ingest CPU without the graph (%d paired runs)\n", label, r[int((NR + 1) / 2)], NR }'
  rm -f "$log"
}
echo "== A/B, paired in one process, ${runs} runs per mix"
# Worst case: every ingested series is one the graph keeps (Istio telemetry cut down to what
# the graph reads, source reporter only).
paired "graph-only series (440,000, 20,000 edges)" --nodes 2000 --edges 20000
# Istio's default telemetry: both reporters, the three histograms, each proxy's own series
# (tests/examples/graph_bench/mix.rs). 2.1 M series; both stores' WALs take ~10 GiB on disk.
free_gib=$(df -P -BG "${TMPDIR:-/tmp}" | awk 'NR == 2 { sub("G", "", $4); print $4 }')
if [ "$free_gib" -ge 14 ]; then
  paired "Istio sidecar series (2.1 M, 5,000 edges)" --mix istio --nodes 2000 --edges 5000
else
  echo "only ${free_gib} GiB free in ${TMPDIR:-/tmp}; the Istio mix needs ~12 GiB: skipped" >&2
fi
# The same A/B in separate processes (tests/examples/graph_bench/ab.rs), AB_PAIRS alternating
# pairs (default 0: skipped). Each side then keeps its own cache between scrapes, and a run
# differs from the next of the same side by up to ±20% on a shared VM.
pairs="${AB_PAIRS:-0}"
if [ "$pairs" -gt 0 ]; then
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
    printf "separate processes: median +%.1f%% (%d pairs)\n", m, NR }'
  rm -f "$ab_log.pairs" "$ab_log"
fi
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
