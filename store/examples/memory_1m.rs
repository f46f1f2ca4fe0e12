//! Memory per active series, bytes per sample, WAL ingest rate and WAL replay time at a million
//! Istio-shaped series (30 labels each, `tests/common/istio.rs`: 5 clusters, 3 namespaces, ~20 800
//! pods, 8 services, 6 response codes).
//!
//! ```text
//! cargo run --release -p meshfed-store --example memory_1m -- [--series 1000000] [--samples 120] [--dir DIR]
//! ```
//!
//! 1. Opens a persistent store in `DIR` (default: a fresh directory under the system temp dir,
//!    deleted at the end), creates `series` series, then appends `samples` scrapes 15 s apart to
//!    every series (counters growing by 0–4 per scrape), one `append_batch` + `commit` (fsync) per
//!    10 000 samples, on one thread. Reports `VmRSS` from `/proc/self/status` before and after, the
//!    store's own estimate (`Store::memory`), head bytes per sample, and the ingest rate per
//!    CPU-second (user + system time of the process from `/proc/self/stat`).
//! 2. Runs itself again as a child process on the same directory: times `Store::open` (WAL
//!    replay reusing the closed head chunks in `chunks_head/`) and reports the child's RSS
//!    (anonymous and file-backed); times a second open with `chunks_head/` moved aside (the whole
//!    head rebuilt from the WAL, as before head chunk files); cuts the older half of the head into a block as
//!    `maintain` would (the newer half goes to the checkpoint) and times a reopen (replay of that
//!    checkpoint: the realistic crash case); cuts the rest (on-disk bytes per sample of both
//!    blocks, labels and index included) and times a last open with an empty head.
//!
//! Prints `key=value` lines.

#![allow(clippy::unwrap_used)] // A benchmark driver: a panic is the failure report.

#[path = "../tests/common/istio.rs"]
mod istio;

use std::path::{Path, PathBuf};
use std::time::Instant;

use meshfed_store::{SeriesRef, Store, StoreOptions};

const STEP_MS: i64 = 15_000;
const BATCH: usize = 10_000;
const START_MS: i64 = 1_700_000_000_000;

/// A `/proc/self/status` field in bytes (`VmRSS`, `VmHWM`).
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// User + system CPU seconds of this process so far (`/proc/self/stat`, 100 ticks/s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of stat; `after` starts at field 3.
    (ticks(11) + ticks(12)) / 100.0
}

