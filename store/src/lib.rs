//! meshfed's embedded time-series store.
//!
//! A [`Store`] holds series identified by their [`Labels`], each with its samples in time order.
//! Writers append by [`SeriesRef`]; readers select series with label [`Matcher`]s and copy the
//! samples of a time range into a buffer they reuse, so a query engine evaluates many series
//! without allocating per sample.
//!
//! The store is `Send + Sync`; every method takes `&self`.
//!
//! Inside, a [`Store`] is a series registry (label sets interned as symbol ids, looked up by a
//! collision-checked hash, with a postings index for matchers) and a lock-free table of series, each
//! holding Gorilla-compressed chunks. Ingest finds a series without locking and then takes only
//! that series' lock, so many writers and readers proceed in parallel; the registry's write lock
//! is taken only to create a series.

mod chunk;
mod head;
mod postings;
mod registry;
mod select;
mod symbols;
mod table;

use meshfed_model::{Labels, Matcher, Sample};

use crate::head::AppendOutcome;
use crate::registry::Registry;
use crate::table::SeriesTable;

/// A stable handle for one series, valid for the lifetime of the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesRef(pub u64);

/// Why an append was refused.
#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum AppendError {
    /// The sample is older than the newest sample of its series by more than the out-of-order window.
    #[error("out of order sample for series {series:?}: {timestamp_ms} < {newest_ms}")]
    OutOfOrder {
        /// The series.
        series: SeriesRef,
        /// The refused timestamp.
        timestamp_ms: i64,
        /// The newest timestamp already stored.
        newest_ms: i64,
    },
    /// Same timestamp as an existing sample but a different value.
    #[error("duplicate sample for timestamp {timestamp_ms} with a different value in series {series:?}")]
    DuplicateTimestamp {
        /// The series.
        series: SeriesRef,
        /// The timestamp.
        timestamp_ms: i64,
    },
    /// The ref does not name a series of this store.
    #[error("unknown series ref {0:?}")]
    UnknownSeries(SeriesRef),
}

/// Store tuning.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Samples per head chunk before a new chunk is started.
    pub samples_per_chunk: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            samples_per_chunk: 120,
        }
    }
}

/// A selected series: its ref and label set.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesHandle {
    /// The series' ref, for [`Store::read_samples`].
    pub series: SeriesRef,
    /// The series' labels, including `__name__`.
    pub labels: Labels,
}

/// Counts the store keeps about itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoreStats {
    /// Series ever created.
    pub series: u64,
    /// Samples appended and kept.
    pub samples: u64,
}

/// Outcome of [`Store::append_batch`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AppendStats {
    /// Samples stored.
    pub appended: u64,
    /// Samples refused as out of order.
    pub out_of_order: u64,
    /// Samples refused as a duplicate timestamp with another value.
    pub duplicate: u64,
    /// Samples ignored because an identical sample was already stored.
    pub unchanged: u64,
    /// Samples refused because their ref names no series of this store.
    pub unknown_series: u64,
}

/// An estimate of the store's heap use, from [`Store::memory`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemoryStats {
    /// Series in the store.
    pub series: u64,
    /// Distinct label names and values.
    pub symbols: u64,
    /// Bytes of the symbol table (strings and their maps).
    pub symbol_bytes: u64,
    /// Bytes of the per-series label symbol pairs and the hash lookup.
    pub label_bytes: u64,
    /// Bytes of the postings index.
    pub postings_bytes: u64,
    /// Bytes of the series table, per-series state and encoded chunks.
    pub chunk_bytes: u64,
}

impl MemoryStats {
    /// The total of every part.
    pub fn total_bytes(&self) -> u64 {
        self.symbol_bytes + self.label_bytes + self.postings_bytes + self.chunk_bytes
    }

    /// Total bytes divided by series (0 when empty).
    pub fn bytes_per_series(&self) -> u64 {
        self.total_bytes().checked_div(self.series).unwrap_or(0)
    }
}

/// The store. See the crate docs.
pub struct Store {
    samples_per_chunk: u16,
    registry: Registry,
    table: SeriesTable,
}

impl Store {
    /// An empty in-memory store. `samples_per_chunk` is clamped to `1..=65535`.
    pub fn new(options: StoreOptions) -> Self {
        let samples_per_chunk = options.samples_per_chunk.clamp(1, u16::MAX as usize) as u16;
        Self {
            samples_per_chunk,
            registry: Registry::default(),
            table: SeriesTable::default(),
        }
    }

    /// The ref of the series with exactly `labels`, creating it if new.
    pub fn get_or_create(&self, labels: &Labels) -> SeriesRef {
        SeriesRef(u64::from(
            self.registry.get_or_create(labels, |id| self.table.push(id)),
        ))
    }

    /// The ref of the series with exactly `labels`, if it exists.
    pub fn get(&self, labels: &Labels) -> Option<SeriesRef> {
        self.registry.get(labels).map(|id| SeriesRef(u64::from(id)))
    }

    /// The labels of `series`, if it exists.
    pub fn labels(&self, series: SeriesRef) -> Option<Labels> {
        let id = u32::try_from(series.0).ok()?;
        let registry = self.registry.read();
        ((id as usize) < registry.len()).then(|| registry.labels(id))
    }

