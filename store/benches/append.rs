//! Ingest and read throughput with Istio-shaped series (28 labels), against a plain
//! `Vec<Vec<(i64, f64)>>` baseline measured in the same run.
//!
//! `cargo bench -p meshfed-store --bench append` prints elements/s = samples/s.

#![allow(clippy::unwrap_used, missing_docs)] // A bench binary: a panic is the failure report.

#[path = "../tests/common/istio.rs"]
mod istio;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use meshfed_model::{Labels, Matcher, Sample};
use meshfed_store::{SeriesRef, Store, StoreOptions};

fn store_with(series: usize) -> (Store, Vec<SeriesRef>) {
    let store = Store::new(StoreOptions::default());
    let refs = (0..series)
        .map(|i| store.get_or_create(&istio::istio_series(i)))
        .collect();
    (store, refs)
}

/// One scrape's worth of samples for every series per iteration.
fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_scrape");
    for series in [1_000usize, 10_000] {
        g.throughput(Throughput::Elements(series as u64));
        g.bench_with_input(
            BenchmarkId::new("store_append_batch", series),
            &series,
            |b, &n| {
                let (store, refs) = store_with(n);
                let mut batch: Vec<(SeriesRef, i64, f64)> = refs.iter().map(|&r| (r, 0, 0.0)).collect();
                let mut t = 0i64;
                b.iter(|| {
                    t += 15_000;
                    for (i, s) in batch.iter_mut().enumerate() {
                        s.1 = t;
                        s.2 += (i % 5) as f64;
                    }
                    store.append_batch(&batch)
                });
            },
        );
        g.bench_with_input(BenchmarkId::new("store_append_each", series), &series, |b, &n| {
            let (store, refs) = store_with(n);
            let mut t = 0i64;
            b.iter(|| {
                t += 15_000;
                for (i, r) in refs.iter().enumerate() {
                    store.append(*r, t, (t / 15_000 * (i as i64 % 5)) as f64).unwrap();
                }
            });
        });
        g.bench_with_input(BenchmarkId::new("baseline_vec_push", series), &series, |b, &n| {
            let mut all: Vec<Vec<(i64, f64)>> = vec![Vec::new(); n];
            let mut t = 0i64;
            b.iter(|| {
                t += 15_000;
                for (i, s) in all.iter_mut().enumerate() {
                    s.push((t, (t / 15_000 * (i as i64 % 5)) as f64));
                }
            });
        });
    }
    g.finish();
}

/// Two relay connections ingesting into disjoint halves of the series at once, against one
/// thread doing both halves (both include the thread spawns).
fn append_parallel(c: &mut Criterion) {
    let n = 20_000;
    let mut g = c.benchmark_group("append_parallel");
    g.throughput(Throughput::Elements(n as u64));
    for threads in [1usize, 2] {
        g.bench_with_input(
            BenchmarkId::new("store_append_batch_threads", threads),
            &threads,
            |b, &threads| {
                let (store, refs) = store_with(n);
                let mut batches: Vec<Vec<(SeriesRef, i64, f64)>> = refs
                    .chunks(n / 2)
                    .map(|c| c.iter().map(|&r| (r, 0, 0.0)).collect())
                    .collect();
                let mut t = 0i64;
                b.iter(|| {
                    t += 15_000;
                    std::thread::scope(|s| {
                        for group in batches.chunks_mut(2 / threads) {
                            let store = &store;
                            s.spawn(move || {
                                for batch in group {
                                    batch.iter_mut().for_each(|x| x.1 = t);
                                    store.append_batch(batch);
                                }
                            });
                        }
                    });
                });
            },
        );
    }
    g.finish();
}

/// Resolving refs of existing series by labels, as a relay connection does for new definitions.
fn lookup(c: &mut Criterion) {
    let n = 10_000;
    let (store, _) = store_with(n);
    let labels: Vec<Labels> = (0..n).map(istio::istio_series).collect();
    let mut g = c.benchmark_group("get_or_create_existing");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("store", |b| {
        b.iter(|| labels.iter().map(|l| store.get_or_create(l).0).sum::<u64>())
    });
    g.finish();
}

/// Select one service's series and decode a full chunk of each.
fn read(c: &mut Criterion) {
    let (store, refs) = store_with(10_000);
    for step in 0..120i64 {
        let batch: Vec<_> = refs
            .iter()
            .enumerate()
            .map(|(i, &r)| (r, step * 15_000, (step * (i as i64 % 5)) as f64))
            .collect();
        store.append_batch(&batch);
    }
    let m = [
        Matcher::equal("__name__", "istio_requests_total"),
        Matcher::equal("destination_app", "reviews"),
    ];
    let selected = store.select(&m, 0, i64::MAX).len() as u64;
    let mut g = c.benchmark_group("select_and_read");
    g.throughput(Throughput::Elements(selected * 120));
    g.bench_function("store", |b| {
        let mut buf: Vec<Sample> = Vec::new();
        b.iter(|| {
            let mut n = 0;
            for h in store.select(&m, 0, i64::MAX) {
                store.read_samples(h.series, 0, i64::MAX, &mut buf);
                n += buf.len();
            }
            n
        });
    });
    g.finish();
}

criterion_group!(benches, append, append_parallel, lookup, read);
criterion_main!(benches);
