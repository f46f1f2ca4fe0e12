//! The persistent store: a model check over appends, reads, head cuts, compactions, commits, clean
//! restarts and simulated crashes; WAL torn-tail recovery; block quarantine; retention.

#![allow(clippy::unwrap_used, missing_docs)] // Tests: a panic is the failure report.

use std::collections::BTreeMap;
use std::path::Path;

use meshfed_model::{Labels, MatchOp, Matcher, Sample};
use meshfed_store::{SeriesRef, Store, StoreOptions};
use proptest::prelude::*;

const SERIES: usize = 4;

fn labels(i: usize) -> Labels {
    Labels::from_pairs([("__name__", "m".to_owned()), ("i", i.to_string())])
}

fn options() -> StoreOptions {
    StoreOptions {
        samples_per_chunk: 4,
        wal_segment_bytes: 512,
        compact_max_block_ms: 120,
        ..StoreOptions::default()
    }
}

fn all_samples(store: &Store, r: SeriesRef) -> Vec<(i64, u64)> {
    let mut buf = Vec::new();
    store.read_samples(r, i64::MIN, i64::MAX, &mut buf);
    buf.iter().map(|s| (s.timestamp_ms, s.value.to_bits())).collect()
}

#[derive(Clone, Debug)]
enum Op {
    Batch(Vec<(usize, i64, u8)>),
    Read { series: usize, mint: i64, len: i64 },
    Cut { back: i64 },
    Compact,
    Commit,
    Restart,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec((0..SERIES, -2i64..25, 0u8..4), 1..12).prop_map(Op::Batch),
        2 => (0..SERIES, -10i64..400, 0i64..200).prop_map(|(series, mint, len)| Op::Read { series, mint, len }),
        2 => (0i64..60).prop_map(|back| Op::Cut { back }),
        1 => Just(Op::Compact),
        3 => Just(Op::Commit),
        1 => Just(Op::Restart),
        1 => Just(Op::Crash),
    ]
}

/// What the store must hold: every accepted sample, and which of them are committed.
#[derive(Default)]
struct Model {
    series: Vec<BTreeMap<i64, u64>>,
    committed: Vec<BTreeMap<i64, u64>>,
    min_valid: i64,
}

impl Model {
    /// Whether the store appends (not merely accepts as a repeat) `t` to series `s`.
    fn accepts(&self, s: usize, t: i64) -> bool {
        t >= self.min_valid && self.series[s].last_key_value().is_none_or(|(&n, _)| t > n)
    }

    fn check(&self, store: &Store, refs: &[SeriesRef]) -> Result<(), TestCaseError> {
        for (i, r) in refs.iter().enumerate() {
            let want: Vec<(i64, u64)> = self.series[i].iter().map(|(t, v)| (*t, *v)).collect();
            prop_assert_eq!(all_samples(store, *r), want, "series {}", i);
        }
        let m = Matcher::new(MatchOp::Equal, "__name__", "m").unwrap();
        let want = self.series.iter().filter(|s| !s.is_empty()).count();
        prop_assert_eq!(store.select(&[m], i64::MIN, i64::MAX).len(), want);
        Ok(())
    }
}

