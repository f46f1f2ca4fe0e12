//! Ingest with the WAL on (append_batch + commit per scrape-sized batch) against the in-memory
//! store in the same run, and WAL replay time at open.
//!
//! `cargo bench -p meshfed-store --bench wal`; replay size from `MESHFED_BENCH_REPLAY_SERIES`
//! (default 10 000) × `MESHFED_BENCH_REPLAY_SAMPLES` (per series, default 120).

#![allow(clippy::unwrap_used, missing_docs)] // A bench binary: a panic is the failure report.

#[path = "../tests/common/istio.rs"]
mod istio;

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use meshfed_store::{SeriesRef, Store, StoreOptions};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn refs(store: &Store, n: usize) -> Vec<SeriesRef> {
    (0..n)
        .map(|i| store.get_or_create(&istio::istio_series(i)))
        .collect()
}

/// One batch per iteration: every series gets its next sample, then (persistent) one commit.
fn ingest(c: &mut Criterion) {
    let n = 10_000;
    let mut g = c.benchmark_group("ingest_wal");
    g.throughput(Throughput::Elements(n as u64));
    g.measurement_time(Duration::from_secs(5));
    for mode in ["in_memory", "wal_commit_per_batch"] {
        let dir = tempfile::tempdir().unwrap();
        let store = match mode {
            "in_memory" => Store::new(StoreOptions::default()),
            _ => Store::open(dir.path(), StoreOptions::default()).unwrap(),
        };
        let refs = refs(&store, n);
        let mut batch: Vec<(SeriesRef, i64, f64)> = refs.iter().map(|&r| (r, 0, 0.0)).collect();
        let mut t = 0i64;
        g.bench_with_input(BenchmarkId::new(mode, n), &n, |b, _| {
            b.iter(|| {
                t += 15_000;
                for (i, s) in batch.iter_mut().enumerate() {
                    s.1 = t;
                    s.2 += (i % 5) as f64;
                }
                let stats = store.append_batch(&batch);
                store.commit().unwrap();
                stats
            });
        });
    }
    g.finish();
}

/// Time to open a store whose WAL holds `series × samples` samples (no checkpoint, no blocks).
fn replay(c: &mut Criterion) {
    let series = env("MESHFED_BENCH_REPLAY_SERIES", 10_000);
    let samples = env("MESHFED_BENCH_REPLAY_SAMPLES", 120);
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let refs = refs(&store, series);
        let mut batch: Vec<(SeriesRef, i64, f64)> = Vec::with_capacity(series);
        for k in 0..samples as i64 {
            batch.clear();
            batch.extend(
                refs.iter()
                    .enumerate()
                    .map(|(i, &r)| (r, k * 15_000, (k * (i as i64 % 7)) as f64)),
            );
            store.append_batch(&batch);
        }
        store.commit().unwrap();
    }
    let mut g = c.benchmark_group("wal_replay");
    g.sample_size(10);
    g.throughput(Throughput::Elements((series * samples) as u64));
    g.bench_with_input(
        BenchmarkId::new("open", format!("{series}x{samples}")),
        &(),
        |b, _| {
            b.iter(|| {
                let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
                assert_eq!(store.replay_stats().unwrap().samples, (series * samples) as u64);
                // Dropping starts one more (empty) segment per open; harmless for the measurement.
                store
            });
        },
    );
    g.finish();
}

criterion_group!(benches, ingest, replay);
criterion_main!(benches);
