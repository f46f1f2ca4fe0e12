//! The service graph's per-scrape cost in the edge table, phase by phase, at steady state
//! (retention full, one scrape every 5 s): appending a scrape's samples, the increments health
//! and the derived series take once per scrape, computing the 1m window, and the upkeep as the
//! aggregator runs it after each scrape (the 1m refresh, which settles the new rows, and the
//! increments health takes).
//!
//! The mesh: 4,000 HTTP edges (`EDGE_TABLE_EDGES=20000` for the size of `bench/graph`) over a tenth as many workloads in three clusters, each edge reported by
//! its source proxy as `istio_requests_total` for 200 and 503 and the 20-bucket duration
//! histogram (22 series), as in `tests/examples/graph_bench.rs`, which measures the same costs
//! against the whole ingest path.
//!
//! `cargo bench -p meshfed-aggregator --bench edge_table -- --warm-up-time 1 --measurement-time 3`
//!
//! At 4,000 edges much of the table fits in the processor's caches; at 20,000 (440,000 series,
//! about 500 MB of samples) it does not, as in `bench/graph`, and memory latency dominates.

#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use meshfed_aggregator::graph::EdgeTable;
use meshfed_model::Labels;

/// Edges of the mesh (`EDGE_TABLE_EDGES` overrides; workloads are a tenth of them).
fn edges() -> usize {
    std::env::var("EDGE_TABLE_EDGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4_000)
}
const INTERVAL_MS: i64 = 5_000;
const LE: [&str; 20] = [
    "0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000", "30000",
    "60000", "300000", "600000", "1800000", "3600000", "+Inf",
];

/// The labels of one edge's series with the fraction of the edge's requests each counts.
fn series_of_edge(i: usize, nodes: usize) -> Vec<(Labels, f64)> {
    let src = i % nodes;
    let dst = (src + 1 + i / nodes) % nodes;
    let cluster = |n: usize| format!("cluster-{}", n % 3 + 1);
    let (src_wl, dst_wl) = (format!("wl-{src}"), format!("wl-{dst}"));
    let (src_ns, dst_ns) = (format!("ns-{}", src % 20), format!("ns-{}", dst % 20));
    let common = [
        ("cluster", cluster(src)),
        ("pod", format!("{src_wl}-0")),
        ("reporter", "source".into()),
        ("source_cluster", cluster(src)),
        ("source_workload", src_wl.clone()),
        ("source_workload_namespace", src_ns),
        ("source_canonical_revision", "v1".into()),
        ("destination_cluster", cluster(dst)),
        ("destination_workload", dst_wl.clone()),
        ("destination_workload_namespace", dst_ns.clone()),
        ("destination_canonical_revision", "v1".into()),
        ("destination_service_name", dst_wl),
        ("destination_service_namespace", dst_ns),
        ("request_protocol", "http".into()),
        ("response_flags", "-".into()),
    ];
    let with = |name: &str, extra: &[(&str, &str)]| {
        let mut b = Labels::from_pairs(common.iter().map(|(k, v)| (*k, v.as_str()))).to_builder();
        b.set("__name__", name);
        for (k, v) in extra {
            b.set(*k, *v);
        }
        b.build()
    };
    let mut out = vec![
        (with("istio_requests_total", &[("response_code", "200")]), 0.98),
        (with("istio_requests_total", &[("response_code", "503")]), 0.02),
    ];
    for (k, le) in LE.iter().enumerate() {
        let labels = with(
            "istio_request_duration_milliseconds_bucket",
            &[("response_code", "200"), ("le", le)],
        );
        out.push((labels, ((k + 1) as f64 / LE.len() as f64).min(1.0)));
    }
    out
}

/// A cluster's batch of (series id, time, value).
type Batch = (String, Vec<(u64, i64, f64)>);

/// A table with every series registered and a steady stream of scrapes.
struct Mesh {
    table: EdgeTable,
    /// Per cluster: (series id, requests per second counted).
    series: Vec<(String, Vec<(u64, f64)>)>,
    scrape: usize,
    t0: i64,
}

impl Mesh {
    fn new() -> Self {
        let table = EdgeTable::new(600_000);
        let mut by_cluster: std::collections::BTreeMap<String, Vec<(u64, f64)>> = Default::default();
        let mut id = 0;
        let edges = edges();
        for i in 0..edges {
            for (labels, share) in series_of_edge(i, edges / 10) {
                table.observe_series(id, &labels);
                let cluster = labels.get("cluster").unwrap_or_default().to_owned();
                by_cluster
                    .entry(cluster)
                    .or_default()
                    .push((id, share * (1 + i % 7) as f64));
                id += 1;
            }
        }
        let mut mesh = Self {
            table,
            series: by_cluster.into_iter().collect(),
            scrape: 0,
            t0: 1_700_000_000_000,
        };
        // Fill the retention (10m + 1m) so expiry and the windows are at steady state.
        for _ in 0..(660_000 / INTERVAL_MS) {
            mesh.append_next();
            mesh.take();
            mesh.table.expire();
        }
        mesh
    }

    fn series(&self) -> u64 {
        self.series.iter().map(|(_, s)| s.len() as u64).sum()
    }

    fn now(&self) -> i64 {
        self.t0 + self.scrape as i64 * INTERVAL_MS
    }

    /// The next scrape's batches (10,000 samples each, as the relay delivers them).
    fn next_batches(&mut self) -> Vec<Batch> {
        self.scrape += 1;
        let (k, t) = (self.scrape as f64, self.now());
        let mut out = Vec::new();
        for (cluster, series) in &self.series {
            for chunk in series.chunks(10_000) {
                let batch = chunk
                    .iter()
                    .map(|&(id, rate)| (id, t, (rate * 5.0 * k).floor()))
                    .collect();
                out.push((cluster.clone(), batch));
            }
        }
        out
    }

    fn append_next(&mut self) -> Duration {
        let batches = self.next_batches();
        let t = Instant::now();
        for (cluster, batch) in &batches {
            self.table.append(cluster, batch);
        }
        let took = t.elapsed();
        drop(batches);
        took
    }

    fn take(&self) {
        black_box(self.table.take_health_inputs());
        self.table.drain_increments(|_, _, inc| {
            black_box(inc);
        });
    }
}

fn edge_table(c: &mut Criterion) {
    let mut mesh = Mesh::new();
    let mut group = c.benchmark_group("edge_table");
    group.throughput(Throughput::Elements(mesh.series()));
    group.bench_function("append_scrape", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += mesh.append_next();
                mesh.take();
                mesh.table.expire();
            }
            total
        })
    });
    group.bench_function("take_increments", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                mesh.append_next();
                let t = Instant::now();
                mesh.take();
                total += t.elapsed();
                mesh.table.expire();
            }
            total
        })
    });
    // The upkeep after each scrape with the default settings: the 1m window's refresh (which
    // first settles the new rows) and the increments health takes; no derived series, so the
    // edges' increments are not collected.
    mesh.table.collect_edge_increments(false);
    group.bench_function("refresh_1m_and_health", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                mesh.append_next();
                let t = Instant::now();
                for snapshot in mesh
                    .table
                    .compute_many(mesh.now() + INTERVAL_MS / 2, &[60_000], true)
                {
                    mesh.table.recycle(black_box(snapshot));
                }
                black_box(mesh.table.take_health_inputs());
                total += t.elapsed();
                mesh.table.expire();
            }
            total
        })
    });
    mesh.table.collect_edge_increments(true);
    let at = mesh.now() + INTERVAL_MS / 2;
    // As the refresh does: the snapshot replaced gives its allocations to the next one.
    for (name, window_ms) in [("compute_1m", 60_000), ("compute_10m", 600_000)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                for snapshot in mesh.table.compute_many(at, &[window_ms], true) {
                    mesh.table.recycle(black_box(snapshot));
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, edge_table);
criterion_main!(benches);