fn open(dir: &Path) -> (Store, Vec<SeriesRef>) {
    let store = Store::open(dir, options()).unwrap();
    let refs = (0..SERIES).map(|i| store.get_or_create(&labels(i))).collect();
    (store, refs)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn persistent_store_matches_model(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, mut refs) = open(dir.path());
        let mut model = Model { series: vec![BTreeMap::new(); SERIES], committed: vec![BTreeMap::new(); SERIES], min_valid: i64::MIN };
        let mut newest = 0i64;
        for op in ops {
            match op {
                Op::Batch(items) => {
                    let mut batch = Vec::new();
                    let mut appended = 0;
                    for (s, dt, v) in items {
                        let base = model.series[s].last_key_value().map_or(newest, |(t, _)| *t);
                        let t = base + dt;
                        let bits = f64::from(v).to_bits();
                        if model.accepts(s, t) {
                            model.series[s].insert(t, bits);
                            appended += 1;
                            newest = newest.max(t);
                        }
                        batch.push((refs[s], t, f64::from_bits(bits)));
                    }
                    prop_assert_eq!(store.append_batch(&batch).appended, appended);
                }
                Op::Read { series, mint, len } => {
                    let mut buf: Vec<Sample> = Vec::new();
                    store.read_samples(refs[series], mint, mint + len, &mut buf);
                    let got: Vec<(i64, u64)> = buf.iter().map(|s| (s.timestamp_ms, s.value.to_bits())).collect();
                    let want: Vec<(i64, u64)> = model.series[series].range(mint..=mint + len).map(|(t, v)| (*t, *v)).collect();
                    prop_assert_eq!(got, want);
                }
                Op::Cut { back } => {
                    let before = newest - back;
                    let cut = store.cut_head(before).unwrap();
                    prop_assert_eq!(cut.is_some(), before > model.min_valid);
                    model.min_valid = model.min_valid.max(before);
                    // A cut writes the head to a block and a checkpoint: all of it is durable.
                    if cut.is_some() {
                        model.committed = model.series.clone();
                    }
                }
                Op::Compact => {
                    store.compact().unwrap();
                }
                Op::Commit => {
                    store.commit().unwrap();
                    model.committed = model.series.clone();
                }
                Op::Restart => {
                    drop(store);
                    (store, refs) = open(dir.path());
                    prop_assert_eq!(store.replay_stats().unwrap().dropped_records, 0);
                    model.committed = model.series.clone();
                }
                Op::Crash => {
                    // No final commit, no flush of the WAL buffer: what was written may survive.
                    store.abandon();
                    (store, refs) = open(dir.path());
                    for (i, r) in refs.iter().enumerate() {
                        let got: BTreeMap<i64, u64> = all_samples(&store, *r).into_iter().collect();
                        for (t, v) in &model.committed[i] {
                            prop_assert_eq!(got.get(t), Some(v), "committed sample lost: series {} t {}", i, t);
                        }
                        for (t, v) in &got {
                            prop_assert_eq!(model.series[i].get(t), Some(v), "phantom sample: series {} t {}", i, t);
                        }
                        model.series[i] = got;
                    }
                    model.committed = model.series.clone();
                }
            }
            model.check(&store, &refs)?;
        }
    }
}

#[test]
fn torn_wal_tail_is_truncated_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let r = store.get_or_create(&labels(0));
        for t in 0..10 {
            store.append_batch(&[(r, t * 1000, t as f64)]);
        }
        store.commit().unwrap();
    }
    let wal = dir.path().join("wal");
    let mut segments: Vec<_> = std::fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segments.sort();
    let last = segments
        .iter()
        .rev()
        .find(|p| std::fs::metadata(p).unwrap().len() > 0)
        .unwrap()
        .clone();
    let len = std::fs::metadata(&last).unwrap().len();
    // Tear the last record in half, then append garbage after a valid prefix elsewhere.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let stats = store.replay_stats().unwrap().clone();
    assert_eq!(stats.dropped_records, 1, "{stats:?}");
    assert!(stats.truncated_bytes > 0);
    let r = store.get(&labels(0)).unwrap();
    assert_eq!(all_samples(&store, r).len(), 9);
    drop(store);
    // The truncation was persisted: a second open finds nothing torn.
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(store.replay_stats().unwrap().dropped_records, 0);
    assert_eq!(all_samples(&store, store.get(&labels(0)).unwrap()).len(), 9);
}

#[test]
fn garbage_wal_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("wal")).unwrap();
    let mut seed = 7u64;
    for n in 0..20u64 {
        let bytes: Vec<u8> = (0..(n * 37) % 500)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (seed >> 33) as u8
            })
            .collect();
        std::fs::write(dir.path().join(format!("wal/{n:08}.seg")), bytes).unwrap();
    }
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert!(store.replay_stats().unwrap().dropped_records > 0);
}

#[test]
fn corrupt_block_is_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let r = store.get_or_create(&labels(0));
        for t in 0..500 {
            store.append(r, t * 15_000, t as f64).unwrap();
        }
        store.cut_head(250 * 15_000).unwrap().unwrap();
        store.commit().unwrap();
    }
    let block = std::fs::read_dir(dir.path().join("blocks"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&block).unwrap();
    bytes[40] ^= 0xff;
    std::fs::write(&block, bytes).unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let stats = store.replay_stats().unwrap();
    assert_eq!(stats.quarantined_blocks.len(), 1);
    assert!(stats.quarantined_blocks[0].starts_with(dir.path().join("quarantine")));
    assert!(!block.exists() && store.blocks().is_empty());
    // The head half survives and the store keeps working.
    let r = store.get(&labels(0)).unwrap();
    assert_eq!(all_samples(&store, r).len(), 250);
    store.append(r, 500 * 15_000, 1.0).unwrap();
}

#[test]
fn corruption_found_at_query_time_is_quarantined_by_maintenance() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let r = store.get_or_create(&labels(0));
    for t in 0..500 {
        store.append(r, t * 15_000, t as f64).unwrap();
    }
    let info = store.cut_head(250 * 15_000).unwrap().unwrap();
    let mut bytes = std::fs::read(&info.path).unwrap();
    bytes[40] ^= 0xff;
    std::fs::write(&info.path, bytes).unwrap();
    assert!(all_samples(&store, r).len() < 500);
    let report = store.maintain().unwrap();
    assert_eq!(report.quarantined.len(), 1);
}

