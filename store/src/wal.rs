//! The write-ahead log: numbered segment files of checksummed records, written through one buffer
//! and made durable by group commit.
//!
//! Appenders encode records into the writer's buffer under its mutex (the store applies a batch to
//! the head under the same mutex, so the log's order is the head's order). [`Wal::commit`] makes
//! everything logged before the call durable: the first committer becomes the leader, writes the
//! buffer out and fsyncs; committers arriving meanwhile wait for that fsync or the next one, so
//! fifty relay connections committing at once share a handful of fsyncs.
//!
//! A checkpoint (`checkpoint.N`) holds every series and the head's samples as of a moment after
//! segment `N` was started; replay reads it and then segments `N…` only, so replay time is bounded
//! by the head's size, not the log's age.

pub(crate) mod record;
pub(crate) mod replay;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use meshfed_model::Labels;
use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::error::{Result, StoreError, io};

/// Buffered bytes that trigger a write to the segment file before any commit.
const FLUSH_BYTES: usize = 1 << 20;

/// A segment's file name.
pub(crate) fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:08}.seg"))
}

/// A checkpoint's file name.
pub(crate) fn checkpoint_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("checkpoint.{segment:08}"))
}

/// Fsyncs a directory so entries created or renamed in it survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync directory", dir))
}

/// The log's mutable half, locked by appenders.
pub(crate) struct WalWriter {
    dir: PathBuf,
    segment: u64,
    file: Arc<File>,
    segment_len: u64,
    segment_bytes: u64,
    buf: Vec<u8>,
    /// Records logged so far (the commit sequence).
    logged: u64,
    /// Rotated segments not yet fsynced, and whether the directory needs one.
    unsynced: Vec<Arc<File>>,
    dir_dirty: bool,
    failed: Option<String>,
    /// Reused by the store to collect a batch's accepted samples.
    pub(crate) scratch: Vec<(u64, i64, u64)>,
}

impl WalWriter {
    /// Logs the creation of series `series`.
    pub(crate) fn log_series(&mut self, series: u64, labels: &Labels) {
        record::encode_series(&mut self.buf, series, labels);
        self.logged += 1;
        self.maybe_flush();
    }

    /// Logs the samples in `scratch` and clears it.
    pub(crate) fn log_scratch(&mut self) {
        if self.scratch.is_empty() {
            return;
        }
        record::encode_samples(&mut self.buf, &self.scratch);
        self.scratch.clear();
        self.logged += 1;
        self.maybe_flush();
    }

    fn maybe_flush(&mut self) {
        if self.buf.len() >= FLUSH_BYTES {
            // A failure is remembered and reported by the next commit.
            let _ = self.flush();
        }
    }

    fn fail(&mut self, e: StoreError) -> StoreError {
        self.failed.get_or_insert_with(|| e.to_string());
        e
    }

