#!/usr/bin/env bash
# Side by side on the same data (issue #7): the PromQL queries Kiali issues for one workload
# graph (bench/graph/kiali_queries.py) against Prometheus 2.42, and meshfed's GET /api/v1/graph.
# Needs `prometheus` and `promtool` on PATH and python3. Not run in CI.
# Usage: bench/graph/kiali.sh [--nodes N] [--edges N] [--parallel P]   (default 2000 / 20000 / 4)
#        [--om FILE --end UNIX_S]   reuse an OpenMetrics file written by openmetrics.py (same sizes)
set -euo pipefail
cd "$(dirname "$0")/../.."
nodes=2000 edges=20000 parallel=4 scrapes=13 port=19391 om= end=
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) nodes=$2; shift 2 ;;
    --edges) edges=$2; shift 2 ;;
    --parallel) parallel=$2; shift 2 ;;
    --om) om=$2; shift 2 ;;
    --end) end=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
prometheus --version 2>&1 | head -1
work=$(mktemp -d /tmp/meshfed-kiali-bench.XXXXXX)
prom_pid=
cleanup() {
  if [ -n "$prom_pid" ]; then kill "$prom_pid" 2>/dev/null || true; wait "$prom_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

t=$(date +%s.%N)
if [ -z "$om" ]; then
  end=$(( $(date +%s) / 5 * 5 - 60 ))
  om="$work/data.om"
  python3 bench/graph/openmetrics.py --nodes "$nodes" --edges "$edges" --scrapes "$scrapes" --end "$end" > "$om"
fi
echo "== data: $nodes nodes / $edges edges, $scrapes scrapes 5 s apart ending at $end"
promtool tsdb create-blocks-from openmetrics "$om" "$work/tsdb" > "$work/import.log"
echo "generated and imported in $(echo "$(date +%s.%N) - $t" | bc) s"

printf 'global:\n  scrape_interval: 1h\n' > "$work/prometheus.yml"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --storage.tsdb.retention.time=3650d --web.listen-address="127.0.0.1:$port" \
  --query.max-samples=500000000 --query.timeout=10m > "$work/prometheus.log" 2>&1 &
prom_pid=$!
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$port/-/ready" > /dev/null && break
  sleep 1
done
curl -sf "http://127.0.0.1:$port/-/ready" > /dev/null || { tail "$work/prometheus.log"; exit 1; }
namespaces=$(( nodes < 50 ? nodes : 50 ))
echo "== Kiali's query set on Prometheus (time = last sample + 2.5 s)"
python3 bench/graph/kiali_queries.py --url "http://127.0.0.1:$port" --time "$end.5" \
  --namespaces "$namespaces" --parallel "$parallel" | tee "$work/kiali.out"
echo "prometheus peak RSS: $(grep VmHWM /proc/$prom_pid/status | awk '{print $2/1024 " MiB"}')"
kill "$prom_pid"; wait "$prom_pid" 2>/dev/null || true; prom_pid=

echo "== meshfed GET /api/v1/graph on the same series"
cargo build --release --locked -p meshfed-tests --example graph_bench 2>&1 | tail -1
target/release/examples/graph_bench --nodes "$nodes" --edges "$edges" --scrapes "$scrapes" --requests 100 \
  | tee "$work/meshfed.out"

kiali_ms=$(sed -n 's/^kiali query set: median \([0-9.]*\) ms.*/\1/p' "$work/kiali.out")
read -r p50 p99 < <(sed -n 's/^GET \/api\/v1\/graph: p50 \([0-9.]*\) ms, p99 \([0-9.]*\) ms.*/\1 \2/p' "$work/meshfed.out")
echo "== side by side"
printf '%-44s %10s\n' "Kiali query set on Prometheus (median)" "$kiali_ms ms"
printf '%-44s %10s\n' "meshfed GET /api/v1/graph p50 / p99" "$p50 / $p99 ms"
printf '%-44s %10s\n' "speed-up vs p50 / vs p99" "$(echo "scale=0; $kiali_ms / $p50" | bc)x / $(echo "scale=0; $kiali_ms / $p99" | bc)x"
