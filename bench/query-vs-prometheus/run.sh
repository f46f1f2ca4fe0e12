#!/usr/bin/env bash
# PromQL latency: meshfed's engine behind its Prometheus HTTP API versus Prometheus 2.42, on the
# same data, for the Istio dashboards' panel queries sent the way Grafana sends them.
#
#   bench/query-vs-prometheus/run.sh                     # SIZES="10000 100000" SAMPLES=280 REPS=10
#   SIZES=1000000 REPS=3 bench/query-vs-prometheus/run.sh
#
# Data: store/examples/remote_write_load.rs --histograms (the store benchmark's loader): SIZE
# series in groups of 21 — an Istio-shaped `istio_requests_total` counter (28 labels,
# store/tests/common/istio.rs) and its 20 `istio_request_duration_milliseconds_bucket` series —
# scraped every 15 s for SAMPLES scrapes (280 = 70 min). Prometheus gets it over remote_write 1.0
# (--web.enable-remote-write-receiver, so it stays in Prometheus' head, as the last hours of a real
# Prometheus do); meshfed gets the same samples in a store directory (cut into a block), then
# query/examples/serve_store.rs serves it over meshfed_query::router.
#
# Queries (queries.py): range queries over the last hour of data (10 min after the series start,
# so no window sees a series begin: there 2.42 and 3.x extrapolate rate() differently) with Grafana's step for a 1 h panel at a
# 15 s scrape interval (15 s, start/end aligned to it), POST form bodies on one kept-alive connection
# per system (as Grafana's Go client reuses connections), one warm-up each, then
# REPS rounds alternating between the systems; both answers are compared (same series and points,
# values within 1e-6). Both servers run at the same time but are queried one at a time. Query
# limits are raised on both (max samples 1e9) so that the mesh-wide panels at 1 M series run.
#
# Needs: apt-get install prometheus curl; python3. Listens on 127.0.0.1 only; work under one
# mktemp directory, removed at exit unless KEEP=1.
set -euo pipefail

SIZES=${SIZES:-"10000 100000"}
SAMPLES=${SAMPLES:-280}
REPS=${REPS:-10}
PROM_PORT=${PROM_PORT:-29090}
MESHFED_PORT=${MESHFED_PORT:-29091}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/query-vs-prom.XXXXXX")
PIDS=()
stop_all() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    PIDS=()
}
cleanup() {
    stop_all
    if [[ "${KEEP:-0}" != 1 ]]; then rm -rf "$WORK"; else echo "kept $WORK" >&2; fi
}
trap cleanup EXIT

for tool in prometheus curl python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install prometheus curl)" >&2; exit 1; }
done

# SKIP_BUILD=1 uses the binaries already built (e.g. while another build holds the target dir).
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    (cd "$ROOT" && cargo build --release -q -p meshfed-store --example remote_write_load \
        && cargo build --release -q -p meshfed-query --example serve_store)
fi
TARGET=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
LOAD="$TARGET/release/examples/remote_write_load"
SERVE="$TARGET/release/examples/serve_store"

wait_http() {
    for _ in $(seq 1 600); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.5; done
    echo "not ready: $1" >&2; return 1
}
for port in "$PROM_PORT" "$MESHFED_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port is in use (set PROM_PORT / MESHFED_PORT)" >&2; exit 1
    fi
done
rss_mib() { awk '$1 == "VmRSS:" { printf "%d", $2 / 1024 }' "/proc/$1/status"; }

echo "machine: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p'), $(nproc) CPUs, $(free -g | awk '/^Mem:/ { print $2 }') GiB; $(prometheus --version 2>&1 | head -1)" >&2

for SERIES in $SIZES; do
    NOW_MS=$(($(date +%s) * 1000))
    START_MS=$((NOW_MS - SAMPLES * 15000 - 600000))
    # Samples 7 s off the 15 s query grid, as real scrapes have their own phase (on the grid, 2.x's
    # closed and 3.x's left-open range windows would differ by one sample in every window).
    START_MS=$((START_MS - START_MS % 15000 + 7000))
    LAST_MS=$((START_MS + (SAMPLES - 1) * 15000))
    Q_END=$((LAST_MS / 1000 - (LAST_MS / 1000) % 15))
    Q_START=$((Q_END - 3600))
    echo "== $SERIES series x $SAMPLES samples, queries $Q_START..$Q_END step 15 s" >&2

    "$LOAD" --store "$WORK/meshfed-$SERIES" --series "$SERIES" --samples "$SAMPLES" \
        --start-ms "$START_MS" --histograms > "$WORK/meshfed-$SERIES.out"
    "$SERVE" --store "$WORK/meshfed-$SERIES" --listen "127.0.0.1:$MESHFED_PORT" \
        --max-samples 1000000000 --timeout-secs 900 > "$WORK/serve-$SERIES.log" 2>&1 &
    MESHFED=$!; PIDS+=("$MESHFED")

    printf 'global:\n  scrape_interval: 15s\n' > "$WORK/prometheus.yml"
    prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prom-$SERIES" \
        --storage.tsdb.retention.time=1y --web.listen-address="127.0.0.1:$PROM_PORT" \
        --web.enable-remote-write-receiver --query.max-samples=1000000000 --query.timeout=15m \
        > "$WORK/prometheus-$SERIES.log" 2>&1 &
    PROM=$!; PIDS+=("$PROM")
    wait_http "http://127.0.0.1:$PROM_PORT/-/ready"
    "$LOAD" --url "http://127.0.0.1:$PROM_PORT/api/v1/write" --series "$SERIES" --samples "$SAMPLES" \
        --start-ms "$START_MS" --histograms > "$WORK/prom-$SERIES.out"
    wait_http "http://127.0.0.1:$MESHFED_PORT/api/v1/status/buildinfo"
    sleep 10
    echo "RSS before queries: Prometheus $(rss_mib "$PROM") MiB, meshfed $(rss_mib "$MESHFED") MiB" >&2

    echo
    echo "### $SERIES series ($((SERIES / 21)) counters + their 20 buckets each) x $SAMPLES samples; 1 h range, step 15 s, $REPS rounds"
    echo
    python3 "$ROOT/bench/query-vs-prometheus/queries.py" "http://127.0.0.1:$PROM_PORT" \
        "http://127.0.0.1:$MESHFED_PORT" "$Q_START" "$Q_END" 15 "$REPS"
    echo "RSS after queries: Prometheus $(rss_mib "$PROM") MiB, meshfed $(rss_mib "$MESHFED") MiB" >&2
    stop_all
    rm -rf "$WORK/meshfed-$SERIES" "$WORK/prom-$SERIES"
done
