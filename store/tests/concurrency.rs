//! Several writers and readers at once: every accepted sample is readable afterwards, readers
//! never see samples out of order, and creation races yield one series per label set.

#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use meshfed_model::{Matcher, Sample};
use meshfed_store::{SeriesRef, Store, StoreOptions};

#[test]
fn parallel_ingest_and_queries() {
    const WRITERS: usize = 4;
    const SERIES: usize = 200;
    const STEPS: i64 = 150;
    let store = Arc::new(Store::new(StoreOptions {
        samples_per_chunk: 16,
        ..StoreOptions::default()
    }));
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (store, done) = (store.clone(), done.clone());
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let m = [Matcher::equal("__name__", "istio_requests_total")];
                while !done.load(Ordering::Relaxed) {
                    for h in store.select(&m, 0, i64::MAX) {
                        store.read_samples(h.series, 0, i64::MAX, &mut buf);
                        assert!(buf.windows(2).all(|w| w[0].timestamp_ms < w[1].timestamp_ms));
                    }
                }
            })
        })
        .collect();
    // Every writer creates the same series (racing) and appends to its share of them.
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            std::thread::spawn(move || {
                let refs: Vec<SeriesRef> = (0..SERIES)
                    .map(|i| store.get_or_create(&common::istio::istio_series(i)))
                    .collect();
                for t in 1..=STEPS {
                    let batch: Vec<(SeriesRef, i64, f64)> = refs
                        .iter()
                        .skip(w)
                        .step_by(WRITERS)
                        .map(|&r| (r, t * 1000, t as f64))
                        .collect();
                    assert_eq!(store.append_batch(&batch).appended, batch.len() as u64);
                }
                refs
            })
        })
        .collect();
    let refs: Vec<Vec<SeriesRef>> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    done.store(true, Ordering::Relaxed);
    readers.into_iter().for_each(|r| r.join().unwrap());
    assert!(
        refs.windows(2).all(|w| w[0] == w[1]),
        "racing creators got different refs"
    );
    assert_eq!(store.stats().series, SERIES as u64);
    assert_eq!(store.stats().samples, SERIES as u64 * STEPS as u64);
    let want: Vec<Sample> = (1..=STEPS).map(|t| Sample::new(t * 1000, t as f64)).collect();
    let mut buf = Vec::new();
    for r in &refs[0] {
        store.read_samples(*r, i64::MIN, i64::MAX, &mut buf);
        assert_eq!(buf, want);
    }
}
