//! The memory budget: an active series with an Istio label set (28 labels) costs under 1 KiB,
//! index and a full chunk of samples included, by the store's own estimate.

#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

mod common;

use meshfed_store::{Store, StoreOptions};

/// Resident set size in bytes (Linux), to check the estimate against.
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[test]
fn istio_series_fit_in_one_kib() {
    const SERIES: usize = 20_000;
    let labels: Vec<_> = (0..SERIES).map(common::istio::istio_series).collect();
    let rss_before = rss_bytes();
    let store = Store::new(StoreOptions::default());
    let refs: Vec<_> = labels.iter().map(|l| store.get_or_create(l)).collect();
    let index_only = store.memory();
    // 120 samples each: a counter growing by a few requests per 15 s scrape, like Istio's.
    let mut value = vec![0u64; SERIES];
    for step in 0..120i64 {
        let batch: Vec<_> = refs
            .iter()
            .enumerate()
            .map(|(i, &r)| {
                value[i] += (i as u64 * 7 + step as u64 * 13) % 5;
                (
                    r,
                    1_700_000_000_000 + step * 15_000 + (i as i64 % 7),
                    value[i] as f64,
                )
            })
            .collect();
        store.append_batch(&batch);
    }
    let full = store.memory();
    println!(
        "index only: {index_only:?} → {} B/series",
        index_only.bytes_per_series()
    );
    println!("120 samples: {full:?} → {} B/series", full.bytes_per_series());
    if let (Some(before), Some(after)) = (rss_before, rss_bytes()) {
        // Includes allocator overhead and the batch buffers, so it reads a little higher.
        println!(
            "RSS growth: {} B/series",
            after.saturating_sub(before) / SERIES as u64
        );
    }
    assert_eq!(index_only.series, SERIES as u64);
    assert!(
        full.bytes_per_series() < 1024,
        "{} bytes per series",
        full.bytes_per_series()
    );
}
