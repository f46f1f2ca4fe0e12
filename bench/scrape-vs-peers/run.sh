#!/usr/bin/env bash
# Scrape cost side by side: the meshfed collector, Prometheus 2.42 in agent mode and vmagent scrape
# the same simulated Istio sidecars (`meshfed sim --file-sd`) at the same interval for the same
# time, each forwarding what it scraped: meshfed over the relay to `meshfed aggregator --insecure`,
# the other two by remote_write to a VictoriaMetrics single node used only as a sink.
#
#   bench/scrape-vs-peers/run.sh                          # PODS_PER_WORKLOAD=5 EXTRA_NS=4, 5 s, 120 s
#   DURATION=300 PODS_PER_WORKLOAD=10 bench/scrape-vs-peers/run.sh
#   SCRAPERS=meshfed KEEP_ALIVE=false bench/scrape-vs-peers/run.sh   # the collector alone, an A/B
#   SCALE=issue bench/scrape-vs-peers/run.sh              # issue #3's scale: 310 pods x ~1,500 series
#
# SCALE=issue sets PODS_PER_WORKLOAD=5 EXTRA_NS=10 (310 sidecars) ENVOY_UPSTREAM_SERIES=1350 (the
# per-upstream-cluster `envoy_cluster_*` stats of an unscoped sidecar, on top of the ~150 Istio
# series a pod shows) and WARMUP=30; each can still be overridden. ~465k series, ~140 MB a round.
#
# Needs: apt-get install prometheus victoria-metrics curl. Everything listens on 127.0.0.1 and
# writes under one mktemp directory (removed at exit unless KEEP=1). The three scrapers run one
# after the other against the same simulator; the aggregator/sink run throughout.
#
# Reported per scraper: CPU seconds (utime+stime from /proc/<pid>/stat) over DURATION after a
# WARMUP, per million samples scraped in that window (the series the targets expose, counted by
# fetching every target at the start and end of the window, times the scrape rounds), and peak RSS
# (VmHWM from /proc/<pid>/status) at the end of the window. The simulator's series set grows while
# traffic reaches new destinations, hence the per-window count.
set -euo pipefail

if [[ "${SCALE:-}" == issue ]]; then
    EXTRA_NS=${EXTRA_NS:-10}
    ENVOY_UPSTREAM_SERIES=${ENVOY_UPSTREAM_SERIES:-1350}
    WARMUP=${WARMUP:-30}
fi
PODS_PER_WORKLOAD=${PODS_PER_WORKLOAD:-5}
EXTRA_NS=${EXTRA_NS:-4}
ENVOY_UPSTREAM_SERIES=${ENVOY_UPSTREAM_SERIES:-0}
CLUSTERS=${CLUSTERS:-1}
INTERVAL=${INTERVAL:-5}
WARMUP=${WARMUP:-15}
DURATION=${DURATION:-120}
SCRAPERS=${SCRAPERS:-"meshfed prometheus vmagent"}
KEEP_ALIVE=${KEEP_ALIVE:-}   # empty: the collector's default (scrape.keep_alive)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/scrape-vs-peers.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    if [[ "${KEEP:-0}" != 1 ]]; then rm -rf "$WORK"; else echo "kept $WORK" >&2; fi
}
trap cleanup EXIT

