#!/usr/bin/env bash
# Graph API latency and graph-maintenance cost at two sizes (issue #7), one release build.
# Usage: bench/graph/run.sh [--big]   (--big adds 20,000 nodes / 200,000 edges: ~5M series, ~20 GB)
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
