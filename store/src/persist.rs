//! Opening a store from its directory: blocks, WAL replay, the fsync ticker; and the durability
//! contract, [`Store::commit`].
//!
//! Directory layout: `LOCK` (see `lock.rs`), `wal/` (segments and checkpoints), `chunks_head/`
//! (closed head chunks, see `head_chunks.rs`), `blocks/` (one `.blk` file per block),
//! `quarantine/` (blocks that failed verification, kept for inspection).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use meshfed_model::Labels;
use parking_lot::{Mutex, RwLock};

use crate::block::set::BlockSet;
use crate::block::{Block, BlockLabels, quarantine};
use crate::error::{Result, StoreError, io};
use crate::head::AppendOutcome;
use crate::head_chunks::HeadChunkFiles;
use crate::head_chunks::scan::Pending;
use crate::lock::DirLock;
use crate::postings::SeriesId;
use crate::wal::Wal;
use crate::wal::replay::{self, ReplaySink, ReplayStats};
use crate::{Store, StoreOptions};

/// The persistent half of a store opened with [`Store::open`].
pub(crate) struct Disk {
    pub(crate) dir: PathBuf,
    pub(crate) wal: Arc<Wal>,
    pub(crate) blocks: RwLock<Arc<BlockSet>>,
    /// Serialises cuts, compactions, retention and checkpoints.
    pub(crate) maintenance: Mutex<()>,
    pub(crate) next_block: AtomicU64,
    pub(crate) replay: ReplayStats,
    pub(crate) options: StoreOptions,
    /// Held for the store's life; dropped last (after the final commit in `Drop`).
    lock: Option<DirLock>,
    ticker: Option<(mpsc::Sender<()>, std::thread::JoinHandle<()>)>,
}

impl Drop for Disk {
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.ticker.take() {
            drop(stop);
            let _ = thread.join();
        }
        if let Err(e) = self.wal.commit() {
            tracing::error!(error = %e, "Final WAL commit failed.");
        }
    }
}

impl Disk {
    /// The blocks directory.
    pub(crate) fn blocks_dir(&self) -> PathBuf {
        self.dir.join("blocks")
    }
}

/// Feeds replayed records into a store that has no WAL attached yet.
struct Sink<'a> {
    store: &'a Store,
    /// WAL ref → store id (identical unless records were lost).
    refs: Vec<SeriesId>,
    /// Chunks in `chunks_head/` that replay may reuse.
    pending: Pending,
}

impl ReplaySink for Sink<'_> {
    fn series(&mut self, series: u64, labels: Labels) {
        let id = self
            .store
            .registry
            .get_or_create(&labels, |id| self.store.table.push(id), |_| {});
        if u64::from(id) != series {
            // The files' refs are the writer's ids; from here on they may name other series.
            self.pending.disable();
        }
        let Ok(at) = usize::try_from(series) else { return };
        if at < 1 << 32 {
            if self.refs.len() <= at {
                self.refs.resize(at + 1, SeriesId::MAX);
            }
            self.refs[at] = id;
        }
    }

    fn samples(&mut self, samples: &[(u64, i64, u64)]) -> u64 {
        let (store, pending) = (self.store, &mut self.pending);
        let min_valid = store.min_valid.load(Ordering::Acquire);
        let (mut applied, mut reused) = (0, 0);
        for &(r, t, bits) in samples {
            let Some(&id) = usize::try_from(r).ok().and_then(|r| self.refs.get(r)) else {
                continue;
            };
            let id = u64::from(id);
            store.table.with(id, |s| {
                if t < min_valid || s.max_t().is_some_and(|newest| t <= newest) {
                    // In a block, or already in the head (checkpoint or a reused chunk).
                    return;
                }
                if let Some((i, loc, meta)) = pending.starting_at(r, t, bits)
                    && s.attach(id, loc, meta, &store.chunk_files)
                {
                    pending.attached(i);
                    reused += u64::from(meta.2);
                    return;
                }
                let outcome = s.append(
                    id,
                    t,
                    f64::from_bits(bits),
                    store.samples_per_chunk,
                    &store.min_valid,
                    &store.chunk_files,
                );
                applied += u64::from(outcome == AppendOutcome::Appended);
            });
        }
        store.table.count_samples(applied + reused);
        applied
    }
}

