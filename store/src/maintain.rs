//! Head cuts, WAL checkpoints, compaction, retention and quarantine: everything that moves data
//! from the head to blocks or deletes it. Each step holds the maintenance mutex; none blocks
//! ingest for more than a pointer swap.
//!
//! A cut raises the head's lower bound first (appends below it are refused from then on), copies
//! the older samples into a block, publishes the block together with the new read floor, drops the
//! copied samples from the head and writes a checkpoint so the WAL segments before it can go.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use meshfed_model::Sample;

use crate::block::set::BlockSet;
use crate::block::writer::BlockWriter;
use crate::block::{Block, BlockInfo, quarantine};
use crate::error::{Result, StoreError, io};
use crate::persist::Disk;
use crate::postings::SeriesId;
use crate::wal::CheckpointWriter;
use crate::{ForgetReport, Store};

/// What [`Store::maintain`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MaintenanceReport {
    /// The block cut from the head, if any.
    pub cut: Option<BlockInfo>,
    /// Blocks merged away by compaction.
    pub compacted: usize,
    /// Blocks deleted by retention.
    pub removed: usize,
    /// Blocks found corrupt at query time and moved to `quarantine/`.
    pub quarantined: Vec<PathBuf>,
    /// The forget round after retention.
    pub forget: ForgetReport,
}

impl Store {
    fn disk(&self, op: &'static str) -> Result<&Disk> {
        self.disk.as_ref().ok_or(StoreError::InMemory(op))
    }

    fn publish(disk: &Disk, f: impl FnOnce(&mut BlockSet)) {
        let mut guard = disk.blocks.write();
        let mut next = BlockSet::clone(&guard);
        f(&mut next);
        next.blocks.sort_by_key(|b| (b.start, b.end));
        *guard = Arc::new(next);
    }

    /// Moves every head sample older than `before_ms` into a new block and checkpoints the WAL.
    /// Appends older than `before_ms` are refused from then on. Returns `None` when `before_ms` is
    /// not past the previous cut.
    pub fn cut_head(&self, before_ms: i64) -> Result<Option<BlockInfo>, StoreError> {
        let disk = self.disk("cut_head")?;
        let _m = disk.maintenance.lock();
        let floor = disk.blocks.read().floor;
        if before_ms <= floor {
            return Ok(None);
        }
        self.min_valid.fetch_max(before_ms, Ordering::AcqRel);
        let seq = disk.next_block.fetch_add(1, Ordering::Relaxed);
        let path = disk.blocks_dir().join(format!("{seq:016x}.blk"));
        let mut writer = BlockWriter::create(&path, self.samples_per_chunk)?;
        let n = self.registry.read().len() as SeriesId;
        let (mut ids, mut buf, mut start) = (Vec::new(), Vec::new(), floor);
        for id in 0..n {
            self.table.with(u64::from(id), |s| {
                s.read(floor, before_ms - 1, &mut buf, &self.chunk_files)
            });
            if let Some(first) = buf.first() {
                if floor == i64::MIN {
                    start = if start == i64::MIN {
                        first.timestamp_ms
                    } else {
                        start.min(first.timestamp_ms)
                    };
                }
                let labels = self.registry.read().labels(id);
                writer.add(&labels, &buf)?;
                ids.push(id);
            }
        }
        if start == i64::MIN {
            start = before_ms;
        }
        writer.finish(seq, start, before_ms, &[])?;
        let (mut block, _) = Block::open(&path, false)?;
        block.map_ids(&ids);
        let info = block.info();
        Self::publish(disk, |set| {
            set.blocks.push(Arc::new(block));
            set.floor = before_ms;
        });
        let mut removed = 0;
        for &id in &ids {
            removed += self
                .table
                .with(u64::from(id), |s| s.drop_before(before_ms, &self.chunk_files))
                .unwrap_or(0);
        }
        self.table.uncount_samples(removed);
        // No head chunk before the new bound is mapped any more (drop_before re-encoded the
        // straddling ones onto the heap).
        self.chunk_files.remove_below(before_ms)?;
        self.checkpoint(disk)?;
        Ok(Some(info))
    }