for tool in prometheus vmagent victoria-metrics curl python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install prometheus victoria-metrics curl)" >&2; exit 1; }
done
(cd "$ROOT" && cargo build --release -q -p meshfed-cli)
TARGET=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
MESHFED="$TARGET/release/meshfed"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {
    for _ in $(seq 1 150); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.2; done
    echo "not ready: $1" >&2; return 1
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hwm_kb() { awk '$1 == "VmHWM:" { print $2 }' "/proc/$1/status"; }
TICKS=$(getconf CLK_TCK)

# --- simulator, aggregator, sink -------------------------------------------------------------------
"$MESHFED" sim --clusters "$CLUSTERS" --pods-per-workload "$PODS_PER_WORKLOAD" \
    --extra-namespaces "$EXTRA_NS" --envoy-upstream-series "$ENVOY_UPSTREAM_SERIES" --file-sd "$WORK/sd.json" > "$WORK/sim.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 1 100); do [[ -s "$WORK/sd.json" ]] && break; sleep 0.2; done
# Series the targets expose right now (the simulator's series set grows as traffic reaches new
# destinations, so each scraper's window is counted separately).
count_series() {
    python3 - "$WORK/sd.json" <<'PY'
import json, sys, urllib.request
groups = json.load(open(sys.argv[1]))
pods = series = 0
for g in groups:
    for t in g["targets"]:
        body = urllib.request.urlopen(f"http://{t}{g['labels'].get('__metrics_path__', '/metrics')}").read().decode()
        pods += 1
        series += sum(1 for l in body.splitlines() if l and not l.startswith("#"))
print(pods, series)
PY
}
read -r PODS SERIES < <(count_series)
ROUNDS=$((DURATION / INTERVAL))
echo "pods=$PODS series at start=$SERIES interval=${INTERVAL}s window=${DURATION}s rounds=$ROUNDS work=$WORK" >&2
echo "machine: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

RELAY_PORT=$(free_port); AGG_HTTP=$(free_port); SINK_PORT=$(free_port)
"$MESHFED" aggregator --insecure --relay-listen "127.0.0.1:$RELAY_PORT" --http-listen "127.0.0.1:$AGG_HTTP" \
    > "$WORK/aggregator.log" 2>&1 &
AGG_PID=$!; PIDS+=("$AGG_PID")
victoria-metrics -storageDataPath="$WORK/sink" -httpListenAddr="127.0.0.1:$SINK_PORT" > "$WORK/sink.log" 2>&1 &
PIDS+=("$!")
wait_http "http://127.0.0.1:$SINK_PORT/health"

cat > "$WORK/prometheus.yml" <<YAML
global:
  scrape_interval: ${INTERVAL}s
  scrape_timeout: $((INTERVAL - 1))s
scrape_configs:
  - job_name: envoy-stats
    file_sd_configs: [{files: ["$WORK/sd.json"]}]
YAML
cp "$WORK/prometheus.yml" "$WORK/prometheus-agent.yml"
printf 'remote_write:\n  - url: http://127.0.0.1:%s/api/v1/write\n' "$SINK_PORT" >> "$WORK/prometheus-agent.yml"
COLLECTOR_HTTP=$(free_port)
cat > "$WORK/collector.yml" <<YAML
cluster: bench
relay: {endpoints: ["http://127.0.0.1:$RELAY_PORT"], insecure: true}
scrape: {interval_secs: $INTERVAL, timeout_ms: $(((INTERVAL - 1) * 1000))${KEEP_ALIVE:+, keep_alive: $KEEP_ALIVE}}
targets: {files: ["$WORK/sd.json"]}
listen_addr: 127.0.0.1:$COLLECTOR_HTTP
YAML

# measure NAME PID: CPU over the window after WARMUP, peak RSS at its end; then stops PID.
RESULTS=()
measure() {
    local name=$1 pid=$2
    sleep "$WARMUP"
    local s0; s0=$(count_series | cut -d' ' -f2)
    local t0; t0=$(cpu_ticks "$pid")
    sleep "$DURATION"
    local t1; t1=$(cpu_ticks "$pid")
    local hwm; hwm=$(hwm_kb "$pid")
    echo "  load $(cut -d' ' -f1-3 /proc/loadavg); aggregator rss $(awk '$1 == "VmRSS:" { print $2 / 1024 }' "/proc/$AGG_PID/status") MiB" >&2
    local s1; s1=$(count_series | cut -d' ' -f2)
    kill "$pid"; wait "$pid" 2>/dev/null || true
    # Samples scraped in the window: the mean exposed series count times the scrape rounds.
    local samples=$(((s0 + s1) / 2 * ROUNDS))
    local cpu; cpu=$(echo "scale=3; ($t1 - $t0) / $TICKS" | bc)
    local per; per=$(echo "scale=3; $cpu * 1000000 / $samples" | bc)
    RESULTS+=("$name|$s0-$s1|$samples|$cpu|$per|$((hwm / 1024))")
    echo "$name: series=$s0..$s1 samples=$samples cpu=${cpu}s per_million=${per}s peak_rss=$((hwm / 1024))MiB" >&2
}

# --- meshfed collector ---------------------------------------------------------------------------
if [[ " $SCRAPERS " == *" meshfed "* ]]; then
"$MESHFED" collector --config "$WORK/collector.yml" > "$WORK/collector.log" 2>&1 &
PID=$!; PIDS+=("$PID")
measure "meshfed collector${KEEP_ALIVE:+ (keep_alive $KEEP_ALIVE)}" "$PID"
grep -c "Scrape failed" "$WORK/collector.log" | sed 's/^/meshfed failed scrapes: /' >&2 || true
fi

# --- Prometheus 2.42 agent -----------------------------------------------------------------------
if [[ " $SCRAPERS " == *" prometheus "* ]]; then
PROM_PORT=$(free_port)
prometheus --enable-feature=agent --config.file="$WORK/prometheus-agent.yml" \
    --storage.agent.path="$WORK/agent" --web.listen-address="127.0.0.1:$PROM_PORT" \
    > "$WORK/prometheus.log" 2>&1 &
PID=$!; PIDS+=("$PID")
measure "prometheus $(prometheus --version 2>&1 | awk 'NR==1 { print $3 }') agent" "$PID"
fi

# --- vmagent -------------------------------------------------------------------------------------
if [[ " $SCRAPERS " == *" vmagent "* ]]; then
VMAGENT_PORT=$(free_port)
vmagent -promscrape.config="$WORK/prometheus.yml" -remoteWrite.url="http://127.0.0.1:$SINK_PORT/api/v1/write" \
    -remoteWrite.tmpDataPath="$WORK/vmagent" -httpListenAddr="127.0.0.1:$VMAGENT_PORT" \
    > "$WORK/vmagent.log" 2>&1 &
PID=$!; PIDS+=("$PID")
measure "vmagent $(dpkg-query -W -f='${Version}' victoria-metrics 2>/dev/null || echo '?')" "$PID"
fi

echo
echo "$PODS pods, ${INTERVAL}s interval, ${DURATION}s window ($ROUNDS rounds) per scraper, one after the other"
printf '| %-28s | %13s | %9s | %7s | %14s | %12s |\n' scraper "series" "samples" "CPU s" "CPU s / M samples" "peak RSS MiB"
printf '|%s|%s|%s|%s|%s|%s|\n' "------------------------------" "---------------" "-----------" "---------" "-------------------" "--------------"
for r in "${RESULTS[@]}"; do
    IFS='|' read -r n se sa c p m <<< "$r"
    printf '| %-28s | %13s | %9s | %7s | %17s | %12s |\n' "$n" "$se" "$sa" "$c" "$p" "$m"
done