fn is_damage(e: &StoreError) -> bool {
    match e {
        StoreError::Corrupt { .. } => true,
        StoreError::Io { source, .. } => source.kind() == std::io::ErrorKind::UnexpectedEof,
        _ => false,
    }
}

/// Opened blocks with their index bytes (to find their series' ids), and the next free block number.
type OpenedBlocks = (Vec<(Block, BlockLabels)>, u64);

/// Opens every block in `dir`, quarantining bad ones and deleting ones a compaction superseded.
fn open_blocks(dir: &Path, verify: bool, stats: &mut ReplayStats) -> Result<OpenedBlocks> {
    let mut out = Vec::new();
    let mut next_seq = 0;
    for entry in std::fs::read_dir(dir).map_err(io("read directory", dir))? {
        let path = entry.map_err(io("read directory", dir))?.path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("tmp") => std::fs::remove_file(&path).map_err(io("remove", &path))?,
            Some("blk") => match Block::open(&path, verify) {
                Ok(b) => {
                    next_seq = next_seq.max(b.0.seq + 1);
                    out.push(b);
                }
                Err(e) if is_damage(&e) => stats.quarantined_blocks.push(quarantine(&path, &e)?),
                Err(e) => return Err(e),
            },
            _ => {}
        }
        if let Some(seq) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| u64::from_str_radix(s, 16).ok())
        {
            next_seq = next_seq.max(seq + 1);
        }
    }
    // A compaction that crashed after publishing its result but before deleting its inputs.
    let superseded: Vec<u64> = out.iter().flat_map(|(b, _)| b.parents.clone()).collect();
    out.retain(|(b, _)| {
        let keep = !superseded.contains(&b.seq);
        if !keep {
            let _ = std::fs::remove_file(&b.path);
        }
        keep
    });
    out.sort_by_key(|(b, _)| (b.start, b.end));
    Ok((out, next_seq))
}

