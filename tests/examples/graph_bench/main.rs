//! Graph API latency and graph-maintenance cost at a chosen size (see `bench/graph/run.sh`).
//!
//! Defines `--edges` synthetic Istio edges between `--nodes` workloads over three clusters (by
//! default each edge has only what the graph reads: `istio_requests_total` for 200 and 503 and
//! the 20-series duration histogram, full Istio label sets, source-reported; `--mix istio` has
//! what Istio's sidecars expose, see `mix.rs`), encodes `--scrapes` scrapes 5 s apart as the collectors' relay
//! streams would (one per cluster, batches of 10,000 samples), and feeds them through the full
//! ingest path of a real aggregator (store with its WAL on disk): protobuf decode, the relay's
//! stream decoder, store append with WAL commit, edge table. It does so twice, A/B, with the same
//! batches: first an aggregator with `graph.enabled: false` (the baseline), then one with the
//! graph. The same resolved batches then go through an in-memory store and through a bare
//! `EdgeTable` (appends plus the increments health and the derived series take once per scrape:
//! the graph's share). Each window's computation and JSON rendering is timed and amortised over
//! the refresh schedule; finally `GET /api/v1/graph` is timed over HTTP and the peak RSS printed.
//!
//! Every phase reports **CPU time** (the process's, all threads: `CLOCK_PROCESS_CPUTIME_ID`, so
//! WAL writers are counted and fsync waits are not) besides wall time. The maintenance ratio is extra CPU over baseline CPU: (table appends and takes + the
//! refresh schedule's average per refresh, one refresh per scrape at the defaults) / CPU of the
//! graph-off aggregator ingesting the same scrape; `B - A` (graph-on minus graph-off ingest CPU)
//! is printed as a cross-check of the appends' share.
//!
//! Scrapes 0–4 are not timed (scrape 0 defines the series; the rings are sized for the
//! retention by scrape 4), and the refresh schedule runs one untimed cycle first. The process
//! runs under mimalloc, the `meshfed` binary's allocator.
//!
//! `--ab paired` runs the A/B with both aggregators in one process instead, fed scrape by scrape
//! in alternating order with the caches flushed between turns (see `paired.rs`): the measure
//! `bench/graph/run.sh` reports, as the machine's drift hits both sides alike. `--ab off|on`
//! runs one side of a separate-process A/B (see `ab.rs`); there each side also keeps its own
//! cache between scrapes, and runs of the same side differ by up to ±20% on a shared VM.
//!
//! `--lean` (for 20,000 nodes / 200,000 edges, 4.4 M series) keeps only the aggregator: series
//! are registered with its ingest directly and each scrape's batches are built just in time, so
//! the relay's encode/decode, the in-memory store and the bare table (and their copies of the
//! series) are skipped; the per-scrape figure is then store with WAL + table.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use std::collections::{BTreeMap, HashMap};

use meshfed_aggregator::graph::{EdgeTable, GraphQuery};
use meshfed_aggregator::graph_http::Success;
use meshfed_aggregator::ingest::StoreIngest;
use meshfed_aggregator::{Aggregator, AggregatorConfig};
use meshfed_model::Labels;
use meshfed_relay::decode::StreamDecoder;
use meshfed_relay::encode::{OutgoingSample, SeriesLabels, StreamEncoder};
use meshfed_relay::proto::SampleBatch;
use meshfed_relay::server::Ingest;
use meshfed_store::{Store, StoreOptions};
use prost::Message;
use tokio_util::sync::CancellationToken;

mod ab;
mod lean;
mod mix;
mod paired;

use mix::{Mix, edge_series, pod_series};

/// The allocator of the `meshfed` binary (cli/src/main.rs), so memory is laid out as deployed.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const LE: [&str; 20] = [
    "0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000", "30000",
    "60000", "300000", "600000", "1800000", "3600000", "+Inf",
];

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().unwrap())
}

fn node(i: usize) -> (String, String, String) {
    (
        format!("cluster-{}", i % 3 + 1),
        format!("ns-{}", i % 50),
        format!("wl-{i}"),
    )
}

fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Peak resident memory of this process (`VmHWM`), in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `clock_gettime` of `clock` (std has no CPU-time clock; `/proc/*/schedstat` lags by up to a
/// scheduler tick for a running thread, too coarse for one batch).
#[allow(unsafe_code)]
fn cpu_clock(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock ids are Linux's CPU-time clocks.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU time of this process so far, all threads (`CLOCK_PROCESS_CPUTIME_ID`: WAL writers and
/// other threads count, fsync waits do not).
fn process_cpu() -> Duration {
    cpu_clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// CPU time of the calling thread so far (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu() -> Duration {
    cpu_clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// Wall and CPU time of a phase.
#[derive(Clone, Copy, Default)]
struct Spent {
    wall: Duration,
    cpu: Duration,
    /// Of `cpu`, the edge table's appends where [`full_ingest`] times them in place.
    table: Duration,
}

impl Spent {
    fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let (t, c) = (Instant::now(), process_cpu());
        let out = f();
        self.cpu += process_cpu().saturating_sub(c);
        self.wall += t.elapsed();
        out
    }
}

/// Scrapes not timed: scrape 0 defines the series; by scrape 4 the table's rings have been
/// sized for the retention (see `Block::with_retention`), a one-off copy the steady state
/// does not pay.
const UNTIMED_SCRAPES: usize = 5;

/// One scrape's samples as the relay carries them: per cluster stream, batches of
/// `BATCH_SAMPLES`, protobuf-encoded.
const BATCH_SAMPLES: usize = 10_000;

/// A batch resolved to series ids, with the cluster that sent it.
type ClusterBatch = (String, Vec<(u64, i64, f64)>);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let nodes = arg("--nodes", 2_000);
    let edges = arg("--edges", 20_000);
    let scrapes = arg("--scrapes", 17);
    let requests = arg("--requests", 200);
    let lean = flag("--lean");
    assert!(edges <= nodes * (nodes - 1), "too many edges for the nodes");
    assert!(scrapes >= 2, "--scrapes must be at least 2");

    let stop = CancellationToken::new();
    let data_dir = std::env::temp_dir().join(format!("meshfed-graph-bench-{}", std::process::id()));
    let config = |enabled: bool, dir: &std::path::Path| AggregatorConfig {
        relay_listen: "127.0.0.1:0".into(),
        http_listen: "127.0.0.1:0".into(),
        insecure: true,
        // The store as deployed: WAL on disk, acknowledged batches fsynced.
        data_dir: Some(dir.to_owned()),
        // Refreshed by hand below, so background work does not blur the timings.
        graph: meshfed_aggregator::config::GraphConfig {
            enabled,
            refresh_ms: 3_600_000,
            health_interval_ms: 3_600_000,
            // The A/B writes them itself (`ab::derived_every`): a background write at the wall
            // clock would take the increments and, being later than the bench's times, make
            // the store refuse the bench's writes.
            derived_interval_ms: 3_600_000,
            derived_series: false,
            ..Default::default()
        },
        ..AggregatorConfig::default()
    };
    if let Some(side) = std::env::args().skip_while(|a| a != "--ab").nth(1) {
        assert!(
            side == "on" || side == "off" || side == "paired",
            "--ab on|off|paired"
        );
        let skip = arg("--skip", 10);
        assert!(skip < scrapes, "--skip must be below --scrapes");
        if side == "paired" {
            let off_dir = data_dir.with_extension("graph-off");
            // `--aa`: both sides without the graph (what the pairing itself adds).
            let mut on = config(!flag("--aa"), &data_dir);
            on.graph.derived_series = !flag("--no-derived");
            paired::run(config(false, &off_dir), on, nodes, edges, scrapes, skip).await;
            let _ = std::fs::remove_dir_all(&data_dir);
            let _ = std::fs::remove_dir_all(&off_dir);
            return;
        }
        let mut config = config(side == "on", &data_dir);
        config.graph.derived_series = !flag("--no-derived");
        ab::run(config, nodes, edges, scrapes, skip).await;
        let _ = std::fs::remove_dir_all(&data_dir);
        return;
    }
    if lean {
        let agg = Aggregator::start(&config(true, &data_dir), stop.clone())
            .await
            .unwrap();
        lean::ingest(&agg, nodes, edges, scrapes).await;
        measure_graph(&agg, requests, None, meshfed_aggregator::http::now_ms()).await;
        println!("peak RSS {:.0} MiB", peak_rss_mib());
        stop.cancel();
        agg.join().await;
        let _ = std::fs::remove_dir_all(&data_dir);
        return;
    }

    assert!(
        scrapes > UNTIMED_SCRAPES,
        "--scrapes must be above {UNTIMED_SCRAPES}"
    );
    let Mesh {
        by_cluster,
        wire,
        t0,
        n_series,
    } = encode_mesh(nodes, edges, scrapes);

    // A: the baseline, an aggregator without the graph, fed the same scrapes; then stopped,
    // so its memory and threads are gone before B starts.
    let off_dir = data_dir.with_extension("graph-off");
    let off_stop = CancellationToken::new();
    // `--baseline-with-graph` runs A with the graph too: A and B then differ only in order,
    // which shows how much of B - A is the order (heap, page cache) rather than the graph.
    let off = Aggregator::start(&config(flag("--baseline-with-graph"), &off_dir), off_stop.clone())
        .await
        .unwrap();
    let (base, _) = full_ingest(&off, &wire, false);
    off_stop.cancel();
    off.join().await;
    let _ = std::fs::remove_dir_all(&off_dir);
    // Let A's teardown (freeing its store, possibly on other threads) finish before B is timed.
    let c = process_cpu();
    tokio::time::sleep(Duration::from_secs(3)).await;
    eprintln!(
        "CPU while waiting 3 s after A stopped: {:.1?}",
        process_cpu().saturating_sub(c)
    );

    // B: the same with the graph.
    let agg = Aggregator::start(&config(true, &data_dir), stop.clone())
        .await
        .unwrap();
    let (full, resolved_scrapes) = full_ingest(&agg, &wire, true);
    let in_situ = full.table;
    let timed = (scrapes - UNTIMED_SCRAPES) as u32;

    // The same resolved batches into an in-memory store (the earlier, narrower denominator).
    let mem_store = std::sync::Arc::new(Store::new(StoreOptions::default()));
    let mem_ingest = StoreIngest::new(
        std::sync::Arc::clone(&mem_store),
        std::sync::Arc::new(EdgeTable::new(600_000)),
    );
    let mut refs = HashMap::new();
    for series in by_cluster.values() {
        for (_, labels, _) in series {
            let r = agg.store.get_or_create(labels).0;
            refs.insert(r, mem_ingest.register_series(labels));
        }
    }
    let mut mem = Spent::default();
    for (k, scrape) in resolved_scrapes.iter().enumerate() {
        let batches: Vec<(&String, Vec<_>)> = scrape
            .iter()
            .map(|(cluster, batch)| (cluster, batch.iter().map(|&(r, t, v)| (refs[&r], t, v)).collect()))
            .collect();
        let mut spent = Spent::default();
        spent.time(|| {
            for (cluster, b) in &batches {
                mem_ingest.append(cluster, b).unwrap();
            }
        });
        if k >= UNTIMED_SCRAPES {
            mem.wall += spent.wall;
            mem.cpu += spent.cpu;
        }
    }
    drop(mem_ingest);
    drop(mem_store);

    // The same batches through a bare table: the graph's share of each ingest path.
    let table = EdgeTable::new(600_000);
    for series in by_cluster.values() {
        for (_, labels, _) in series {
            table.observe_series(agg.store.get_or_create(labels).0, labels);
        }
    }
    // Appends, then what the upkeep takes once per scrape (health every second finds new
    // increments once per scrape; the derived series once per refresh).
    let (mut graph_only, mut takes) = (Spent::default(), Spent::default());
    for (k, scrape) in resolved_scrapes.iter().enumerate() {
        let mut spent = Spent::default();
        spent.time(|| {
            for (cluster, batch) in scrape {
                table.append(cluster, batch);
            }
        });
        let mut took = Spent::default();
        took.time(|| {
            drop(table.take_health_inputs());
            table.drain_increments(|_, _, inc| {
                std::hint::black_box(inc);
            });
        });
        if k >= UNTIMED_SCRAPES {
            graph_only.wall += spent.wall;
            graph_only.cpu += spent.cpu;
            takes.wall += took.wall;
            takes.cpu += took.cpu;
        }
    }
    drop(table);

    // The same appends with the caches cold before each batch (a 64 MiB sweep between batches,
    // not timed), as in the aggregator, where the store's work between batches evicts the
    // table's memory; the loop above keeps it warm.
    let table = EdgeTable::new(600_000);
    for series in by_cluster.values() {
        for (_, labels, _) in series {
            table.observe_series(agg.store.get_or_create(labels).0, labels);
        }
    }
    let mut sweep = vec![0u8; 64 << 20];
    let mut cold = Duration::ZERO;
    for (k, scrape) in resolved_scrapes.iter().enumerate() {
        for (cluster, batch) in scrape {
            for (i, b) in sweep.iter_mut().enumerate().step_by(64) {
                *b = b.wrapping_add(i as u8);
            }
            std::hint::black_box(&sweep);
            let c = thread_cpu();
            table.append(cluster, batch);
            if k >= UNTIMED_SCRAPES {
                cold += thread_cpu().saturating_sub(c);
            }
        }
        drop(table.take_health_inputs());
        table.drain_increments(|_, _, inc| {
            std::hint::black_box(inc);
        });
    }
    drop((table, sweep, resolved_scrapes));
    // What reading the process's CPU costs (two reads per timed batch in A and B).
    let t = Instant::now();
    for _ in 0..100 {
        std::hint::black_box(process_cpu());
    }
    let probe_us = t.elapsed().as_secs_f64() * 1e6 / 100.0;

    let per = |d: Duration| ms(d) / timed as f64;
    // At the last scrape plus half an interval (as kiali.sh asks Prometheus), not the wall
    // clock: on a slow run the 1m window would otherwise slide past the data.
    let at = t0 + (scrapes as i64 - 1) * 5_000 + 2_500;
    let g = measure_graph(&agg, requests, Some(n_series), at).await;
    println!("per scrape of {n_series} samples (wall / CPU, ms):");
    println!(
        "  A full ingest path without the graph (decode + store with WAL): {:.1} / {:.1}",
        per(base.wall),
        per(base.cpu)
    );
    println!(
        "  B full ingest path with the graph:                             {:.1} / {:.1}",
        per(full.wall),
        per(full.cpu)
    );
    println!(
        "  in-memory store path with the graph:                           {:.1} / {:.1}",
        per(mem.wall),
        per(mem.cpu)
    );
    println!(
        "  bare edge table appends: {:.1} / {:.1}; takes (health + derived increments): {:.1} / {:.1}",
        per(graph_only.wall),
        per(graph_only.cpu),
        per(takes.wall),
        per(takes.cpu)
    );
    println!(
        "  bare edge table appends with caches cold before each batch: CPU {:.1}; in B, in place: CPU {:.1}; \
         reading the process CPU costs {probe_us:.0} us a call",
        per(cold),
        per(in_situ)
    );
    println!(
        "  refresh per refresh, averaged over a {}-refresh cycle: {:.1} / {:.1}; rendering: {:.1} / {:.1}",
        g.cycle,
        ms(g.refresh.wall) / g.cycle as f64,
        ms(g.refresh.cpu) / g.cycle as f64,
        ms(g.render.wall) / g.cycle as f64,
        ms(g.render.cpu) / g.cycle as f64,
    );
    let maintenance = per(graph_only.cpu) + per(takes.cpu) + ms(g.refresh.cpu) / g.cycle as f64;
    let render = ms(g.render.cpu) / g.cycle as f64;
    let base_cpu = per(base.cpu);
    println!(
        "graph maintenance CPU (appends + takes + refresh) {maintenance:.1} ms = {:.1}% of the ingest CPU without the graph \
         ({base_cpu:.1} ms); with rendering {:.1}%; cross-check B - A = {:.1} ms CPU ({:.1}% of A) vs appends + takes {:.1} ms; \
         wall-time ratio (as before) {:.1}%",
        100.0 * maintenance / base_cpu,
        100.0 * (maintenance + render) / base_cpu,
        per(full.cpu) - base_cpu,
        100.0 * (per(full.cpu) - base_cpu) / base_cpu,
        per(graph_only.cpu) + per(takes.cpu),
        100.0 * (per(graph_only.wall) + per(takes.wall) + ms(g.refresh.wall) / g.cycle as f64)
            / per(base.wall),
    );
    println!("peak RSS {:.0} MiB", peak_rss_mib());
    stop.cancel();
    agg.join().await;
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// The synthetic mesh's series per cluster (relay labels, labels, requests per second) and
/// its scrapes as the collectors' relay streams carry them.
pub(crate) struct Mesh {
    pub by_cluster: BTreeMap<String, Vec<(SeriesLabels, Labels, f64)>>,
    /// Per scrape: (cluster, encoded `SampleBatch`).
    pub wire: Vec<Vec<(String, Vec<u8>)>>,
    /// Time of scrape 0; scrape `k` is `t0 + k * 5 s`.
    pub t0: i64,
    pub n_series: usize,
}

/// Defines `edges` edges between `nodes` workloads and encodes `scrapes` scrapes 5 s apart,
/// ending before now (see the module docs).
pub(crate) fn encode_mesh(nodes: usize, edges: usize, scrapes: usize) -> Mesh {
    // The series, grouped by the cluster whose collector sends them.
    let t = Instant::now();
    let mix = Mix::from_args();
    let mut by_cluster: BTreeMap<String, Vec<(SeriesLabels, Labels, f64)>> = BTreeMap::new();
    for i in 0..nodes {
        for (labels, rate) in pod_series(i, mix) {
            let cluster = labels.get("cluster").unwrap().to_owned();
            by_cluster
                .entry(cluster)
                .or_default()
                .push((SeriesLabels::new(&labels), labels, rate));
        }
    }
    for i in 0..edges {
        let src = i % nodes;
        let dst = (src + 1 + i / nodes) % nodes;
        for (labels, share) in edge_series(src, dst, mix) {
            let cluster = labels.get("cluster").unwrap().to_owned();
            by_cluster.entry(cluster).or_default().push((
                SeriesLabels::new(&labels),
                labels,
                share * (1.0 + (i % 7) as f64),
            ));
        }
    }
    let n_series: usize = by_cluster.values().map(Vec::len).sum();
    let t0 = meshfed_aggregator::http::now_ms() - (scrapes as i64) * 5_000;
    let value = |rate: f64, k: usize| (rate * 5.0 * k as f64).floor();
    // Encode every scrape as the collectors would (not timed).
    let mut encoders: BTreeMap<&str, StreamEncoder> = BTreeMap::new();
    let mut wire: Vec<Vec<(String, Vec<u8>)>> = Vec::with_capacity(scrapes);
    let mut seq = 0;
    for k in 0..scrapes {
        let mut scrape = Vec::new();
        for (cluster, series) in &by_cluster {
            let enc = encoders.entry(cluster).or_default();
            for chunk in series.chunks(BATCH_SAMPLES) {
                let samples: Vec<OutgoingSample> = chunk
                    .iter()
                    .map(|(l, _, rate)| OutgoingSample {
                        labels: l.clone(),
                        timestamp_ms: t0 + k as i64 * 5_000,
                        value: value(*rate, k),
                    })
                    .collect();
                seq += 1;
                scrape.push((cluster.clone(), enc.encode(seq, &samples).encode_to_vec()));
            }
        }
        wire.push(scrape);
    }
    let wire_bytes: usize = wire[1].iter().map(|(_, b)| b.len()).sum();
    eprintln!(
        "{n_series} series; one scrape is {} batches, {} KiB on the wire; encoded in {:.1?}",
        wire[1].len(),
        wire_bytes / 1024,
        t.elapsed()
    );
    Mesh {
        by_cluster,
        wire,
        t0,
        n_series,
    }
}

/// What [`measure_graph`] found: refresh and rendering per refresh, averaged over one cycle of
/// the schedule.
struct GraphFigures {
    refresh: Spent,
    render: Spent,
    cycle: u64,
}

/// One full cycle of the refresh schedule (1m every refresh, 5m every 5th, 10m every 10th),
/// each refreshed window's default JSON rendered as the upkeep task does, averaged per refresh
/// (one refresh per scrape interval); then `requests` timed `GET /api/v1/graph?window=1m`.
async fn measure_graph(agg: &Aggregator, requests: usize, n_series: Option<usize>, now: i64) -> GraphFigures {
    let schedule = agg.graph.refresh_schedule().clone();
    let names: HashMap<i64, String> = agg.graph.windows().iter().map(|(n, &w)| (w, n.clone())).collect();
    // `--cycles n` repeats the cycle (for a profiler); figures are per refresh either way.
    let cycle = schedule.values().copied().max().unwrap_or(1) * arg("--cycles", 1) as u64;
    // One cycle first, not timed: the snapshots' first computation allocates what every later
    // one reuses (the upkeep refreshes forever; the steady state is what it costs).
    for _ in 0..schedule.values().copied().max().unwrap_or(1) {
        agg.graph.refresh(now);
    }
    let (mut refresh_total, mut render_total) = (Spent::default(), Spent::default());
    let mut window_lines = Vec::new();
    for i in 0..cycle {
        let mut spent = Spent::default();
        let due = spent.time(|| agg.graph.refresh(now));
        let took = spent.wall;
        refresh_total.wall += spent.wall;
        refresh_total.cpu += spent.cpu;
        let mut rendered = Vec::new();
        for w in &due {
            let mut spent = Spent::default();
            let body = spent.time(|| {
                let g = agg.graph.graph(&names[w], None, &GraphQuery::default()).unwrap();
                serde_json::to_vec(&Success {
                    status: "success",
                    data: &g,
                })
                .unwrap()
            });
            render_total.wall += spent.wall;
            render_total.cpu += spent.cpu;
            rendered.push(format!(
                "{} {:.0} ms/{} KiB",
                names[w],
                ms(spent.wall),
                body.len() / 1024
            ));
        }
        if i == 0 || due.len() > 1 || i == 1 {
            window_lines.push(format!(
                "refresh {i} ({}): {:.1} ms, render {}",
                due.iter()
                    .map(|w| names[w].as_str())
                    .collect::<Vec<_>>()
                    .join("+"),
                ms(took),
                rendered.join(", ")
            ));
        }
    }
    // The 1m refresh in parts (best of 5): expiry, the rates, dropping a snapshot.
    let (mut expire_best, mut compute_best, mut drop_best) = (Duration::MAX, Duration::MAX, Duration::MAX);
    for _ in 0..5 {
        let t = Instant::now();
        agg.graph.table.expire();
        expire_best = expire_best.min(t.elapsed());
        let t = Instant::now();
        let snap = agg.graph.table.compute_many(now, &[60_000], true);
        compute_best = compute_best.min(t.elapsed());
        let t = Instant::now();
        drop(snap);
        drop_best = drop_best.min(t.elapsed());
    }
    window_lines.push(format!(
        "1m refresh in parts, best of 5: expiry {:.1} ms, rates {:.1} ms, dropping the snapshot {:.1} ms",
        ms(expire_best),
        ms(compute_best),
        ms(drop_best)
    ));
    let (series, fine_edges) = agg.graph.table.size();
    eprintln!(
        "edge table: {series} series, {fine_edges} fine edges; store series {}",
        agg.store.stats().series
    );

    let client = reqwest::Client::new();
    let url = format!("http://{}/api/v1/graph?window=1m", agg.http_addr);
    let t = Instant::now();
    let body = client.get(&url).send().await.unwrap().bytes().await.unwrap();
    let first = t.elapsed();
    let graph = agg.graph.graph("1m", None, &GraphQuery::default()).unwrap();
    let mut times = Vec::with_capacity(requests);
    for _ in 0..requests {
        let t = Instant::now();
        let r = client.get(&url).send().await.unwrap();
        let _ = r.bytes().await.unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "graph {} nodes / {} edges ({} series, {} KiB JSON)",
        graph.nodes.len(),
        graph.edges.len(),
        n_series.unwrap_or(series),
        body.len() / 1024
    );
    println!(
        "GET /api/v1/graph: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {requests} requests \
         (first after the refresh: {:.1} ms)",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(times[times.len() - 1]),
        ms(first)
    );
    for l in &window_lines {
        println!("{l}");
    }
    GraphFigures {
        refresh: refresh_total,
        render: render_total,
        cycle,
    }
}

/// A relay batch as the aggregator's stream handler takes it: protobuf decode, then the
/// cluster's stream decoder (refs to series ids, new series registered with the ingest).
pub(crate) fn decode_batch(
    agg: &Aggregator,
    decoders: &mut HashMap<String, StreamDecoder>,
    cluster: &str,
    bytes: &[u8],
    resolved: &mut Vec<(u64, i64, f64)>,
) {
    let batch = SampleBatch::decode(bytes).unwrap();
    let dec = decoders
        .entry(cluster.to_owned())
        .or_insert_with(|| StreamDecoder::new(cluster.to_owned()));
    dec.decode(&batch, |l| agg.ingest.register_series(l), resolved)
        .unwrap();
}

/// The full ingest path per batch: protobuf decode, relay decode (refs → series ids), store
/// append + WAL commit (fsync), edge table. Scrape 0 defines the series and is not timed. Returns
/// the time of the later scrapes and, when `keep`, every scrape's resolved batches.
///
/// When `keep` (B), the ingest's steps (store append, commit, table append) are run here one by
/// one, as `StoreIngest::append` runs them, so the table's part is timed in place
/// ([`Spent::table`]).
fn full_ingest(
    agg: &Aggregator,
    wire: &[Vec<(String, Vec<u8>)>],
    keep: bool,
) -> (Spent, Vec<Vec<ClusterBatch>>) {
    let mut decoders: HashMap<String, StreamDecoder> = HashMap::new();
    let mut resolved = Vec::new();
    let mut full = Spent::default();
    let mut table = Duration::ZERO;
    let mut resolved_scrapes: Vec<Vec<ClusterBatch>> = Vec::new();
    for (k, scrape) in wire.iter().enumerate() {
        let mut spent = Spent::default();
        let mut kept = Vec::new();
        for (cluster, bytes) in scrape {
            spent.time(|| {
                decode_batch(agg, &mut decoders, cluster, bytes, &mut resolved);
                if keep {
                    // The steps of `StoreIngest::append`, the table's timed on its own.
                    agg.ingest.observe_registered();
                    let batch: Vec<_> = resolved
                        .iter()
                        .map(|&(r, t, v)| (meshfed_store::SeriesRef(r), t, v))
                        .collect();
                    agg.store.append_batch(&batch);
                    agg.store.commit().unwrap();
                    let c = thread_cpu();
                    agg.graph.table.append(cluster, &resolved);
                    table += thread_cpu().saturating_sub(c);
                } else {
                    agg.ingest.append(cluster, &resolved).unwrap();
                }
            });
            if keep {
                kept.push((cluster.clone(), resolved.clone()));
            }
        }
        if k == 0 {
            eprintln!(
                "scrape 0 (defines the series) took {:.1?} ({:.1?} CPU)",
                spent.wall, spent.cpu
            );
        } else if k >= UNTIMED_SCRAPES {
            full.wall += spent.wall;
            full.cpu += spent.cpu;
            full.table += table;
        }
        table = Duration::ZERO;
        resolved_scrapes.push(kept);
    }
    (full, resolved_scrapes)
}
