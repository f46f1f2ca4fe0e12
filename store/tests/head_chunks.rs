//! Closed head chunks in `chunks_head/`: reused at open instead of rebuilt from the WAL, deleted
//! once a cut leaves nothing in them, and a truncated, corrupted or stale chunk file never loses
//! or duplicates an acknowledged sample (the WAL fills in).

#![allow(clippy::unwrap_used, missing_docs)] // Tests: a panic is the failure report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use meshfed_model::Labels;
use meshfed_store::{SeriesRef, Store, StoreOptions};

const SERIES: usize = 20;

fn options() -> StoreOptions {
    StoreOptions {
        samples_per_chunk: 10,
        // Head chunk segments follow the WAL's (at least 64 KiB): several files here.
        wal_segment_bytes: 64 << 10,
        retention_ms: None,
        ..StoreOptions::default()
    }
}

fn labels(i: usize) -> Labels {
    Labels::from_pairs([("__name__", "hc_total".to_owned()), ("i", i.to_string())])
}

fn refs(store: &Store) -> Vec<SeriesRef> {
    (0..SERIES).map(|i| store.get_or_create(&labels(i))).collect()
}

/// Appends `t` in `range` to every series (value `t * 3 + i`), committing each step.
fn fill(store: &Store, range: std::ops::Range<i64>) {
    let refs = refs(store);
    for t in range {
        let batch: Vec<_> = refs
            .iter()
            .enumerate()
            .map(|(i, &r)| (r, t, (t * 3 + i as i64) as f64))
            .collect();
        assert_eq!(store.append_batch(&batch).appended, SERIES as u64);
        store.commit().unwrap();
    }
}

/// Every series' samples as (t, value bits).
fn contents(store: &Store) -> BTreeMap<usize, Vec<(i64, u64)>> {
    let mut buf = Vec::new();
    (0..SERIES)
        .map(|i| {
            let r = store.get(&labels(i)).unwrap();
            store.read_samples(r, i64::MIN, i64::MAX, &mut buf);
            (
                i,
                buf.iter().map(|s| (s.timestamp_ms, s.value.to_bits())).collect(),
            )
        })
        .collect()
}

fn chunk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir.join("chunks_head"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hch"))
        .collect();
    out.sort();
    out
}

/// A store of 20 series × 500 samples (49 closed chunks each), closed cleanly.
fn build(dir: &Path) -> BTreeMap<usize, Vec<(i64, u64)>> {
    let store = Store::open(dir, options()).unwrap();
    fill(&store, 0..500);
    let want = contents(&store);
    assert!(store.head_chunk_bytes() > 0);
    want
}

#[test]
fn closed_chunks_are_reused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let want = build(dir.path());
    assert!(!chunk_files(dir.path()).is_empty());
    let store = Store::open(dir.path(), options()).unwrap();
    let stats = store.replay_stats().unwrap().clone();
    assert_eq!(stats.head_chunks_reused, (SERIES * 49) as u64, "{stats:?}");
    assert_eq!(stats.head_chunks_dropped, 0);
    // Only the open chunks' samples are rebuilt from the WAL.
    assert_eq!(stats.samples, (SERIES * 10) as u64, "{stats:?}");
    assert_eq!(contents(&store), want);
    assert_eq!(store.stats().samples, (SERIES * 500) as u64);
    // Reopened again after more appends: still exactly the acked samples.
    fill(&store, 500..537);
    let want = contents(&store);
    drop(store);
    let store = Store::open(dir.path(), options()).unwrap();
    assert_eq!(contents(&store), want);
}

#[test]
fn a_truncated_chunk_file_is_trimmed_and_the_wal_fills_in() {
    for keep in [0.5, 0.97] {
        let dir = tempfile::tempdir().unwrap();
        let want = build(dir.path());
        let files = chunk_files(dir.path());
        let victim = &files[files.len() / 2];
        let len = std::fs::metadata(victim).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(victim).unwrap();
        // Almost surely inside a record: records are 32 B + a few dozen chunk bytes.
        file.set_len((len as f64 * keep) as u64 - 3).unwrap();
        drop(file);
        let store = Store::open(dir.path(), options()).unwrap();
        let stats = store.replay_stats().unwrap().clone();
        assert_eq!(stats.head_chunks_dropped, 1, "{stats:?}");
        assert!(stats.head_chunk_bytes_truncated > 0, "{stats:?}");
        assert!(stats.head_chunks_reused < (SERIES * 49) as u64, "{stats:?}");
        assert_eq!(contents(&store), want, "keep {keep}");
        drop(store);
        let store = Store::open(dir.path(), options()).unwrap();
        assert_eq!(store.replay_stats().unwrap().head_chunks_dropped, 0);
        assert_eq!(contents(&store), want, "keep {keep}, second open");
    }
}

