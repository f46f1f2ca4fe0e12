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
//!
//! [`Store::open`] makes the store persistent: every series creation and accepted sample is
//! logged to a checksummed write-ahead log, [`Store::commit`] makes what was appended durable
//! (group commit), full head chunks move to memory-mapped files (only each series' open chunk
//! stays on the heap), and [`Store::maintain`] cuts old head data into immutable block files,
//! compacts them and applies retention. Reads span head and blocks transparently. See
//! `docs/store.md`.

mod block;
mod chunk;
mod error;
mod forget;
mod head;
mod head_chunks;
mod lock;
mod maintain;
mod persist;
mod postings;
mod registry;
mod select;
mod symbols;
mod table;
mod wal;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use meshfed_model::{Labels, Matcher, Sample};

pub use crate::block::BlockInfo;
pub use crate::error::{Result, StoreError};
pub use crate::forget::ForgetReport;
pub use crate::maintain::MaintenanceReport;
pub use crate::wal::replay::ReplayStats;

use crate::block::set::BlockSet;
use crate::head::AppendOutcome;
use crate::head_chunks::HeadChunkFiles;
use crate::persist::Disk;
use crate::postings::SeriesId;
use crate::registry::Registry;
use crate::table::SeriesTable;

/// A handle for one series. It stays valid for the lifetime of the store unless the series is
/// forgotten ([`Store::forget_empty_series`]: no sample anywhere, and no lookup or append across
/// two rounds); appends by a forgotten ref are refused as [`AppendError::UnknownSeries`], and the
/// ref is never handed out again, so a stale ref cannot reach another series.
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
    /// The ref does not name a series of this store, or names one that was forgotten (see
    /// [`Store::forget_empty_series`]): look the labels up again with [`Store::get_or_create`].
    #[error("unknown series ref {0:?}")]
    UnknownSeries(SeriesRef),
    /// The sample is older than the newest head cut: that range is already in blocks.
    #[error("sample at {timestamp_ms} for series {series:?} is before the head's lower bound {min_valid_ms}")]
    OutOfBounds {
        /// The series.
        series: SeriesRef,
        /// The refused timestamp.
        timestamp_ms: i64,
        /// The oldest timestamp the head accepts.
        min_valid_ms: i64,
    },
}

/// Store tuning. Only `samples_per_chunk` matters to an in-memory store ([`Store::new`]).
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Samples per head chunk before a new chunk is started.
    pub samples_per_chunk: usize,
    /// A WAL segment is closed and a new one started past this size.
    pub wal_segment_bytes: u64,
    /// Also fsync the WAL on this interval (a background thread); `None`: only [`Store::commit`]
    /// fsyncs.
    pub wal_fsync_interval_ms: Option<u64>,
    /// [`Store::maintain`] keeps this much of the newest data in the head and cuts the rest.
    pub head_window_ms: i64,
    /// Cut boundaries are multiples of this.
    pub block_duration_ms: i64,
    /// Compaction merges adjacent blocks while their combined span stays within this.
    pub compact_max_block_ms: i64,
    /// Blocks ending this long before the newest sample are deleted.
    pub retention_ms: Option<i64>,
    /// The oldest blocks are deleted while all blocks and the WAL together exceed this (the WAL
    /// itself is never deleted by retention: it holds the head).
    pub retention_bytes: Option<u64>,
    /// Check every chunk's checksum when opening (otherwise only footers and indexes).
    pub verify_blocks_on_open: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        const HOUR_MS: i64 = 3_600_000;
        Self {
            samples_per_chunk: 120,
            wal_segment_bytes: 128 << 20,
            wal_fsync_interval_ms: None,
            head_window_ms: 2 * HOUR_MS,
            block_duration_ms: 2 * HOUR_MS,
            compact_max_block_ms: 24 * HOUR_MS,
            retention_ms: Some(15 * 24 * HOUR_MS),
            retention_bytes: None,
            verify_blocks_on_open: true,
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
    /// Series in the store (created and not forgotten).
    pub series: u64,
    /// Series forgotten since the store was opened.
    pub forgotten: u64,
    /// Samples appended and kept (head and blocks).
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
    /// Samples refused because their ref names no series of this store or a forgotten one;
    /// the holder must look the series up again by its labels.
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
    /// Bytes of the series table, per-series state and the encoded chunks on the heap: the open
    /// chunks, plus a 32 B entry per closed chunk (a persistent store's closed chunks are in
    /// memory-mapped `chunks_head/` files, i.e. the page cache, not the heap).
    pub chunk_bytes: u64,
}

