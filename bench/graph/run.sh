#!/usr/bin/env bash
# Graph API latency and graph-maintenance cost (issue #7), one release build. The cost is CPU
# time (the process's, all threads), A/B against an aggregator with graph.enabled: false fed the
# same relay batches; see tests/examples/graph_bench.rs and docs/graph.md, "Benchmarks".
# Usage: bench/graph/run.sh [--big]
#   default: 2,000 nodes / 20,000 edges (440,000 series; the process peaks at ~3 GiB)
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
