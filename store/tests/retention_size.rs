//! Retention by size counts the WAL and the head chunk files as well as the blocks: the oldest
//! blocks go while they all together exceed the limit (WAL and head chunks hold the head and are
//! never deleted by retention).

#![allow(clippy::unwrap_used, missing_docs)] // Tests: a panic is the failure report.

use std::path::Path;

use meshfed_model::Labels;
use meshfed_store::{Store, StoreOptions};

fn files_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

fn options(retention_bytes: Option<u64>) -> StoreOptions {
    StoreOptions {
        retention_ms: None,
        retention_bytes,
        compact_max_block_ms: 0,
        ..StoreOptions::default()
    }
}

/// A store with three blocks (oldest first) and a head whose WAL outweighs them.
fn build(dir: &Path) -> (Vec<u64>, u64) {
    let store = Store::open(dir, options(None)).unwrap();
    let refs: Vec<_> = (0..20)
        .map(|i| store.get_or_create(&Labels::from_pairs([("__name__", "m"), ("i", &*i.to_string())])))
        .collect();
    for t in 0..4_000 {
        let batch: Vec<_> = refs.iter().map(|&r| (r, t, t as f64)).collect();
        store.append_batch(&batch);
    }
    for b in [500, 1_000, 1_500] {
        store.cut_head(b).unwrap().unwrap();
    }
    store.commit().unwrap();
    let blocks = store
        .blocks()
        .iter()
        .map(|b| b.path.metadata().unwrap().len())
        .collect();
    drop(store);
    // One more open settles the head chunk files (chunks reused, a new empty segment).
    drop(Store::open(dir, options(None)).unwrap());
    let head = files_bytes(&dir.join("wal")) + files_bytes(&dir.join("chunks_head"));
    (blocks, head)
}

#[test]
fn retention_by_size_counts_the_wal() {
    for (keep_blocks, label) in [(3, "all fit"), (2, "oldest goes"), (0, "the WAL alone is over")] {
        let dir = tempfile::tempdir().unwrap();
        let (blocks, wal) = build(dir.path());
        assert!(
            wal > blocks.iter().sum::<u64>(),
            "the WAL should outweigh the blocks here"
        );
        let kept: u64 = blocks[3 - keep_blocks..].iter().sum();
        let limit = if keep_blocks == 0 { wal - 1 } else { kept + wal };
        let store = Store::open(dir.path(), options(Some(limit))).unwrap();
        assert_eq!(
            files_bytes(&dir.path().join("wal")) + store.head_chunk_bytes(),
            wal,
            "reopening changed the head's size on disk"
        );
        assert_eq!(store.apply_retention().unwrap(), 3 - keep_blocks, "{label}");
        assert_eq!(store.blocks().len(), keep_blocks, "{label}");
        // Counting blocks alone, every case would have kept all three.
        assert!(blocks.iter().sum::<u64>() <= limit || keep_blocks == 0);
    }
}
