// Shared by `benches/parse.rs` (system allocator) and `benches/parse_mimalloc.rs`; included with
// `include!`, so no inner attributes or docs here. Each includer defines `ALLOCATOR`.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::hint::black_box;
use std::io;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use meshfed_model::exposition::{Format, for_each_sample, parse};
use meshfed_model::fixtures::{fixture_dir, istio_scrape};

const SYNTHETIC_BYTES: usize = 10 * 1024 * 1024;

/// Samples as `prometheus-parse` counts them: each histogram bucket and summary quantile it groups
/// into one `Value` counts once, as it does in our output.
fn baseline_samples(body: &str) -> usize {
    let lines = body.lines().map(|l| Ok::<_, io::Error>(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("in-memory lines cannot fail");
    scrape
        .samples
        .iter()
        .map(|s| match &s.value {
            prometheus_parse::Value::Histogram(h) => h.len(),
            prometheus_parse::Value::Summary(q) => q.len(),
            _ => 1,
        })
        .sum()
}

fn our_samples(body: &str) -> usize {
    let fams = parse(body, Format::PrometheusText).expect("bench input parses");
    fams.iter().map(|f| f.samples.len()).sum()
}

/// An FxHash-style hasher: what a series cache keyed by long label texts would use (SipHash would
/// dominate the cost of a 1 KB key).
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type Cache = HashMap<Box<str>, u32, BuildHasherDefault<FxHasher>>;

/// A steady-state re-scrape: every series is already cached by its text, so only its value is
/// taken. Returns the number of hits (all of them).
fn cached_rescrape(body: &str, cache: &Cache, values: &mut [f64]) -> usize {
    let mut hits = 0;
    for_each_sample(body, Format::PrometheusText, |raw| {
        if let Some(&id) = cache.get(raw.series_text) {
            values[id as usize] = raw.value;
            hits += 1;
        }
    })
    .expect("bench input parses");
    hits
}

fn build_cache(body: &str) -> Cache {
    let mut cache = Cache::default();
    for_each_sample(body, Format::PrometheusText, |raw| {
        let id = u32::try_from(cache.len()).unwrap_or(u32::MAX);
        raw.labels().expect("bench labels are unique");
        cache.entry(raw.series_text.into()).or_insert(id);
    })
    .expect("bench input parses");
    cache
}

/// Benchmarks our three paths on every input, and `prometheus-parse` on the one named `baseline`.
fn bench_input(c: &mut Criterion, group: &str, inputs: &[(&str, &str)], baseline: Option<&str>) {
    let mut g = c.benchmark_group(format!("{group}/{ALLOCATOR}"));
    for &(variant, body) in inputs {
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::new("meshfed/parse", variant), body, |b, body| {
            b.iter(|| parse(black_box(body), Format::PrometheusText).expect("parses"));
        });
        g.bench_with_input(
            BenchmarkId::new("meshfed/for_each_sample", variant),
            body,
            |b, body| {
                b.iter(|| {
                    let mut sum = 0.0;
                    for_each_sample(black_box(body), Format::PrometheusText, |raw| sum += raw.value)
                        .expect("parses");
                    sum
                });
            },
        );
        let cache = build_cache(body);
        let mut values = vec![0.0; cache.len()];
        g.bench_with_input(
            BenchmarkId::new("meshfed/cached_rescrape", variant),
            body,
            |b, body| {
                b.iter(|| cached_rescrape(black_box(body), &cache, &mut values));
            },
        );
    }
    if let Some(&(variant, body)) = inputs.iter().find(|(v, _)| Some(*v) == baseline) {
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::new("prometheus-parse", variant), body, |b, body| {
            b.iter(|| {
                let lines = black_box(body).lines().map(|l| Ok::<_, io::Error>(l.to_owned()));
                prometheus_parse::Scrape::parse(lines).expect("parses")
            });
        });
    }
    g.finish();
}

fn synthetic(c: &mut Criterion) {
    let real = istio_scrape(SYNTHETIC_BYTES, true);
    let plain = istio_scrape(SYNTHETIC_BYTES, false);
    let (ours, theirs) = (our_samples(&plain), baseline_samples(&plain));
    assert_eq!(
        ours, theirs,
        "prometheus-parse must see every sample of the comma-free variant"
    );
    assert_eq!(our_samples(&real), ours);
    eprintln!(
        "synthetic Istio scrape: {} bytes, {ours} samples (prometheus-parse: {theirs})",
        plain.len()
    );
    bench_input(
        c,
        "istio_synthetic_10MB",
        &[("commas", &real), ("no-commas", &plain)],
        Some("no-commas"),
    );
}

fn fixture(c: &mut Criterion) {
    let Some(dir) = fixture_dir("istio-sidecar/datadog") else {
        return;
    };
    let path = dir.join("istio-1.5-fixture_istio-merged.txt");
    let Ok(body) = std::fs::read_to_string(&path) else {
        eprintln!("skipping: {} is absent", path.display());
        return;
    };
    let (ours, theirs) = (our_samples(&body), baseline_samples(&body));
    eprintln!(
        "Istio sidecar fixture: {} bytes, {ours} samples (prometheus-parse: {theirs})",
        body.len()
    );
    // prometheus-parse drops every `name{} value` line (its regex wants a non-empty label set);
    // written as `name value`, which means the same, it reads them all.
    let plain = body.replace("{} ", " ");
    let (ours_plain, theirs_plain) = (our_samples(&plain), baseline_samples(&plain));
    assert_eq!(ours, ours_plain);
    let baseline = if ours_plain == theirs_plain {
        Some("no-empty-braces")
    } else {
        eprintln!("prometheus-parse misreads this input ({theirs_plain} samples); no baseline");
        None
    };
    bench_input(
        c,
        "istio_sidecar_fixture",
        &[("real", &body), ("no-empty-braces", &plain)],
        baseline,
    );
}

criterion_group!(benches, synthetic, fixture);
criterion_main!(benches);
