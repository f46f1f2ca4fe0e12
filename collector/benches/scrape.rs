//! Steady-state scrape cost: the 10 MB synthetic Istio sidecar payload through the real
//! `Scraper` body path (`Scraper::process`: streaming parse, series cache, limits, staleness,
//! synthetic series), with the full parse into label sets measured in the same run as the baseline.
//!
//! Before criterion runs, the bench counts heap allocations per sample of a cached re-scrape with
//! a counting global allocator and prints them.
//!
//! `cargo bench -p meshfed-collector -- --warm-up-time 1 --measurement-time 3`

#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::alloc::{GlobalAlloc, Layout};

use mimalloc::MiMalloc;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use meshfed_collector::config::ScrapeConfig;
use meshfed_collector::discovery::Target;
use meshfed_collector::relabel::RelabelConfig;
use meshfed_collector::scrape::Scraper;
use meshfed_model::exposition::{self, Format};
use meshfed_model::fixtures::istio_scrape;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static LIVE: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

// SAFETY: forwards to mimalloc (the allocator the `meshfed` binary links), only counting calls.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { MiMalloc.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { MiMalloc.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { MiMalloc.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn scraper(config: ScrapeConfig) -> Scraper {
    let target = Target {
        url: "http://127.0.0.1:15020/stats/prometheus".into(),
        labels: BTreeMap::from([
            ("job".to_owned(), "envoy-stats".to_owned()),
            ("instance".to_owned(), "10.0.0.1:15020".to_owned()),
            ("namespace".to_owned(), "bookinfo".to_owned()),
            ("pod".to_owned(), "reviews-v1-0".to_owned()),
        ]),
    };
    Scraper::new(reqwest::Client::new(), target, config, "cluster-east-1")
}

fn relabelling() -> ScrapeConfig {
    let rule = |yaml: &str| serde_norway::from_str::<RelabelConfig>(yaml).expect("rule");
    ScrapeConfig {
        metric_relabel_configs: vec![
            rule("{source_labels: [__name__], regex: 'envoy_cluster_upstream_cx_.*', action: drop}"),
            rule("{regex: 'source_principal|destination_principal', action: labeldrop}"),
        ],
        ..ScrapeConfig::default()
    }
}

fn report_allocations(body: &str) {
    let live_before = LIVE.load(Ordering::Relaxed);
    let mut s = scraper(ScrapeConfig::default());
    let mut ts = 1_700_000_000_000;
    let first = s.process(body.as_bytes(), Format::PrometheusText, ts, Instant::now());
    assert!(first.error.is_none(), "{:?}", first.error);
    let samples = first.scraped as u64;
    drop(first);
    let cache_bytes = LIVE.load(Ordering::Relaxed) - live_before;
    eprintln!(
        "series cache after the first scrape: {} bytes, {} per series ({} bytes of series text per series)",
        cache_bytes,
        cache_bytes / samples as i64,
        body.len() as u64 / samples
    );
    for _ in 0..2 {
        ts += 5000;
        drop(s.process(body.as_bytes(), Format::PrometheusText, ts, Instant::now()));
    }
    let before = ALLOCS.load(Ordering::Relaxed);
    let rounds = 5;
    for _ in 0..rounds {
        ts += 5000;
        let out = s.process(body.as_bytes(), Format::PrometheusText, ts, Instant::now());
        black_box(&out);
    }
    let n = ALLOCS.load(Ordering::Relaxed) - before;
    eprintln!(
        "steady-state re-scrape of {} bytes, {samples} samples: {} allocations per scrape, {:.5} per sample",
        body.len(),
        n / rounds,
        n as f64 / (rounds * samples) as f64
    );
}

fn bench(c: &mut Criterion) {
    let body = istio_scrape(10_000_000, true);
    report_allocations(&body);
    let mut g = c.benchmark_group("scrape");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.sample_size(20);
    g.bench_with_input(
        BenchmarkId::new("baseline_full_parse", "istio-10MB"),
        &body,
        |b, body| b.iter(|| exposition::parse(body, Format::PrometheusText).map(|f| f.len())),
    );
    for (name, config) in [
        ("cached_rescrape", ScrapeConfig::default()),
        ("cached_rescrape_relabel", relabelling()),
    ] {
        let mut s = scraper(config);
        let mut ts = 1_700_000_000_000;
        drop(s.process(body.as_bytes(), Format::PrometheusText, ts, Instant::now()));
        g.bench_with_input(BenchmarkId::new(name, "istio-10MB"), &body, |b, body| {
            b.iter(|| {
                ts += 5000;
                s.process(body.as_bytes(), Format::PrometheusText, ts, Instant::now())
                    .samples
                    .len()
            })
        });
    }
    g.bench_with_input(BenchmarkId::new("cold_scrape", "istio-10MB"), &body, |b, body| {
        b.iter(|| {
            let mut s = scraper(ScrapeConfig::default());
            s.process(body.as_bytes(), Format::PrometheusText, 1, Instant::now())
                .samples
                .len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
