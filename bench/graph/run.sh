#!/usr/bin/env bash
# Graph API latency and graph-maintenance cost (issue #7), one release build.
# Usage: bench/graph/run.sh [--big]
#   default: 2,000 nodes / 20,000 edges (440,000 series; the process peaks at ~3 GiB)
#   --big adds 20,000 nodes / 200,000 edges (4.4 M series): expect ~30 GiB, more than a 24 GiB machine
# Side by side with Kiali's PromQL on Prometheus: bench/graph/kiali.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --locked -p meshfed-tests --example graph_bench
bin=target/release/examples/graph_bench
echo "== 2,000 nodes / 20,000 edges"
"$bin" --nodes 2000 --edges 20000
if [ "${1:-}" = "--big" ]; then
  echo "== 20,000 nodes / 200,000 edges"
  "$bin" --nodes 20000 --edges 200000 --requests 50
fi