impl AppendStats {
    fn count(&mut self, outcome: Option<AppendOutcome>) {
        match outcome {
            Some(AppendOutcome::Appended) => self.appended += 1,
            Some(AppendOutcome::Unchanged) => self.unchanged += 1,
            Some(AppendOutcome::OutOfOrder(_) | AppendOutcome::TooOld) => self.out_of_order += 1,
            Some(AppendOutcome::Duplicate) => self.duplicate += 1,
            Some(AppendOutcome::Forgotten) | None => self.unknown_series += 1,
        }
    }
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
    /// Appends older than this are refused (the newest cut boundary).
    min_valid: AtomicI64,
    /// Closed head chunks on disk, memory-mapped (none for an in-memory store).
    chunk_files: HeadChunkFiles,
    /// WAL and blocks, when opened from a directory.
    disk: Option<Disk>,
}

impl Store {
    /// An empty in-memory store. `samples_per_chunk` is clamped to `1..=65535`.
    pub fn new(options: StoreOptions) -> Self {
        let samples_per_chunk = options.samples_per_chunk.clamp(1, u16::MAX as usize) as u16;
        Self {
            samples_per_chunk,
            registry: Registry::default(),
            table: SeriesTable::default(),
            min_valid: AtomicI64::new(i64::MIN),
            chunk_files: HeadChunkFiles::none(),
            disk: None,
        }
    }

    /// The published blocks, if persistent.
    fn block_set(&self) -> Option<Arc<BlockSet>> {
        self.disk.as_ref().map(|d| d.blocks.read().clone())
    }

    /// Whether `id` has a sample in `[mint, maxt]` in the head (past the floor) or a block.
    fn has_sample_in(&self, set: Option<&BlockSet>, id: SeriesId, mint: i64, maxt: i64) -> bool {
        match set {
            None => self.table.has_sample_in(id, mint, maxt, &self.chunk_files),
            Some(set) => {
                self.table
                    .has_sample_in(id, mint.max(set.floor), maxt, &self.chunk_files)
                    || set.has_sample_in(id, mint, maxt)
            }
        }
    }

    /// The ref of the series with exactly `labels`, creating it if new.
    pub fn get_or_create(&self, labels: &Labels) -> SeriesRef {
        SeriesRef(u64::from(self.registry.get_or_create(
            labels,
            |id| {
                self.table.push(id);
                // Under the registry's write lock: the log's series order is the id order.
                if let Some(disk) = &self.disk {
                    disk.wal.lock().log_series(u64::from(id), labels);
                }
            },
            |id| {
                self.table.with(u64::from(id), |s| s.touch());
            },
        )))
    }

    /// The ref of the series with exactly `labels`, if it exists.
    pub fn get(&self, labels: &Labels) -> Option<SeriesRef> {
        self.registry.get(labels).map(|id| SeriesRef(u64::from(id)))
    }

    /// The labels of `series`, if it exists (not for a forgotten series).
    pub fn labels(&self, series: SeriesRef) -> Option<Labels> {
        let id = u32::try_from(series.0).ok()?;
        let registry = self.registry.read();
        registry.is_live(id).then(|| registry.labels(id))
    }

    fn append_one(&self, series: SeriesRef, timestamp_ms: i64, value: f64) -> Option<AppendOutcome> {
        self.table.with(series.0, |s| {
            s.append(
                series.0,
                timestamp_ms,
                value,
                self.samples_per_chunk,
                &self.min_valid,
                &self.chunk_files,
            )
        })
    }

    /// Appends one sample. Samples must arrive in time order per series (an identical repeat of the
    /// newest sample is accepted and ignored).
    pub fn append(&self, series: SeriesRef, timestamp_ms: i64, value: f64) -> Result<(), AppendError> {
        let outcome = match &self.disk {
            None => self.append_one(series, timestamp_ms, value),
            Some(disk) => {
                let mut wal = disk.wal.lock();
                let outcome = self.append_one(series, timestamp_ms, value);
                if outcome == Some(AppendOutcome::Appended) {
                    wal.scratch.push((series.0, timestamp_ms, value.to_bits()));
                    wal.log_scratch();
                }
                outcome
            }
        };
        match outcome {
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
            Some(AppendOutcome::TooOld) => Err(AppendError::OutOfBounds {
                series,
                timestamp_ms,
                min_valid_ms: self.min_valid.load(Ordering::Relaxed),
            }),
            Some(AppendOutcome::Forgotten) | None => Err(AppendError::UnknownSeries(series)),
        }
    }