    /// Writes a WAL checkpoint of every series and the head's samples, then deletes the older
    /// segments. Called by [`Store::cut_head`]; callers hold the maintenance mutex.
    fn checkpoint(&self, disk: &Disk) -> Result<()> {
        let segment = disk.wal.rotate()?;
        let mut cp = CheckpointWriter::create(disk.wal.dir(), segment)?;
        let n = self.registry.read().len() as SeriesId;
        for id in 0..n {
            let registry = self.registry.read();
            if !registry.is_live(id) {
                continue;
            }
            let labels = registry.labels(id);
            drop(registry);
            cp.series(u64::from(id), &labels)?;
        }
        let min = self.min_valid.load(Ordering::Acquire);
        let (mut buf, mut rows) = (Vec::new(), Vec::new());
        for id in 0..n {
            self.table.with(u64::from(id), |s| {
                s.read(min, i64::MAX, &mut buf, &self.chunk_files)
            });
            rows.extend(
                buf.iter()
                    .map(|s| (u64::from(id), s.timestamp_ms, s.value.to_bits())),
            );
            if rows.len() >= 1 << 16 {
                cp.samples(&rows)?;
                rows.clear();
            }
        }
        cp.samples(&rows)?;
        cp.finish()
    }

    /// Merges runs of adjacent blocks whose combined span fits `compact_max_block_ms`; returns
    /// how many blocks were merged away.
    pub fn compact(&self) -> Result<usize, StoreError> {
        let disk = self.disk("compact")?;
        let _m = disk.maintenance.lock();
        let max = disk.options.compact_max_block_ms;
        let mut merged = 0;
        loop {
            let set = disk.blocks.read().clone();
            let blocks = &set.blocks;
            let mut run: Option<(usize, usize)> = None;
            for i in 0..blocks.len() {
                let mut j = i;
                while j + 1 < blocks.len()
                    && blocks[j + 1].end.saturating_sub(blocks[i].start) <= max
                    && !blocks[j + 1].is_corrupt()
                {
                    j += 1;
                }
                if j > i && !blocks[i].is_corrupt() {
                    run = Some((i, j));
                    break;
                }
            }
            let Some((i, j)) = run else { return Ok(merged) };
            let parts = &blocks[i..=j];
            let seq = disk.next_block.fetch_add(1, Ordering::Relaxed);
            let path = disk.blocks_dir().join(format!("{seq:016x}.blk"));
            let mut writer = BlockWriter::create(&path, self.samples_per_chunk)?;
            let mut ids: Vec<SeriesId> = parts.iter().flat_map(|b| b.ids()).collect();
            ids.sort_unstable();
            ids.dedup();
            let mut buf: Vec<Sample> = Vec::new();
            for &id in &ids {
                buf.clear();
                for b in parts {
                    b.read_into(id, i64::MIN, i64::MAX, &mut buf);
                }
                let labels = self.registry.read().labels(id);
                writer.add(&labels, &buf)?;
            }
            let parents: Vec<u64> = parts.iter().map(|b| b.seq).collect();
            // The merged range spans every part's: blocks sharing a start (an empty cut's `[b, b)`
            // beside `[b, e)`) need not be in end order.
            let start = parts.iter().map(|b| b.start).min().unwrap_or(parts[0].start);
            let end = parts.iter().map(|b| b.end).max().unwrap_or(parts[0].end);
            writer.finish(seq, start, end, &parents)?;
            let (mut block, _) = Block::open(&path, false)?;
            block.map_ids(&ids);
            let old: Vec<PathBuf> = parts.iter().map(|b| b.path.clone()).collect();
            Self::publish(disk, |set| {
                set.blocks.retain(|b| !parents.contains(&b.seq));
                set.blocks.push(Arc::new(block));
            });
            for p in &old {
                std::fs::remove_file(p).map_err(io("remove", p))?;
            }
            merged += parts.len();
        }
    }

