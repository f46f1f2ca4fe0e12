//! Pushes Istio-shaped counter series (`istio_requests_total`, 30 labels each; see
//! `tests/common/istio.rs`) either to a Prometheus remote_write 1.0 endpoint (protobuf
//! `WriteRequest`, snappy block format, HTTP/1.1 POST) or, with `--store DIR`, straight into a
//! persistent meshfed store opened in `DIR` — the same series, timestamps and values either way, so
//! the systems can be compared side by side (`bench/store-vs-prometheus/run.sh`).
//!
//! ```text
//! cargo run --release -p meshfed-store --example remote_write_load -- \
//!     (--url http://127.0.0.1:9090/api/v1/write | --store DIR) \
//!     [--series 100000] [--samples 480] [--start-ms <now - samples×15 s - 10 min>] [--histograms]
//! ```
//!
//! Data: `series` counters scraped every 15 s for `samples` scrapes. Timestamps are exact
//! multiples of 15 s from `start-ms`; each scrape a counter grows by `hash(series, scrape) % 5`
//! (so 80 % of samples change, by 1–4). Sent in rounds of 40 scrapes (10 min): within a round
//! series-major, 1 000 series (40 000 samples) per request, two sender threads kept in step
//! by a barrier — every sample of a series is in time order and no two rounds overlap, which both
//! Prometheus (1 h appendable window) and VictoriaMetrics accept.
//!
//! With `--histograms` (the query benchmark, `bench/query-vs-prometheus`), series come in groups
//! of 21: the counter and its 20 `istio_request_duration_milliseconds_bucket` series (Istio's
//! default `le` bounds, same other labels), each bucket growing by the counter's increment times
//! a fixed cumulative fraction, so the buckets are cumulative and `le="+Inf"` equals the counter.
//!
//! Prints one `key=value` line per measurement on stdout.

#![allow(clippy::unwrap_used)] // A benchmark driver: a panic is the failure report.

#[path = "../tests/common/istio.rs"]
mod istio;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Barrier;
use std::time::Instant;

use meshfed_relay::prompb;
use meshfed_store::{SeriesRef, Store, StoreOptions};

/// Scrapes per round.
const ROUND: usize = 40;
/// Series per request / batch.
const PER_REQUEST: usize = 1000;
/// Sender threads.
const THREADS: usize = 2;
const STEP_MS: i64 = 15_000;

struct Args {
    url: Option<String>,
    store: Option<String>,
    series: usize,
    samples: usize,
    start_ms: i64,
    histograms: bool,
}

fn args() -> Args {
    let mut a = Args {
        url: None,
        store: None,
        series: 100_000,
        samples: 480,
        start_ms: i64::MIN,
        histograms: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => a.url = Some(value()),
            "--store" => a.store = Some(value()),
            "--series" => a.series = value().parse().unwrap(),
            "--samples" => a.samples = value().parse().unwrap(),
            "--start-ms" => a.start_ms = value().parse().unwrap(),
            "--histograms" => a.histograms = true,
            other => panic!("unknown flag {other}"),
        }
    }
    if a.start_ms == i64::MIN {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let start = now - a.samples as i64 * STEP_MS - 600_000;
        a.start_ms = start - start.rem_euclid(STEP_MS);
    }
    assert!(
        a.url.is_some() != a.store.is_some(),
        "give exactly one of --url, --store"
    );
    a
}

/// The counter increment of `series` at scrape `k`: 0..=4, from a cheap hash.
fn increment(series: usize, k: usize) -> f64 {
    let mut x = (series as u64) << 32 ^ k as u64;
    x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    (x.wrapping_mul(0xBF58_476D_1CE4_E5B9) >> 40) as f64 % 5.0
}

/// Istio's default `le` bounds of `istio_request_duration_milliseconds` and the cumulative share
/// of requests at or below each.
const BUCKETS: [(&str, f64); 20] = [
    ("0.5", 0.01),
    ("1", 0.03),
    ("5", 0.10),
    ("10", 0.20),
    ("25", 0.40),
    ("50", 0.60),
    ("100", 0.75),
    ("250", 0.85),
    ("500", 0.90),
    ("1000", 0.94),
    ("2500", 0.97),
    ("5000", 0.98),
    ("10000", 0.99),
    ("30000", 0.995),
    ("60000", 0.997),
    ("300000", 0.998),
    ("600000", 0.999),
    ("1800000", 0.9995),
    ("3600000", 0.9999),
    ("+Inf", 1.0),
];

/// The labels of series `i` (see the module docs for `--histograms`).
fn series_labels(i: usize, histograms: bool) -> meshfed_model::Labels {
    if !histograms {
        return istio::istio_series(i);
    }
    let (group, slot) = (i / (BUCKETS.len() + 1), i % (BUCKETS.len() + 1));
    let counter = istio::istio_series(group);
    if slot == 0 {
        return counter;
    }
    let mut b = counter.to_builder();
    b.set("__name__", "istio_request_duration_milliseconds_bucket");
    b.set("le", BUCKETS[slot - 1].0);
    b.build()
}

/// The increment of series `i` at scrape `k` (see [`increment`] and `--histograms`).
fn step_increment(i: usize, k: usize, histograms: bool) -> f64 {
    if !histograms {
        return increment(i, k);
    }
    let (group, slot) = (i / (BUCKETS.len() + 1), i % (BUCKETS.len() + 1));
    let share = if slot == 0 { 1.0 } else { BUCKETS[slot - 1].1 };
    increment(group, k) * share
}