impl Store {
    /// Opens (creating if needed) the persistent store in `dir`: opens its blocks (quarantining
    /// corrupt ones), replays the WAL into the head (truncating a torn tail), and starts a new WAL
    /// segment. What replay found is in [`Store::replay_stats`]. Fails with
    /// [`StoreError::Locked`] while another store (in any process) has `dir` open.
    pub fn open(dir: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        let started = Instant::now();
        let (wal_dir, blocks_dir) = (dir.join("wal"), dir.join("blocks"));
        for d in [dir, &wal_dir, &blocks_dir] {
            std::fs::create_dir_all(d).map_err(io("create directory", d))?;
        }
        let lock = DirLock::acquire(dir)?;
        let mut stats = ReplayStats::default();
        let blocks_started = Instant::now();
        let (blocks, next_seq) = open_blocks(&blocks_dir, options.verify_blocks_on_open, &mut stats)?;
        let mut block_open = blocks_started.elapsed();
        let mut store = Store::new(options.clone());
        let floor = blocks.iter().map(|(b, _)| b.end).max().unwrap_or(i64::MIN);
        store.min_valid.store(floor, Ordering::Release);
        let chunks_dir = dir.join("chunks_head");
        let pending = Pending::scan(&chunks_dir, &mut stats)?;
        let files = HeadChunkFiles::create(&chunks_dir, options.wal_segment_bytes, pending.segments.clone())?;
        store.chunk_files = files;
        let mut sink = Sink {
            store: &store,
            refs: Vec::new(),
            pending,
        };
        let next_segment = replay::replay(&wal_dir, &mut sink, &mut stats)?;
        let pending = sink.pending;
        // Before anything new is appended: chunks not reused must never be reused later.
        pending.finish(&store.chunk_files, &mut stats)?;
        let wal = Arc::new(Wal::create(&wal_dir, next_segment, options.wal_segment_bytes)?);
        let ticker = options.wal_fsync_interval_ms.map(|ms| {
            let (stop, ticks) = mpsc::channel::<()>();
            let wal = wal.clone();
            let thread = std::thread::spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    ticks.recv_timeout(Duration::from_millis(ms.max(1)))
                {
                    if let Err(e) = wal.commit() {
                        tracing::error!(error = %e, "Interval WAL fsync failed.");
                    }
                }
            });
            (stop, thread)
        });
        store.disk = Some(Disk {
            dir: dir.to_owned(),
            wal,
            blocks: RwLock::new(Arc::default()),
            maintenance: Mutex::new(()),
            next_block: AtomicU64::new(next_seq),
            replay: ReplayStats::default(),
            options,
            lock: Some(lock),
            ticker,
        });
        // Series that live only in blocks get ids now (logged, so later replays agree).
        let mut set = BlockSet {
            blocks: Vec::new(),
            floor,
        };
        let mapping_started = Instant::now();
        for (mut block, labels) in blocks {
            let ids = labels.ids(|pairs| store.block_series_id(pairs))?;
            drop(labels);
            block.map_ids(&ids);
            set.blocks.push(Arc::new(block));
        }
        block_open += mapping_started.elapsed();
        stats.block_open = block_open;
        stats.duration = started.elapsed();
        if let Some(disk) = store.disk.as_mut() {
            *disk.blocks.get_mut() = Arc::new(set);
            disk.replay = stats;
        }
        store.commit()?;
        Ok(store)
    }

    /// The id of a series found in a block, from its label pairs: a registry lookup with no
    /// per-series allocation (after a cut, the checkpoint has registered every block series);
    /// only a series that lives in blocks alone is built as [`Labels`] and created (logged).
    fn block_series_id(&self, pairs: &[(&str, &str)]) -> SeriesId {
        match self.registry.get_pairs(pairs) {
            Some(id) => {
                // What `get_or_create` does for a found series (nothing runs concurrently here).
                self.table.with(u64::from(id), |s| s.touch());
                id
            }
            None => self.get_or_create(&Labels::from_pairs(pairs.iter().copied())).0 as SeriesId,
        }
    }

    /// Makes every sample and series appended before this call durable (fsynced WAL). Concurrent
    /// callers share fsyncs. Acknowledge data to its sender only after this returns `Ok`. A store
    /// from [`Store::new`] has nothing to sync and returns `Ok`. After an I/O failure every later
    /// call fails: reopen the store.
    pub fn commit(&self) -> Result<(), StoreError> {
        self.disk.as_ref().map_or(Ok(()), |d| d.wal.commit())
    }

    /// Leaves the store as a crash would: nothing buffered is written or fsynced and nothing is
    /// cleaned up, except that the directory lock is released so the directory can be reopened
    /// in this process. For crash tests; a real crash releases the lock with the process.
    #[doc(hidden)]
    pub fn abandon(mut self) {
        if let Some(disk) = self.disk.as_mut() {
            drop(disk.lock.take());
        }
        std::mem::forget(self);
    }

    /// What the last [`Store::open`] found (`None` for an in-memory store).
    pub fn replay_stats(&self) -> Option<&ReplayStats> {
        self.disk.as_ref().map(|d| &d.replay)
    }

    /// Bytes written to the head chunk files (`chunks_head/`; 0 for an in-memory store).
    #[doc(hidden)]
    pub fn head_chunk_bytes(&self) -> u64 {
        self.chunk_files.disk_bytes()
    }

    /// The store's directory, if persistent.
    pub fn dir(&self) -> Option<&Path> {
        self.disk.as_ref().map(|d| d.dir.as_path())
    }
}