#[test]
fn a_corrupted_chunk_file_is_detected_by_checksum_and_the_wal_fills_in() {
    for (what, at) in [
        ("chunk byte", 0.5),
        ("record near the start", 0.01),
        ("magic", 0.0),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let want = build(dir.path());
        let files = chunk_files(dir.path());
        let victim = &files[0];
        let mut bytes = std::fs::read(victim).unwrap();
        let i = ((bytes.len() as f64 * at) as usize).max(if at == 0.0 { 0 } else { 16 });
        bytes[i] ^= 0x5a;
        std::fs::write(victim, &bytes).unwrap();
        let store = Store::open(dir.path(), options()).unwrap();
        let stats = store.replay_stats().unwrap().clone();
        if what != "magic" {
            // (A file with a bad header is dropped whole, uncounted: its records are unknown.)
            assert_eq!(stats.head_chunks_dropped, 1, "{what}: {stats:?}");
        }
        assert!(
            stats.head_chunks_reused < (SERIES * 49) as u64,
            "{what}: {stats:?}"
        );
        assert_eq!(contents(&store), want, "{what}");
        fill(&store, 500..520);
        let want = contents(&store);
        drop(store);
        let store = Store::open(dir.path(), options()).unwrap();
        assert_eq!(contents(&store), want, "{what}, second open");
    }
}

/// A crash can leave chunk files holding samples whose WAL records never reached the disk. Such
/// a chunk is reused only where the WAL leads into it; one that is not reused is made a tombstone
/// at once, so after different samples are acked for its time range a later open cannot take it.
#[test]
fn a_chunk_of_unlogged_samples_never_shadows_later_acked_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    fill(&store, 0..26);
    // Appended but never committed: the WAL keeps them in its buffer, the chunk files get them.
    let r = refs(&store);
    for t in 26..51 {
        let batch: Vec<_> = r
            .iter()
            .enumerate()
            .map(|(i, &r)| (r, t, (t * 3 + i as i64) as f64))
            .collect();
        store.append_batch(&batch);
    }
    store.abandon();

    let store = Store::open(dir.path(), options()).unwrap();
    let after_crash = contents(&store);
    let mut newest = BTreeMap::new();
    for (i, samples) in &after_crash {
        // Every acked sample once, in order; unacked ones may or may not be back.
        let acked: Vec<(i64, u64)> = (0..26)
            .map(|t| (t, ((t * 3 + *i as i64) as f64).to_bits()))
            .collect();
        assert_eq!(&samples[..26], &acked[..], "series {i}");
        assert!(samples.windows(2).all(|w| w[0].0 < w[1].0));
        newest.insert(*i, samples.last().unwrap().0);
    }
    // New, different samples after whatever came back; the first one equals the lost chunk's first
    // sample (t = 30, value 90 + i) so only the tombstone keeps that chunk out.
    let r = refs(&store);
    for t in 26..70 {
        let batch: Vec<_> = r
            .iter()
            .enumerate()
            .filter(|(i, _)| t > newest[i])
            .map(|(i, &r)| {
                let v = if t == 30 { t * 3 + i as i64 } else { 10_000 + t };
                (r, t, v as f64)
            })
            .collect();
        store.append_batch(&batch);
        store.commit().unwrap();
    }
    let want = contents(&store);
    drop(store);
    let store = Store::open(dir.path(), options()).unwrap();
    assert_eq!(contents(&store), want);
}

#[test]
fn a_cut_deletes_chunk_files_it_leaves_unreferenced() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    fill(&store, 0..2_000);
    let before = chunk_files(dir.path()).len();
    assert!(before > 3, "{before} files");
    store.cut_head(1_500).unwrap().unwrap();
    let after = chunk_files(dir.path()).len();
    assert!(after < before, "{before} → {after} files");
    let want = contents(&store);
    assert!(want.values().all(|s| s.len() == 2_000));
    drop(store);
    let store = Store::open(dir.path(), options()).unwrap();
    assert_eq!(contents(&store), want);
    store.cut_head(2_000).unwrap().unwrap();
    // Everything is in blocks now; only the segment being written is left.
    assert_eq!(chunk_files(dir.path()).len(), 1);
    assert_eq!(contents(&store), want);
}
