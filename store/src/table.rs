//! The series table: series id → its in-memory samples, readable without taking any lock.
//!
//! Ids index an append-only array of segments whose sizes double (32, 64, 128, … slots), each
//! allocated when the first id in it is created. Looking a series up is two atomic loads and
//! writes nothing shared, so appenders on different series, on any number of threads, touch no
//! common cache line until they reach the series' own lock. The sample counter is sharded by
//! thread for the same reason.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::head::MemSeries;
use crate::head_chunks::HeadChunkFiles;
use crate::postings::SeriesId;

/// Slots in the first segment, as a power of two.
const FIRST_BITS: u32 = 5;
/// Enough segments for every `u32` id: they hold `2^(FIRST_BITS + SEGMENTS) - 2^FIRST_BITS` ids.
const SEGMENTS: usize = 28;
/// Counter shards; threads beyond this share them round-robin.
const SHARDS: usize = 32;

type Segment = Box<[OnceLock<Box<MemSeries>>]>;

#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard(AtomicU64);

/// Every series' samples, by id.
#[derive(Debug)]
pub(crate) struct SeriesTable {
    segments: [OnceLock<Segment>; SEGMENTS],
    samples: [Shard; SHARDS],
}

impl Default for SeriesTable {
    fn default() -> Self {
        Self {
            segments: std::array::from_fn(|_| OnceLock::new()),
            samples: std::array::from_fn(|_| Shard::default()),
        }
    }
}

/// The segment and slot of `id`.
fn locate(id: u64) -> Option<(usize, usize)> {
    let n = id.checked_add(1 << FIRST_BITS)?;
    let segment = (n.ilog2() - FIRST_BITS) as usize;
    (segment < SEGMENTS).then(|| (segment, (n - (1 << (segment as u32 + FIRST_BITS))) as usize))
}

/// This thread's counter shard.
fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

impl SeriesTable {
    /// Adds the empty series `id`. Called once per id, under the registry's write lock.
    pub(crate) fn push(&self, id: SeriesId) {
        let Some((segment, slot)) = locate(u64::from(id)) else {
            return;
        };
        let size = 1usize << (segment as u32 + FIRST_BITS);
        let segment = self.segments[segment].get_or_init(|| (0..size).map(|_| OnceLock::new()).collect());
        let fresh = segment[slot].set(Box::default()).is_ok();
        debug_assert!(fresh, "series {id} pushed twice");
    }

    /// Runs `f` on series `id`, if it exists.
    pub(crate) fn with<R>(&self, id: u64, f: impl FnOnce(&MemSeries) -> R) -> Option<R> {
        let (segment, slot) = locate(id)?;
        let series = self.segments[segment].get()?.get(slot)?.get()?;
        Some(f(series))
    }

    /// Whether series `id` has a sample in `[mint, maxt]`.
    pub(crate) fn has_sample_in(&self, id: SeriesId, mint: i64, maxt: i64, files: &HeadChunkFiles) -> bool {
        self.with(u64::from(id), |s| s.has_sample_in(mint, maxt, files))
            .unwrap_or(false)
    }

    /// Counts `n` stored samples.
    pub(crate) fn count_samples(&self, n: u64) {
        if n > 0 {
            self.samples[shard()].0.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Uncounts `n` samples dropped from the head (one shard may go "negative"; the sum wraps
    /// back).
    pub(crate) fn uncount_samples(&self, n: u64) {
        if n > 0 {
            self.samples[shard()].0.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// Samples stored in all series.
    pub(crate) fn samples(&self) -> u64 {
        self.samples
            .iter()
            .fold(0u64, |acc, s| acc.wrapping_add(s.0.load(Ordering::Relaxed)))
    }

    /// Approximate heap bytes of the table and every series' chunks.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.segments
            .iter()
            .filter_map(OnceLock::get)
            .map(|seg| {
                seg.len() * size_of::<OnceLock<Box<MemSeries>>>()
                    + seg
                        .iter()
                        .filter_map(OnceLock::get)
                        .map(|s| s.heap_bytes())
                        .sum::<usize>()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_map_to_distinct_slots_across_segments() {
        assert_eq!(locate(0), Some((0, 0)));
        assert_eq!(locate(31), Some((0, 31)));
        assert_eq!(locate(32), Some((1, 0)));
        assert_eq!(locate(95), Some((1, 63)));
        assert_eq!(locate(96), Some((2, 0)));
        assert_eq!(locate(u64::from(u32::MAX)).map(|l| l.0), Some(SEGMENTS - 1));
        assert_eq!(locate(u64::MAX), None);
        assert_eq!(locate(1 << 40), None);
        let t = SeriesTable::default();
        for id in 0..200 {
            t.push(id);
        }
        assert!(t.with(199, |_| ()).is_some() && t.with(200, |_| ()).is_none());
        t.count_samples(3);
        assert_eq!(t.samples(), 3);
    }
}