/// Resident set size of this process, from `/proc/self/status`.
fn rss_bytes() -> u64 {
    status_bytes("VmRSS")
}

/// A `/proc/self/status` field in bytes (`VmRSS`, `VmHWM`).
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn dir_bytes(path: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(path) else { return 0 };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// `host:port` and path of an `http://` URL.
fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("only http:// URLs");
    match rest.find('/') {
        Some(i) => (rest[..i].to_owned(), rest[i..].to_owned()),
        None => (rest.to_owned(), "/".to_owned()),
    }
}

/// One POST on a fresh connection (`Connection: close`); panics unless the status is 2xx.
fn post(addr: &str, path: &str, body: &[u8]) {
    let mut s = TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-protobuf\r\n\
         Content-Encoding: snappy\r\nX-Prometheus-Remote-Write-Version: 0.1.0\r\n\
         User-Agent: meshfed-remote-write-load\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let text = String::from_utf8_lossy(&resp);
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    assert!((200..300).contains(&status), "POST {path}: {text}");
}

fn main() {
    let a = args();
    let rss_start = rss_bytes();
    let rounds = a.samples.div_ceil(ROUND);
    let barrier = Barrier::new(THREADS);
    let store = a
        .store
        .as_ref()
        .map(|d| Store::open(std::path::Path::new(d), StoreOptions::default()).unwrap());
    let refs: Vec<std::sync::OnceLock<SeriesRef>> = (0..a.series).map(|_| Default::default()).collect();
    let began = Instant::now();
    let wire_bytes = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (a, barrier, store, refs, wire_bytes) = (&a, &barrier, &store, &refs, &wire_bytes);
            scope.spawn(move || {
                let mut values = vec![0f64; a.series];
                let mut batch: Vec<(SeriesRef, i64, f64)> = Vec::new();
                let mut snappy = snap::raw::Encoder::new();
                for round in 0..rounds {
                    let ks = round * ROUND..((round + 1) * ROUND).min(a.samples);
                    let chunks = a.series.div_ceil(PER_REQUEST);
                    for chunk in (thread..chunks).step_by(THREADS) {
                        let ids = chunk * PER_REQUEST..((chunk + 1) * PER_REQUEST).min(a.series);
                        if let Some(store) = store {
                            batch.clear();
                            for i in ids {
                                let r = *refs[i]
                                    .get_or_init(|| store.get_or_create(&series_labels(i, a.histograms)));
                                for k in ks.clone() {
                                    values[i] += step_increment(i, k, a.histograms);
                                    batch.push((r, a.start_ms + k as i64 * STEP_MS, values[i]));
                                }
                            }
                            store.append_batch(&batch);
                            store.commit().unwrap();
                            continue;
                        }
                        let mut req = prompb::WriteRequest::default();
                        for i in ids {
                            let labels = series_labels(i, a.histograms)
                                .iter()
                                .map(|l| prompb::Label {
                                    name: l.name.to_string(),
                                    value: l.value.to_string(),
                                })
                                .collect();
                            let samples = ks
                                .clone()
                                .map(|k| {
                                    values[i] += step_increment(i, k, a.histograms);
                                    prompb::Sample {
                                        value: values[i],
                                        timestamp: a.start_ms + k as i64 * STEP_MS,
                                    }
                                })
                                .collect();
                            req.timeseries.push(prompb::TimeSeries { labels, samples });
                        }
                        let body = snappy.compress_vec(&prost::Message::encode_to_vec(&req)).unwrap();
                        wire_bytes.fetch_add(body.len() as u64, std::sync::atomic::Ordering::Relaxed);
                        let (addr, path) = split_url(a.url.as_deref().unwrap());
                        post(&addr, &path, &body);
                    }
                    barrier.wait();
                }
            });
        }
    });
    let elapsed = began.elapsed();
    let total = (a.series * a.samples) as u64;
    println!("series={}", a.series);
    println!("samples={total}");
    println!("start_ms={}", a.start_ms);
    println!("ingest_seconds={:.2}", elapsed.as_secs_f64());
    println!(
        "ingest_samples_per_second={:.0}",
        total as f64 / elapsed.as_secs_f64()
    );
    println!(
        "wire_bytes={}",
        wire_bytes.load(std::sync::atomic::Ordering::Relaxed)
    );
    let Some(store) = store else { return };
    let dir = std::path::Path::new(a.store.as_deref().unwrap());
    let stats = store.stats();
    assert_eq!(stats.samples, total, "every sample stored");
    let mem = store.memory();
    let rss = rss_bytes();
    println!("rss_bytes={rss}");
    println!("hwm_bytes={}", status_bytes("VmHWM"));
    println!("rss_growth_bytes={}", rss.saturating_sub(rss_start));
    println!("estimate_bytes={}", mem.total_bytes());
    println!("wal_bytes={}", dir_bytes(&dir.join("wal")));
    // Closed head chunks written to chunks_head/ (bytes written; the open segment is sparse).
    println!("head_chunk_bytes={}", store.head_chunk_bytes());
    // Cut the whole head into a block, as the 2 h head window would: the on-disk form.
    let end = a.start_ms + a.samples as i64 * STEP_MS;
    let cut = Instant::now();
    let info = store.cut_head(end).unwrap().unwrap();
    println!("cut_seconds={:.2}", cut.elapsed().as_secs_f64());
    println!("block_bytes={}", info.bytes);
    println!("block_samples={}", info.samples);
    println!("dir_bytes_after_cut={}", dir_bytes(dir));
}