    /// Appends many samples, counting refusals instead of stopping at the first (samples before
    /// the head's lower bound count as `out_of_order`). In a persistent store the accepted samples
    /// are logged as one WAL record; call [`Store::commit`] to make them durable.
    pub fn append_batch(&self, samples: &[(SeriesRef, i64, f64)]) -> AppendStats {
        let mut stats = AppendStats::default();
        let Some(disk) = &self.disk else {
            for &(series, t, v) in samples {
                stats.count(self.append_one(series, t, v));
            }
            self.table.count_samples(stats.appended);
            return stats;
        };
        // The batch is applied and logged under the WAL lock, so the log's per-series order is
        // the head's and replay accepts exactly what was accepted here.
        let mut wal = disk.wal.lock();
        for &(series, t, v) in samples {
            let outcome = self.append_one(series, t, v);
            if outcome == Some(AppendOutcome::Appended) {
                wal.scratch.push((series.0, t, v.to_bits()));
            }
            stats.count(outcome);
        }
        wal.log_scratch();
        drop(wal);
        self.table.count_samples(stats.appended);
        stats
    }

    /// Series matching every matcher that have at least one sample in `[mint_ms, maxt_ms]`,
    /// sorted by labels. An empty matcher list selects nothing.
    pub fn select(&self, matchers: &[Matcher], mint_ms: i64, maxt_ms: i64) -> Vec<SeriesHandle> {
        let set = self.block_set();
        let registry = self.registry.read();
        let mut out: Vec<SeriesHandle> = registry
            .select(matchers)
            .into_iter()
            .filter(|&id| self.has_sample_in(set.as_deref(), id, mint_ms, maxt_ms))
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
        let Some(set) = self.block_set() else {
            self.table
                .with(series.0, |s| s.read(mint_ms, maxt_ms, out, &self.chunk_files));
            return;
        };
        if let Ok(id) = SeriesId::try_from(series.0) {
            set.read_into(id, mint_ms, maxt_ms, out);
        }
        self.table.with(series.0, |s| {
            s.read_into(mint_ms.max(set.floor), maxt_ms, out, &self.chunk_files)
        });
    }

    /// Sorted label names of series matching any of the matcher sets (all series when empty) with
    /// samples in the range.
    pub fn label_names(&self, matcher_sets: &[Vec<Matcher>], mint_ms: i64, maxt_ms: i64) -> Vec<String> {
        let set = self.block_set();
        self.registry.read().label_names(matcher_sets, |id| {
            self.has_sample_in(set.as_deref(), id, mint_ms, maxt_ms)
        })
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
        let set = self.block_set();
        self.registry.read().label_values(name, matcher_sets, |id| {
            self.has_sample_in(set.as_deref(), id, mint_ms, maxt_ms)
        })
    }

    /// Label sets of series matching any of the matcher sets with samples in the range, sorted.
    pub fn series(&self, matcher_sets: &[Vec<Matcher>], mint_ms: i64, maxt_ms: i64) -> Vec<Labels> {
        let set = self.block_set();
        let registry = self.registry.read();
        let mut out: Vec<Labels> = registry
            .select_any(matcher_sets)
            .into_iter()
            .filter(|&id| self.has_sample_in(set.as_deref(), id, mint_ms, maxt_ms))
            .map(|id| registry.labels(id))
            .collect();
        drop(registry);
        out.sort_unstable();
        out
    }

    /// Current counts.
    pub fn stats(&self) -> StoreStats {
        let registry = self.registry.read();
        let (series, forgotten) = (registry.live() as u64, registry.forgotten() as u64);
        drop(registry);
        StoreStats {
            series,
            forgotten,
            samples: self.table.samples() + self.block_set().map_or(0, |s| s.samples()),
        }
    }

    /// An estimate of the heap the store uses. Walks every series: for self-metrics, not hot paths.
    pub fn memory(&self) -> MemoryStats {
        let registry = self.registry.read();
        let (symbol_bytes, label_bytes, postings_bytes) = registry.heap_bytes();
        MemoryStats {
            series: registry.live() as u64,
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
