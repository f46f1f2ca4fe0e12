//! The series table: series id → its in-memory samples, striped so appends to different series
//! take different locks.
//!
//! Series `id` lives in stripe `id % STRIPES` at slot `id / STRIPES`. Appends take only a stripe's
//! read lock and the series' own lock; creating a series takes one stripe's write lock for a push.
//! Each stripe sits on its own cache lines with its share of the sample counter, so writers on
//! different stripes share no memory.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use crate::head::MemSeries;
use crate::postings::SeriesId;

const STRIPES: usize = 64;

#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe {
    /// Boxed so growing the vector moves pointers, and its doubling slack costs 8 bytes a slot
    /// rather than a whole series.
    #[allow(clippy::vec_box)]
    series: RwLock<Vec<Box<MemSeries>>>,
    samples: AtomicU64,
}

/// Every series' samples, by id.
#[derive(Debug)]
pub(crate) struct SeriesTable {
    stripes: Box<[Stripe]>,
}

impl Default for SeriesTable {
    fn default() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
        }
    }
}

impl SeriesTable {
    /// Adds the empty series `id`. Ids must be pushed in increasing order without gaps.
    pub(crate) fn push(&self, id: SeriesId) {
        let mut series = self.stripes[id as usize % STRIPES].series.write();
        debug_assert_eq!(series.len(), id as usize / STRIPES);
        series.push(Box::default());
    }

    /// Runs `f` on series `id`, if it exists.
    pub(crate) fn with<R>(&self, id: u64, f: impl FnOnce(&MemSeries) -> R) -> Option<R> {
        let id = usize::try_from(id).ok()?;
        let series = self.stripes[id % STRIPES].series.read();
        series.get(id / STRIPES).map(|s| f(s))
    }

    /// Whether series `id` has a sample in `[mint, maxt]`.
    pub(crate) fn has_sample_in(&self, id: SeriesId, mint: i64, maxt: i64) -> bool {
        self.with(u64::from(id), |s| s.has_sample_in(mint, maxt))
            .unwrap_or(false)
    }

    /// Counts `n` stored samples against the stripe of `id`.
    pub(crate) fn count_samples(&self, id: u64, n: u64) {
        if n > 0 {
            self.stripes[(id % STRIPES as u64) as usize]
                .samples
                .fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Samples stored in all series.
    pub(crate) fn samples(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.samples.load(Ordering::Relaxed))
            .sum()
    }

    /// Approximate heap bytes of the table and every series' chunks.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.stripes
            .iter()
            .map(|s| {
                let series = s.series.read();
                series.capacity() * size_of::<Box<MemSeries>>()
                    + series.iter().map(|m| m.heap_bytes()).sum::<usize>()
            })
            .sum::<usize>()
            + size_of::<Stripe>() * STRIPES
    }
}