fn dir_bytes(path: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(path) else { return 0 };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn increment(series: usize, k: usize) -> f64 {
    let mut x = (series as u64) << 32 ^ k as u64;
    x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    (x.wrapping_mul(0xBF58_476D_1CE4_E5B9) >> 40) as f64 % 5.0
}

fn mib(b: u64) -> String {
    format!("{:.1}", b as f64 / (1 << 20) as f64)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut series, mut samples, mut dir, mut replay) = (1_000_000usize, 120usize, None, None);
    while let Some(flag) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--series" => series = value().parse().unwrap(),
            "--samples" => samples = value().parse().unwrap(),
            "--dir" => dir = Some(PathBuf::from(value())),
            "--replay" => replay = Some(PathBuf::from(value())),
            other => panic!("unknown flag {other}"),
        }
    }
    if let Some(dir) = replay {
        return replay_child(&dir, series, samples);
    }
    let temp = dir.is_none();
    let dir =
        dir.unwrap_or_else(|| std::env::temp_dir().join(format!("meshfed-memory-1m-{}", std::process::id())));
    println!(
        "series={series} samples_per_series={samples} dir={}",
        dir.display()
    );

    let rss0 = status_bytes("VmRSS");
    let store = Store::open(&dir, StoreOptions::default()).unwrap();
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let refs: Vec<SeriesRef> = (0..series)
        .map(|i| store.get_or_create(&istio::istio_series(i)))
        .collect();
    store.commit().unwrap();
    let (create_s, create_cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
    let rss1 = status_bytes("VmRSS");
    let mem1 = store.memory();
    println!(
        "create: {create_s:.1} s wall, {create_cpu:.1} s CPU, {:.0} series/s",
        series as f64 / create_s
    );
    println!(
        "after create: rss={} MiB ({} B/series incl. the 8 B/series ref vector), estimate={} MiB ({} B/series) {mem1:?}",
        mib(rss1),
        rss1.saturating_sub(rss0) / series as u64,
        mib(mem1.total_bytes()),
        mem1.bytes_per_series()
    );

    let mut values = vec![0f64; series];
    let mut batch: Vec<(SeriesRef, i64, f64)> = Vec::with_capacity(BATCH);
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    for k in 0..samples {
        let t = START_MS + k as i64 * STEP_MS;
        for (chunk_no, ids) in refs.chunks(BATCH).enumerate() {
            batch.clear();
            batch.extend(ids.iter().enumerate().map(|(j, &r)| {
                let i = chunk_no * BATCH + j;
                values[i] += increment(i, k);
                (r, t, values[i])
            }));
            let stats = store.append_batch(&batch);
            assert_eq!(stats.appended, batch.len() as u64);
            store.commit().unwrap();
        }
    }
    let (ingest_s, ingest_cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
    let total = (series * samples) as u64;
    let rss2 = status_bytes("VmRSS");
    let mem2 = store.memory();
    println!(
        "ingest (WAL on, commit per {BATCH}): {total} samples, {ingest_s:.1} s wall, {ingest_cpu:.1} s CPU \
         → {:.2} M samples/s wall, {:.2} M samples per CPU-second",
        total as f64 / ingest_s / 1e6,
        total as f64 / ingest_cpu / 1e6
    );
    println!(
        "after ingest: rss={} MiB, rss_growth/series={} B, estimate={} MiB ({} B/series) {mem2:?}",
        mib(rss2),
        rss2.saturating_sub(rss0) / series as u64,
        mib(mem2.total_bytes()),
        mem2.bytes_per_series()
    );
    println!(
        "head chunk bytes per sample (estimate growth / samples): {:.3}",
        mem2.chunk_bytes.saturating_sub(mem1.chunk_bytes) as f64 / total as f64
    );
    println!("peak rss (VmHWM)={} MiB", mib(status_bytes("VmHWM")));
    drop(store);
    println!(
        "wal bytes={} MiB, head chunk files={} MiB",
        mib(dir_bytes(&dir.join("wal"))),
        mib(dir_bytes(&dir.join("chunks_head")))
    );

    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--replay", &dir.display().to_string()])
        .args(["--series", &series.to_string(), "--samples", &samples.to_string()])
        .status()
        .unwrap();
    assert!(child.success());
    if temp {
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// In a fresh process: WAL replay time and RSS, then a full cut and a second replay.
fn replay_child(dir: &Path, series: usize, samples: usize) {
    let rss0 = status_bytes("VmRSS");
    let t0 = Instant::now();
    let store = Store::open(dir, StoreOptions::default()).unwrap();
    let open_s = t0.elapsed().as_secs_f64();
    let stats = store.replay_stats().unwrap();
    let rss = status_bytes("VmRSS");
    println!(
        "replay (WAL + reused head chunks): {open_s:.1} s; {} samples appended, {} head chunks reused; {stats:?}",
        stats.samples, stats.head_chunks_reused,
    );
    println!(
        "after replay: rss={} MiB ({} B/series; anon {} MiB, file-backed {} MiB), peak={} MiB",
        mib(rss),
        rss.saturating_sub(rss0) / series as u64,
        mib(status_bytes("RssAnon")),
        mib(status_bytes("RssFile")),
        mib(status_bytes("VmHWM"))
    );
    drop(store);
    // The same WAL without head chunk files: every sample rebuilt into the head.
    let (chunks, aside) = (dir.join("chunks_head"), dir.join("chunks_head.aside"));
    std::fs::rename(&chunks, &aside).unwrap();
    let t0 = Instant::now();
    let store = Store::open(dir, StoreOptions::default()).unwrap();
    let open_s = t0.elapsed().as_secs_f64();
    let stats = store.replay_stats().unwrap();
    println!(
        "replay (WAL only, chunks_head/ moved aside): {open_s:.1} s for {} samples → {:.2} M samples/s; {stats:?}",
        stats.samples,
        stats.samples as f64 / open_s / 1e6
    );
    println!(
        "rss now={} MiB; peak rss so far={} MiB",
        mib(status_bytes("VmRSS")),
        mib(status_bytes("VmHWM"))
    );
    drop(store);
    std::fs::remove_dir_all(&chunks).unwrap();
    std::fs::rename(&aside, &chunks).unwrap();
    let store = Store::open(dir, StoreOptions::default()).unwrap();
    // A cut as `maintain` makes it: the older half goes to a block, the newer half stays in the
    // head and is written to the checkpoint (the WAL before it is deleted).
    let mid = START_MS + (samples / 2) as i64 * STEP_MS;
    let end = START_MS + samples as i64 * STEP_MS;
    let t0 = Instant::now();
    let first = store.cut_head(mid).unwrap().unwrap();
    println!(
        "cut the older half (block + checkpoint of the newer half): {:.1} s, block {} MiB, {} samples → {:.3} B/sample",
        t0.elapsed().as_secs_f64(),
        mib(first.bytes),
        first.samples,
        first.bytes as f64 / first.samples as f64
    );
    println!(
        "wal dir after the cut={} MiB; rss now={} MiB; peak rss so far={} MiB",
        mib(dir_bytes(&dir.join("wal"))),
        mib(status_bytes("VmRSS")),
        mib(status_bytes("VmHWM"))
    );
    drop(store);
    let t0 = Instant::now();
    let store = Store::open(dir, StoreOptions::default()).unwrap();
    let stats = store.replay_stats().unwrap();
    println!(
        "replay after the cut (checkpoint holds the newer half of the head; block opened and verified): {:.1} s; {} samples → {:.2} M samples/s; {stats:?}",
        t0.elapsed().as_secs_f64(),
        stats.samples,
        stats.samples as f64 / t0.elapsed().as_secs_f64() / 1e6
    );
    println!(
        "rss now={} MiB; peak rss so far={} MiB",
        mib(status_bytes("VmRSS")),
        mib(status_bytes("VmHWM"))
    );
    let t0 = Instant::now();
    let second = store.cut_head(end).unwrap().unwrap();
    let (bytes, n) = (first.bytes + second.bytes, first.samples + second.samples);
    println!(
        "cut the rest: {:.1} s; whole head as blocks: {} MiB, {n} samples → {:.3} B/sample on disk (labels, index, footer included; 2 blocks)",
        t0.elapsed().as_secs_f64(),
        mib(bytes),
        bytes as f64 / n as f64,
    );
    println!(
        "rss now={} MiB; peak rss so far={} MiB",
        mib(status_bytes("VmRSS")),
        mib(status_bytes("VmHWM"))
    );
    drop(store);
    let t0 = Instant::now();
    let store = Store::open(dir, StoreOptions::default()).unwrap();
    println!(
        "replay with an empty head (checkpoint = series records; two blocks opened and verified): {:.1} s, of which blocks {:.1} s; rss now={} MiB; peak rss={} MiB",
        t0.elapsed().as_secs_f64(),
        store.replay_stats().map_or(0.0, |s| s.block_open.as_secs_f64()),
        mib(status_bytes("VmRSS")),
        mib(status_bytes("VmHWM"))
    );
    drop(store);
}
