//! Crash safety with a real process: a child (this test binary re-run as `crash_child`) appends,
//! commits and prints each committed sample; the parent SIGKILLs it at random moments, restarts
//! it, and at the end checks that every printed sample is in the store exactly once.

#![allow(clippy::unwrap_used, missing_docs)] // Tests: a panic is the failure report.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use meshfed_model::Labels;
use meshfed_store::{Store, StoreOptions};
use rand::Rng;

const DIR_ENV: &str = "MESHFED_CRASH_DIR";
const SERIES: usize = 20;

fn labels(i: usize) -> Labels {
    Labels::from_pairs([("__name__", "crash_total".to_owned()), ("i", i.to_string())])
}

fn options() -> StoreOptions {
    StoreOptions {
        wal_segment_bytes: 64 << 10,
        samples_per_chunk: 30,
        ..StoreOptions::default()
    }
}

/// The child: resumes after the newest sample, then appends a batch per step, commits, prints.
#[test]
#[ignore = "helper process for crash_safety_under_sigkill"]
fn crash_child() {
    let Ok(dir) = std::env::var(DIR_ENV) else { return };
    let store = Store::open(Path::new(&dir), options()).unwrap();
    let refs: Vec<_> = (0..SERIES).map(|i| store.get_or_create(&labels(i))).collect();
    let mut buf = Vec::new();
    store.read_samples(refs[0], i64::MIN, i64::MAX, &mut buf);
    let mut t = buf.last().map_or(0, |s| s.timestamp_ms) + 1;
    let mut out = std::io::stdout().lock();
    loop {
        let batch: Vec<_> = refs.iter().map(|&r| (r, t, t as f64)).collect();
        assert_eq!(store.append_batch(&batch).appended, SERIES as u64);
        store.commit().unwrap();
        let mut lines = String::new();
        for i in 0..SERIES {
            lines.push_str(&format!("COMMITTED {i} {t}\n"));
        }
        out.write_all(lines.as_bytes()).unwrap();
        out.flush().unwrap();
        if t % 200 == 0 {
            store.cut_head(t - 100).unwrap();
        }
        if t % 1000 == 0 {
            store.compact().unwrap();
        }
        t += 1;
    }
}

#[test]
fn crash_safety_under_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut committed: BTreeSet<(usize, i64)> = BTreeSet::new();
    let mut rng = rand::rng();
    let deadline = Instant::now() + Duration::from_secs(25);
    let mut rounds = 0;
    while rounds < 4 || (Instant::now() < deadline && rounds < 15) {
        rounds += 1;
        let mut child = Command::new(&exe)
            .args([
                "crash_child",
                "--exact",
                "--nocapture",
                "--include-ignored",
                "--test-threads=1",
            ])
            .env(DIR_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 {
                // Only whole lines: a kill can cut the last one short.
                if let Some(rest) = line.strip_suffix('\n').and_then(|l| l.strip_prefix("COMMITTED ")) {
                    let mut parts = rest.split(' ');
                    let (Some(i), Some(t)) = (parts.next(), parts.next()) else {
                        continue;
                    };
                    got.push((i.parse::<usize>().unwrap(), t.parse::<i64>().unwrap()));
                }
                line.clear();
            }
            got
        });
        std::thread::sleep(Duration::from_millis(rng.random_range(200..1200)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        committed.extend(reader.join().unwrap());
    }
    assert!(
        committed.len() > 1000,
        "the child committed too little: {}",
        committed.len()
    );
    let store = Store::open(dir.path(), options()).unwrap();
    let mut buf = Vec::new();
    for i in 0..SERIES {
        let r = store.get(&labels(i)).unwrap();
        store.read_samples(r, i64::MIN, i64::MAX, &mut buf);
        assert!(
            buf.windows(2).all(|w| w[0].timestamp_ms < w[1].timestamp_ms),
            "series {i} has a duplicated or unordered sample"
        );
        let have: BTreeSet<i64> = buf.iter().map(|s| s.timestamp_ms).collect();
        assert!(buf.iter().all(|s| s.value == s.timestamp_ms as f64));
        for &(_, t) in committed.iter().filter(|(j, _)| *j == i) {
            assert!(
                have.contains(&t),
                "committed sample lost: series {i} t {t} after {rounds} kills"
            );
        }
    }
    eprintln!(
        "{rounds} SIGKILLs, {} committed samples checked, {} blocks",
        committed.len(),
        store.blocks().len()
    );
}