    fn append_one(&self, series: SeriesRef, timestamp_ms: i64, value: f64) -> Option<AppendOutcome> {
        self.table.with(series.0, |s| {
            s.append(timestamp_ms, value, self.samples_per_chunk)
        })
    }

    /// Appends one sample. Samples must arrive in time order per series (an identical repeat of the
    /// newest sample is accepted and ignored).
    pub fn append(&self, series: SeriesRef, timestamp_ms: i64, value: f64) -> Result<(), AppendError> {
        match self.append_one(series, timestamp_ms, value) {
            Some(AppendOutcome::Appended) => {
                self.table.count_samples(1);
                Ok(())
            }
            Some(AppendOutcome::Unchanged) => Ok(()),
            Some(AppendOutcome::OutOfOrder(newest_ms)) => Err(AppendError::OutOfOrder {
                series,
                timestamp_ms,
                newest_ms,
            }),
            Some(AppendOutcome::Duplicate) => Err(AppendError::DuplicateTimestamp { series, timestamp_ms }),
            None => Err(AppendError::UnknownSeries(series)),
        }
    }

    /// Appends many samples, counting refusals instead of stopping at the first.
    pub fn append_batch(&self, samples: &[(SeriesRef, i64, f64)]) -> AppendStats {
        let mut stats = AppendStats::default();
        for &(series, t, v) in samples {
            match self.append_one(series, t, v) {
                Some(AppendOutcome::Appended) => stats.appended += 1,
                Some(AppendOutcome::Unchanged) => stats.unchanged += 1,
                Some(AppendOutcome::OutOfOrder(_)) => stats.out_of_order += 1,
                Some(AppendOutcome::Duplicate) => stats.duplicate += 1,
                None => stats.unknown_series += 1,
            }
        }
        self.table.count_samples(stats.appended);
        stats
    }

    /// Series matching every matcher that have at least one sample in `[mint_ms, maxt_ms]`,
    /// sorted by labels. An empty matcher list selects nothing.
    pub fn select(&self, matchers: &[Matcher], mint_ms: i64, maxt_ms: i64) -> Vec<SeriesHandle> {
        let registry = self.registry.read();
        let mut out: Vec<SeriesHandle> = registry
            .select(matchers)
            .into_iter()
            .filter(|&id| self.table.has_sample_in(id, mint_ms, maxt_ms))
            .map(|id| SeriesHandle {
                series: SeriesRef(u64::from(id)),
                labels: registry.labels(id),
            })
            .collect();
        drop(registry);
        out.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    /// Replaces the contents of `out` with the samples of `series` in `[mint_ms, maxt_ms]`, oldest
    /// first, including staleness markers.
    pub fn read_samples(&self, series: SeriesRef, mint_ms: i64, maxt_ms: i64, out: &mut Vec<Sample>) {
        out.clear();
        self.table.with(series.0, |s| s.read(mint_ms, maxt_ms, out));
    }

    /// Sorted label names of series matching any of the matcher sets (all series when empty) with
    /// samples in the range.
    pub fn label_names(&self, matcher_sets: &[Vec<Matcher>], mint_ms: i64, maxt_ms: i64) -> Vec<String> {
        self.registry
            .read()
            .label_names(matcher_sets, |id| self.table.has_sample_in(id, mint_ms, maxt_ms))
    }

    /// Sorted values of label `name` among series matching any of the matcher sets (all series
    /// when empty) with samples in the range.
    pub fn label_values(
        &self,
        name: &str,
        matcher_sets: &[Vec<Matcher>],
        mint_ms: i64,
        maxt_ms: i64,
    ) -> Vec<String> {
        self.registry.read().label_values(name, matcher_sets, |id| {
            self.table.has_sample_in(id, mint_ms, maxt_ms)
        })
    }

    /// Label sets of series matching any of the matcher sets with samples in the range, sorted.
    pub fn series(&self, matcher_sets: &[Vec<Matcher>], mint_ms: i64, maxt_ms: i64) -> Vec<Labels> {
        let registry = self.registry.read();
        let mut out: Vec<Labels> = registry
            .select_any(matcher_sets)
            .into_iter()
            .filter(|&id| self.table.has_sample_in(id, mint_ms, maxt_ms))
            .map(|id| registry.labels(id))
            .collect();
        drop(registry);
        out.sort_unstable();
        out
    }

    /// Current counts.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            series: self.registry.read().len() as u64,
            samples: self.table.samples(),
        }
    }

    /// An estimate of the heap the store uses. Walks every series: for self-metrics, not hot paths.
    pub fn memory(&self) -> MemoryStats {
        let registry = self.registry.read();
        let (symbol_bytes, label_bytes, postings_bytes) = registry.heap_bytes();
        MemoryStats {
            series: registry.len() as u64,
            symbols: registry.symbols.len() as u64,
            symbol_bytes: symbol_bytes as u64,
            label_bytes: label_bytes as u64,
            postings_bytes: postings_bytes as u64,
            chunk_bytes: self.table.heap_bytes() as u64,
        }
    }
}

#[cfg(test)]
mod tests;