    /// Deletes blocks older than `retention_ms` before the newest data, then the oldest blocks
    /// while they and the WAL together exceed `retention_bytes`. Returns how many were deleted.
    pub fn apply_retention(&self) -> Result<usize, StoreError> {
        let disk = self.disk("apply_retention")?;
        let _m = disk.maintenance.lock();
        let set = disk.blocks.read().clone();
        let newest = self
            .head_max_t()
            .unwrap_or(i64::MIN)
            .max(set.blocks.iter().map(|b| b.end).max().unwrap_or(i64::MIN));
        let mut doomed: Vec<u64> = Vec::new();
        if let Some(ms) = disk.options.retention_ms {
            let cutoff = newest.saturating_sub(ms);
            doomed.extend(set.blocks.iter().filter(|b| b.end <= cutoff).map(|b| b.seq));
        }
        if let Some(limit) = disk.options.retention_bytes {
            // The WAL (segments and checkpoint) and the head chunk files count too; only blocks
            // can be deleted.
            let mut total = set.bytes() + dir_bytes(disk.wal.dir()) + self.chunk_files.disk_bytes();
            for b in &set.blocks {
                if total <= limit {
                    break;
                }
                total -= b.bytes;
                doomed.push(b.seq);
            }
        }
        doomed.sort_unstable();
        doomed.dedup();
        if doomed.is_empty() {
            return Ok(0);
        }
        Self::publish(disk, |s| s.blocks.retain(|b| !doomed.contains(&b.seq)));
        for b in set.blocks.iter().filter(|b| doomed.contains(&b.seq)) {
            std::fs::remove_file(&b.path).map_err(io("remove", &b.path))?;
        }
        Ok(doomed.len())
    }

    /// The newest head sample's timestamp. Walks every series: for maintenance, not hot paths.
    fn head_max_t(&self) -> Option<i64> {
        let n = self.registry.read().len() as u64;
        (0..n)
            .filter_map(|id| self.table.with(id, |s| s.max_t()).flatten())
            .max()
    }

    /// One round of upkeep, for a periodic task: quarantines blocks found corrupt by queries, cuts
    /// head data older than `head_window_ms` (aligned to `block_duration_ms`), compacts, applies
    /// retention, then runs a forget round ([`Store::forget_empty_series`]).
    pub fn maintain(&self) -> Result<MaintenanceReport, StoreError> {
        let disk = self.disk("maintain")?;
        let mut report = MaintenanceReport::default();
        {
            let _m = disk.maintenance.lock();
            let set = disk.blocks.read().clone();
            let bad: Vec<Arc<Block>> = set.blocks.iter().filter(|b| b.is_corrupt()).cloned().collect();
            if !bad.is_empty() {
                Self::publish(disk, |s| s.blocks.retain(|b| !b.is_corrupt()));
                for b in bad {
                    let err = crate::error::corrupt(&b.path, 0, "chunk checksum mismatch at query time");
                    report.quarantined.push(quarantine(&b.path, &err)?);
                }
            }
        }
        if let Some(newest) = self.head_max_t() {
            let step = disk.options.block_duration_ms.max(1);
            let boundary = newest
                .saturating_sub(disk.options.head_window_ms)
                .div_euclid(step)
                * step;
            report.cut = self.cut_head(boundary)?;
        }
        report.compacted = self.compact()?;
        report.removed = self.apply_retention()?;
        report.forget = self.forget_empty_series();
        Ok(report)
    }

    /// The blocks currently published, oldest first (empty for an in-memory store).
    pub fn blocks(&self) -> Vec<BlockInfo> {
        self.disk
            .as_ref()
            .map(|d| d.blocks.read().blocks.iter().map(|b| b.info()).collect())
            .unwrap_or_default()
    }
}

/// Total size of the files directly in `dir` (0 for what cannot be read: retention then errs
/// towards keeping data).
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.metadata().ok())
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.len())
        .sum()
}