#[test]
fn retention_by_time_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        retention_ms: Some(1_000),
        compact_max_block_ms: 0,
        ..StoreOptions::default()
    };
    let store = Store::open(dir.path(), opts).unwrap();
    let r = store.get_or_create(&labels(0));
    for t in 0..4000 {
        store.append(r, t, 1.0).unwrap();
    }
    for b in [500, 1000, 1500, 2000, 2500] {
        store.cut_head(b).unwrap();
    }
    assert_eq!(store.blocks().len(), 5);
    // Newest sample 3999: blocks ending at or before 2999 - … i.e. <= 2999 go.
    assert_eq!(store.apply_retention().unwrap(), 5);
    let mut buf = Vec::new();
    store.read_samples(r, i64::MIN, i64::MAX, &mut buf);
    assert_eq!(buf.first().map(|s| s.timestamp_ms), Some(2500));
    drop(store);
    let opts = StoreOptions {
        retention_ms: None,
        retention_bytes: Some(1),
        ..StoreOptions::default()
    };
    let store = Store::open(dir.path(), opts).unwrap();
    store.cut_head(3000).unwrap();
    assert_eq!(store.blocks().len(), 1);
    assert_eq!(store.apply_retention().unwrap(), 1);
    assert!(store.blocks().is_empty());
}

#[test]
fn compaction_merges_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        compact_max_block_ms: 10_000,
        ..StoreOptions::default()
    };
    let store = Store::open(dir.path(), opts.clone()).unwrap();
    let refs: Vec<SeriesRef> = (0..3).map(|i| store.get_or_create(&labels(i))).collect();
    for t in 0..3000 {
        store.append(refs[(t % 3) as usize], t, t as f64).unwrap();
    }
    for b in [500, 1000, 1500, 2000] {
        store.cut_head(b).unwrap();
    }
    assert_eq!(store.compact().unwrap(), 4);
    assert_eq!(store.blocks().len(), 1);
    let before: Vec<_> = refs.iter().map(|r| all_samples(&store, *r)).collect();
    assert_eq!(before.iter().map(Vec::len).sum::<usize>(), 3000);
    drop(store);
    let store = Store::open(dir.path(), opts).unwrap();
    let after: Vec<_> = (0..3)
        .map(|i| all_samples(&store, store.get(&labels(i)).unwrap()))
        .collect();
    assert_eq!(before, after);
    assert_eq!(store.label_values("i", &[], 0, 10), ["0", "1", "2"]);
    assert_eq!(store.stats().samples, 3000);
}

/// Istio-shaped counters scraped every 15 s for 2 h: block bytes per sample, labels included.
#[test]
fn block_bytes_per_sample_for_counters() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let refs: Vec<SeriesRef> = (0..1000).map(|i| store.get_or_create(&labels(i))).collect();
    let mut batch = Vec::new();
    for k in 0..480i64 {
        batch.clear();
        batch.extend(
            refs.iter()
                .enumerate()
                .map(|(i, &r)| (r, k * 15_000, (k * (i as i64 % 7)) as f64)),
        );
        store.append_batch(&batch);
    }
    let info = store.cut_head(480 * 15_000).unwrap().unwrap();
    let per_sample = info.bytes as f64 / info.samples as f64;
    eprintln!(
        "block: {} bytes, {} samples, {per_sample:.3} B/sample",
        info.bytes, info.samples
    );
    assert_eq!(info.samples, 480_000);
    assert!(per_sample <= 1.5, "{per_sample} B/sample");
}

/// Found by `persistent_store_matches_model`: an empty cut `[0, 0)` and a cut `[0, 20)` share a
/// start; compacting them must give `[0, 20)`, not the last part's end, or the block's sample
/// falls below the read floor after a restart.
#[test]
fn compacting_blocks_with_one_start_keeps_the_widest_range() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), options()).unwrap();
        let r = store.get_or_create(&labels(0));
        store.cut_head(0).unwrap().unwrap();
        store.append_batch(&[(r, 0, 1.0), (r, 20, 2.0)]);
        store.cut_head(20).unwrap().unwrap();
    }
    {
        let store = Store::open(dir.path(), options()).unwrap();
        assert_eq!(store.compact().unwrap(), 2);
        let blocks = store.blocks();
        assert_eq!((blocks[0].start_ms, blocks[0].end_ms), (0, 20));
    }
    let store = Store::open(dir.path(), options()).unwrap();
    let r = store.get_or_create(&labels(0));
    assert_eq!(
        all_samples(&store, r),
        vec![(0, 1f64.to_bits()), (20, 2f64.to_bits())]
    );
}
