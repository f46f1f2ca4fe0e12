#!/usr/bin/env bash
# meshfed's store side by side with Prometheus 2.42 and VictoriaMetrics 1.79, all ingesting the
# same Istio-shaped counter series (30 labels; store/tests/common/istio.rs) pushed by
# store/examples/remote_write_load.rs: remote_write 1.0 (protobuf + snappy) for Prometheus
# (--web.enable-remote-write-receiver) and VictoriaMetrics (/api/v1/write), in-process
# Store::open for meshfed (same series, timestamps and values; meshfed has no remote_write
# receiver of its own yet — the relay feeds it).
#
#   bench/store-vs-prometheus/run.sh            # SERIES=100000 SAMPLES=480 (2 h at 15 s)
#   SERIES=200000 SAMPLES=240 bench/store-vs-prometheus/run.sh
#
# Needs: apt-get install prometheus victoria-metrics curl. Everything listens on 127.0.0.1 and
# writes under one mktemp directory (removed at exit unless KEEP=1). The systems run one after the
# other, each stopped before the next starts.
#
# Reported per system: RSS (VmRSS of the process 15 s after the last write was acknowledged, its
# growth from before the load — meshfed: from process start, the load generator's own ~24 B/series
# included — and the peak VmHWM) divided by series; disk bytes per sample of the data in its compressed on-disk
# form — meshfed: the block cut from the whole head; Prometheus: a TSDB snapshot (the head written
# out as a block via /api/v1/admin/tsdb/snapshot); VictoriaMetrics: the whole -storageDataPath
# after /internal/force_flush (data parts + indexdb) — and the write-ahead state besides
# (meshfed: wal/ + chunks_head/ before the cut; Prometheus: wal/ + chunks_head/; VictoriaMetrics
# has no WAL).
set -euo pipefail

SERIES=${SERIES:-100000}
SAMPLES=${SAMPLES:-480}
PROM_PORT=${PROM_PORT:-19090}
VM_PORT=${VM_PORT:-18428}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/store-vs-prom.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    if [[ "${KEEP:-0}" != 1 ]]; then rm -rf "$WORK"; else echo "kept $WORK" >&2; fi
}
trap cleanup EXIT

for tool in prometheus victoria-metrics curl; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install prometheus victoria-metrics curl)" >&2; exit 1; }
done

(cd "$ROOT" && cargo build --release -q -p meshfed-store --example remote_write_load)
TARGET=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
LOAD="$TARGET/release/examples/remote_write_load"

NOW_MS=$(($(date +%s) * 1000))
START_MS=$((NOW_MS - SAMPLES * 15000 - 600000))
START_MS=$((START_MS - START_MS % 15000))
TOTAL=$((SERIES * SAMPLES))
echo "series=$SERIES samples/series=$SAMPLES total=$TOTAL start_ms=$START_MS work=$WORK" >&2
echo "machine: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p'), $(nproc) CPUs; $(prometheus --version 2>&1 | head -1)" >&2

status_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
key() { sed -n "s/^$1=//p" "$2"; }
wait_http() {
    for _ in $(seq 1 100); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.2; done
    echo "not ready: $1" >&2; return 1
}

# --- meshfed ---------------------------------------------------------------------------------
"$LOAD" --store "$WORK/meshfed" --series "$SERIES" --samples "$SAMPLES" --start-ms "$START_MS" > "$WORK/meshfed.out"
M_RSS=$(key rss_bytes "$WORK/meshfed.out")
M_GROW=$(key rss_growth_bytes "$WORK/meshfed.out")
M_HWM=$(key hwm_bytes "$WORK/meshfed.out")
M_DISK=$(key block_bytes "$WORK/meshfed.out")
M_WAL=$(($(key wal_bytes "$WORK/meshfed.out") + $(key head_chunk_bytes "$WORK/meshfed.out")))
M_SECS=$(key ingest_seconds "$WORK/meshfed.out")
[[ $(key block_samples "$WORK/meshfed.out") == "$TOTAL" ]] || { echo "meshfed stored a different sample count" >&2; exit 1; }

# --- Prometheus --------------------------------------------------------------------------------
printf 'global:\n  scrape_interval: 15s\n' > "$WORK/prometheus.yml"
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prom" \
    --storage.tsdb.retention.time=1y --web.listen-address="127.0.0.1:$PROM_PORT" \
    --web.enable-remote-write-receiver --web.enable-admin-api > "$WORK/prometheus.log" 2>&1 &