    fn check(&self) -> Result<()> {
        match &self.failed {
            Some(reason) => Err(StoreError::WalFailed {
                segment: self.segment,
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Writes the buffer to the segment file (no fsync), rotating when the segment is full.
    fn flush(&mut self) -> Result<()> {
        self.check()?;
        if self.buf.is_empty() {
            return Ok(());
        }
        let path = segment_path(&self.dir, self.segment);
        if let Err(e) = (&*self.file).write_all(&self.buf).map_err(io("write", &path)) {
            return Err(self.fail(e));
        }
        self.segment_len += self.buf.len() as u64;
        self.buf.clear();
        if self.segment_len >= self.segment_bytes {
            self.rotate()?;
        }
        Ok(())
    }

    /// Starts the next segment; the old one is fsynced by the next commit.
    fn rotate(&mut self) -> Result<u64> {
        self.flush_buffer_only()?;
        let next = self.segment + 1;
        let path = segment_path(&self.dir, next);
        let file = match File::create_new(&path).map_err(io("create", &path)) {
            Ok(f) => Arc::new(f),
            Err(e) => return Err(self.fail(e)),
        };
        let old = std::mem::replace(&mut self.file, file);
        self.unsynced.push(old);
        self.dir_dirty = true;
        self.segment = next;
        self.segment_len = 0;
        Ok(next)
    }

    fn flush_buffer_only(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            let path = segment_path(&self.dir, self.segment);
            if let Err(e) = (&*self.file).write_all(&self.buf).map_err(io("write", &path)) {
                return Err(self.fail(e));
            }
            self.segment_len += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }
}

#[derive(Default)]
struct SyncState {
    synced: u64,
    syncing: bool,
}

/// The log. See the module docs.
pub(crate) struct Wal {
    dir: PathBuf,
    writer: Mutex<WalWriter>,
    sync: Mutex<SyncState>,
    synced: Condvar,
}

impl Wal {
    /// Starts a new, empty segment `segment` in `dir` (replay has read the older ones).
    pub(crate) fn create(dir: &Path, segment: u64, segment_bytes: u64) -> Result<Self> {
        let path = segment_path(dir, segment);
        let file = File::create_new(&path).map_err(io("create", &path))?;
        sync_dir(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            writer: Mutex::new(WalWriter {
                dir: dir.to_owned(),
                segment,
                file: Arc::new(file),
                segment_len: 0,
                segment_bytes: segment_bytes.max(1),
                buf: Vec::with_capacity(FLUSH_BYTES + (64 << 10)),
                logged: 0,
                unsynced: Vec::new(),
                dir_dirty: false,
                failed: None,
                scratch: Vec::new(),
            }),
            sync: Mutex::new(SyncState::default()),
            synced: Condvar::new(),
        })
    }

    /// The WAL directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Locks the writer for logging.
    pub(crate) fn lock(&self) -> MutexGuard<'_, WalWriter> {
        self.writer.lock()
    }

    /// Makes every record logged before this call durable. See the module docs.
    pub(crate) fn commit(&self) -> Result<()> {
        let target = {
            let w = self.writer.lock();
            w.check()?;
            w.logged
        };
        let mut state = self.sync.lock();
        loop {
            if state.synced >= target {
                return Ok(());
            }
            if !state.syncing {
                break;
            }
            self.synced.wait(&mut state);
        }
        state.syncing = true;
        drop(state);
        let result = self.sync_now();
        let mut state = self.sync.lock();
        state.syncing = false;
        if let Ok(upto) = result {
            state.synced = state.synced.max(upto);
        }
        drop(state);
        self.synced.notify_all();
        result.map(|_| ())
    }

    /// Writes the buffer out and fsyncs every segment touched; returns the sequence now durable.
    fn sync_now(&self) -> Result<u64> {
        let (files, dir_dirty, upto, segment) = {
            let mut w = self.writer.lock();
            w.flush()?;
            let mut files = std::mem::take(&mut w.unsynced);
            files.push(w.file.clone());
            (files, std::mem::take(&mut w.dir_dirty), w.logged, w.segment)
        };
        let synced = files
            .iter()
            .try_for_each(|f| f.sync_data())
            .map_err(io("fsync", segment_path(&self.dir, segment)))
            .and_then(|()| if dir_dirty { sync_dir(&self.dir) } else { Ok(()) });
        if let Err(e) = synced {
            // After a failed fsync the kernel may have dropped the dirty pages: nothing written
            // since the last good fsync can be trusted, so the log refuses further commits.
            return Err(self.writer.lock().fail(e));
        }
        Ok(upto)
    }

    /// Starts a new segment and returns its number: a checkpoint taken after this covers every
    /// older segment.
    pub(crate) fn rotate(&self) -> Result<u64> {
        let mut w = self.writer.lock();
        w.check()?;
        w.rotate()
    }
}

/// Writes a checkpoint to a temporary file and publishes it atomically.
pub(crate) struct CheckpointWriter {
    dir: PathBuf,
    segment: u64,
    tmp: PathBuf,
    file: std::io::BufWriter<File>,
    buf: Vec<u8>,
}

impl CheckpointWriter {
    /// A checkpoint covering the segments before `segment`.
    pub(crate) fn create(dir: &Path, segment: u64) -> Result<Self> {
        let tmp = dir.join(format!("checkpoint.{segment:08}.tmp"));
        let file = File::create(&tmp).map_err(io("create", &tmp))?;
        Ok(Self {
            dir: dir.to_owned(),
            segment,
            tmp,
            file: std::io::BufWriter::with_capacity(1 << 20, file),
            buf: Vec::new(),
        })
    }

    /// Adds a series record.
    pub(crate) fn series(&mut self, series: u64, labels: &Labels) -> Result<()> {
        record::encode_series(&mut self.buf, series, labels);
        self.drain()
    }

    /// Adds a samples record.
    pub(crate) fn samples(&mut self, samples: &[(u64, i64, u64)]) -> Result<()> {
        record::encode_samples(&mut self.buf, samples);
        self.drain()
    }

    fn drain(&mut self) -> Result<()> {
        if self.buf.len() >= 1 << 16 {
            self.file.write_all(&self.buf).map_err(io("write", &self.tmp))?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Fsyncs, renames into place, and deletes the segments and checkpoints it supersedes.
    pub(crate) fn finish(mut self) -> Result<()> {
        self.file.write_all(&self.buf).map_err(io("write", &self.tmp))?;
        let file = self
            .file
            .into_inner()
            .map_err(|e| io("write", &self.tmp)(e.into_error()))?;
        file.sync_all().map_err(io("fsync", &self.tmp))?;
        let path = checkpoint_path(&self.dir, self.segment);
        std::fs::rename(&self.tmp, &path).map_err(io("rename", &path))?;
        sync_dir(&self.dir)?;
        replay::remove_older(&self.dir, self.segment)
    }
}