PROM=$!; PIDS+=("$PROM")
wait_http "http://127.0.0.1:$PROM_PORT/-/ready"
P_BASE=$(($(status_kb "$PROM" VmRSS) * 1024))
"$LOAD" --url "http://127.0.0.1:$PROM_PORT/api/v1/write" --series "$SERIES" --samples "$SAMPLES" --start-ms "$START_MS" > "$WORK/prom.out"
sleep 15
P_RSS=$(($(status_kb "$PROM" VmRSS) * 1024))
P_HWM=$(($(status_kb "$PROM" VmHWM) * 1024))
P_APPENDED=$(curl -sf "http://127.0.0.1:$PROM_PORT/metrics" | awk '/^prometheus_tsdb_head_samples_appended_total/ { s += $2 } END { printf "%d", s }')
[[ "$P_APPENDED" == "$TOTAL" ]] || echo "WARNING: Prometheus appended $P_APPENDED of $TOTAL samples" >&2
SNAP=$(curl -sf -XPOST "http://127.0.0.1:$PROM_PORT/api/v1/admin/tsdb/snapshot" | sed -n 's/.*"name":"\([^"]*\)".*/\1/p')
P_DISK=$(du -sb "$WORK/prom/snapshots/$SNAP" | cut -f1)
P_WAL=$(du -sbc "$WORK/prom/wal" "$WORK/prom/chunks_head" | tail -1 | cut -f1)
P_SECS=$(key ingest_seconds "$WORK/prom.out")
kill "$PROM"; wait "$PROM" 2>/dev/null || true

# --- VictoriaMetrics -----------------------------------------------------------------------------
victoria-metrics -storageDataPath="$WORK/vm" -retentionPeriod=12 -httpListenAddr="127.0.0.1:$VM_PORT" \
    > "$WORK/vm.log" 2>&1 &
VM=$!; PIDS+=("$VM")
wait_http "http://127.0.0.1:$VM_PORT/health"
V_BASE=$(($(status_kb "$VM" VmRSS) * 1024))
"$LOAD" --url "http://127.0.0.1:$VM_PORT/api/v1/write" --series "$SERIES" --samples "$SAMPLES" --start-ms "$START_MS" > "$WORK/vm.out"
sleep 15
V_RSS=$(($(status_kb "$VM" VmRSS) * 1024))
V_HWM=$(($(status_kb "$VM" VmHWM) * 1024))
curl -sf "http://127.0.0.1:$VM_PORT/internal/force_flush" >/dev/null || true
sleep 5
V_ROWS=$(curl -sf "http://127.0.0.1:$VM_PORT/metrics" | awk '/^vm_rows_inserted_total/ { s += $2 } END { printf "%d", s }')
[[ "$V_ROWS" == "$TOTAL" ]] || echo "WARNING: VictoriaMetrics inserted $V_ROWS of $TOTAL rows" >&2
V_DISK=$(du -sb "$WORK/vm" | cut -f1)
V_SECS=$(key ingest_seconds "$WORK/vm.out")
kill "$VM"; wait "$VM" 2>/dev/null || true

# --- table -------------------------------------------------------------------------------------
awk -v n="$SERIES" -v t="$TOTAL" \
    -v mg="$M_GROW" -v pg="$((P_RSS - P_BASE))" -v vg="$((V_RSS - V_BASE))" \
    -v mr="$M_RSS" -v mh="$M_HWM" -v md="$M_DISK" -v mw="$M_WAL" -v ms="$M_SECS" \
    -v pr="$P_RSS" -v ph="$P_HWM" -v pd="$P_DISK" -v pw="$P_WAL" -v ps="$P_SECS" \
    -v vr="$V_RSS" -v vh="$V_HWM" -v vd="$V_DISK" -v vs="$V_SECS" 'BEGIN {
    printf "%d series x %d samples (15 s apart) = %d samples per system\n\n", n, t / n, t
    print "| system | RSS/series | RSS growth/series | peak RSS/series | disk B/sample | WAL B/sample | ingest s | RSS vs meshfed | disk vs meshfed |"
    print "|---|---|---|---|---|---|---|---|---|"
    printf "| meshfed store (in-process) | %.0f B | %.0f B | %.0f B | %.3f | %.1f | %s | 1.00 | 1.00 |\n", mr/n, mg/n, mh/n, md/t, mw/t, ms
    printf "| Prometheus 2.42 (remote_write) | %.0f B | %.0f B | %.0f B | %.3f | %.1f | %s | %.2f | %.2f |\n", pr/n, pg/n, ph/n, pd/t, pw/t, ps, pr/mr, pd/md
    printf "| VictoriaMetrics 1.79 (remote_write) | %.0f B | %.0f B | %.0f B | %.3f | - | %s | %.2f | %.2f |\n", vr/n, vg/n, vh/n, vd/t, vs, vr/mr, vd/md
}'
