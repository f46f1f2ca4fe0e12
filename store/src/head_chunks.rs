//! Closed head chunks on disk, memory-mapped: `dir/chunks_head/NNNNNNNN.hch` segment files.
//!
//! A head chunk that fills up no longer changes, so it is appended to the current segment and the
//! series keeps only a [`ChunkLoc`] (8 bytes) instead of the chunk's bytes on the heap. Reads
//! decode straight from a shared read-only mapping of the file; its pages are in the page cache,
//! not the process heap, and the kernel can drop them under memory pressure. (Prometheus has done
//! the same with `chunks_head/` since 2.19.)
//!
//! ```text
//! file   = "MFHCHK01" | flags u8 | 7 reserved bytes | record*
//! record = crc32 u32 | len u16 | count u16 | series u64 | min_t i64 | max_t i64 | chunk [len]
//! ```
//!
//! Integers are little-endian; the CRC (IEEE) covers the record from `len` to the chunk's end. A
//! record whose stored CRC is the complement of the right one is a tombstone (a chunk an open found
//! unusable; see `scan.rs`). A zero `len` ends the file (segments are preallocated with zeros).
//! Flag bit 0 says the writer's series ids are the ones its WAL records use; without it, the file
//! is ignored at open.
//!
//! The WAL stays the source of truth: a chunk file is never fsynced, and at open a chunk is only
//! reused where the WAL's samples lead into it (`scan.rs`); everything else comes from the WAL.

pub(crate) mod scan;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use memmap2::{Mmap, MmapOptions};
use parking_lot::{Mutex, RwLock, RwLockReadGuard};

use crate::error::{Result, io};

/// File magic.
const MAGIC: &[u8; 8] = b"MFHCHK01";
/// Bytes before the first record.
const FILE_HEADER: usize = 16;
/// Offset of the flags byte.
const FLAGS_AT: u64 = 8;
/// Flag: the file's series ids match the WAL records (set once replay found no id shift).
const FLAG_IDS_STABLE: u8 = 1;
/// Bytes of a record before its chunk.
pub(crate) const RECORD_HEADER: usize = 32;

/// Where a closed chunk's bytes are: a segment slot, the offset of the chunk (past its record
/// header) and its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChunkLoc {
    pub(crate) slot: u16,
    pub(crate) len: u16,
    pub(crate) offset: u32,
}

/// One segment file and its mapping.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) path: PathBuf,
    map: Mmap,
    /// Bytes written (records end here).
    written: AtomicU64,
    /// Newest `max_t` of any record in the file: once the head's lower bound passes it, no head
    /// chunk can point into the file.
    max_t: AtomicI64,
}

/// The file being appended to.
#[derive(Debug)]
struct Writer {
    file: File,
    slot: u16,
    seq: u64,
    offset: u64,
    flags: u8,
    buf: Vec<u8>,
}

#[derive(Debug)]
struct Files {
    dir: PathBuf,
    segment_bytes: u64,
    writer: Mutex<Option<Writer>>,
    /// Segments by slot; a deleted segment's slot is `None` and is reused.
    slots: RwLock<Vec<Option<Arc<Segment>>>>,
    /// Set after a write failure: later chunks stay on the heap (logged once).
    failed: std::sync::atomic::AtomicBool,
}

/// The store's head-chunk files, or nothing for an in-memory store (chunks stay on the heap).
#[derive(Debug, Default)]
pub(crate) struct HeadChunkFiles {
    inner: Option<Files>,
}

/// Read access to the mapped segments, held while decoding.
pub(crate) struct ChunkView<'a>(Option<RwLockReadGuard<'a, Vec<Option<Arc<Segment>>>>>);

impl ChunkView<'_> {
    /// The bytes at `loc`; empty if it names no mapped range (never for a loc this store made).
    pub(crate) fn bytes(&self, loc: ChunkLoc) -> &[u8] {
        let start = loc.offset as usize;
        self.0
            .as_ref()
            .and_then(|slots| slots.get(usize::from(loc.slot)))
            .and_then(Option::as_ref)
            .and_then(|s| s.map.get(start..start + usize::from(loc.len)))
            .unwrap_or(&[])
    }
}

/// Segment file path for `seq`.
fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:08}.hch"))
}

/// Maps `len` bytes of `file` read-only.
#[allow(unsafe_code)]
fn map(file: &File, len: u64, path: &Path) -> Result<Mmap> {
    let len = usize::try_from(len).map_err(|_| io("map", path)(std::io::ErrorKind::InvalidInput.into()))?;
    // SAFETY: the mapping is read-only and the store only ever reads bytes it wrote before (below
    // the segment's written length, inside the preallocated or truncated size); the files live in
    // the store's own locked directory and are only truncated beyond those bytes or deleted when
    // no chunk refers into them (deleting a mapped file keeps the mapping valid).
    unsafe { MmapOptions::new().len(len).map(file) }.map_err(io("map", path))
}

/// The CRC of a record (from `len` to the chunk's end).
pub(crate) fn record_crc(record_after_crc: &[u8]) -> u32 {
    crc32fast::hash(record_after_crc)
}

impl HeadChunkFiles {
    /// No files: closed chunks stay on the heap.
    pub(crate) const fn none() -> Self {
        Self { inner: None }
    }

    /// Head-chunk files in `dir` (created if missing), appending to a new segment `next_seq`,
    /// with `existing` segments (already scanned and trimmed) mapped for reading.
    pub(crate) fn create(dir: &Path, segment_bytes: u64, existing: Vec<(u64, i64)>) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(io("create directory", dir))?;
        let mut slots = Vec::new();
        let mut next_seq = 0;
        for &(seq, max_t) in &existing {
            let path = segment_path(dir, seq);
            let file = File::open(&path).map_err(io("open", &path))?;
            let len = file.metadata().map_err(io("stat", &path))?.len();
            slots.push(Some(Arc::new(Segment {
                map: map(&file, len, &path)?,
                path,
                written: AtomicU64::new(len),
                max_t: AtomicI64::new(max_t),
            })));
            next_seq = next_seq.max(seq + 1);
        }
        let files = Files {
            dir: dir.to_owned(),
            segment_bytes: segment_bytes.clamp(1 << 16, u64::from(u32::MAX)),
            writer: Mutex::new(None),
            slots: RwLock::new(slots),
            failed: Default::default(),
        };
        let writer = files.start_segment(next_seq, 0)?;
        *files.writer.lock() = Some(writer);
        Ok(Self { inner: Some(files) })
    }

    /// Reads through the mappings; hold it only while decoding.
    pub(crate) fn view(&self) -> ChunkView<'_> {
        ChunkView(self.inner.as_ref().map(|f| f.slots.read()))
    }

    /// Appends a closed chunk of `series`; `None` (keep it on the heap) for an in-memory store,
    /// a chunk too large for a [`ChunkLoc`], or after a write error.
    pub(crate) fn write(
        &self,
        series: u64,
        min_t: i64,
        max_t: i64,
        count: u16,
        chunk: &[u8],
    ) -> Option<ChunkLoc> {
        let files = self.inner.as_ref()?;
        if files.failed.load(Ordering::Relaxed) {
            return None;
        }
        let len = u16::try_from(chunk.len()).ok()?;
        match files.append(series, min_t, max_t, count, len, chunk) {
            Ok(loc) => Some(loc),
            Err(e) => {
                files.failed.store(true, Ordering::Relaxed);
                tracing::error!(error = %e, "Writing a head chunk file failed; closed chunks stay in memory from now on.");
                None
            }
        }
    }

    /// Marks the files being written as matching the WAL's series ids (or not).
    pub(crate) fn set_ids_stable(&self, stable: bool) -> Result<()> {
        let Some(files) = &self.inner else { return Ok(()) };
        let mut guard = files.writer.lock();
        if let Some(w) = guard.as_mut() {
            w.flags = if stable { FLAG_IDS_STABLE } else { 0 };
            let path = segment_path(&files.dir, w.seq);
            w.file
                .write_all_at(&[w.flags], FLAGS_AT)
                .map_err(io("write", path))?;
        }
        Ok(())
    }

    /// Deletes every segment (except the one being written) whose chunks all end before
    /// `bound`, the head's lower bound. Returns how many. Callers make sure no head chunk before
    /// `bound` is still mapped (a cut drops them first).
    pub(crate) fn remove_below(&self, bound: i64) -> Result<usize> {
        let Some(files) = &self.inner else { return Ok(0) };
        let active = files.writer.lock().as_ref().map(|w| w.slot);
        let doomed: Vec<Arc<Segment>> = {
            let mut slots = files.slots.write();
            let mut out = Vec::new();
            for (i, slot) in slots.iter_mut().enumerate() {
                if Some(i as u16) != active
                    && slot
                        .as_ref()
                        .is_some_and(|s| s.max_t.load(Ordering::Acquire) < bound)
                {
                    out.extend(slot.take());
                }
            }
            out
        };
        for s in &doomed {
            std::fs::remove_file(&s.path).map_err(io("remove", &s.path))?;
        }
        Ok(doomed.len())
    }

    /// Deletes the segments in `slots` now (an open found nothing in them worth keeping).
    pub(crate) fn remove_slots(&self, doomed: &[u16]) -> Result<()> {
        let Some(files) = &self.inner else { return Ok(()) };
        let active = files.writer.lock().as_ref().map(|w| w.slot);
        let mut slots = files.slots.write();
        for &i in doomed.iter().filter(|&&i| Some(i) != active) {
            if let Some(s) = slots.get_mut(usize::from(i)).and_then(Option::take) {
                std::fs::remove_file(&s.path).map_err(io("remove", &s.path))?;
            }
        }
        Ok(())
    }

    /// Turns the records of the chunks at `locs` (with their CRCs) into tombstones so no later
    /// open reuses them: the stored CRC is overwritten with its complement. One open per file;
    /// the mapping is not touched.
    pub(crate) fn tombstone(&self, locs: &mut [(ChunkLoc, u32)]) -> Result<()> {
        let Some(files) = &self.inner else { return Ok(()) };
        locs.sort_unstable_by_key(|(loc, _)| (loc.slot, loc.offset));
        for group in locs.chunk_by(|a, b| a.0.slot == b.0.slot) {
            let Some(seg) = files
                .slots
                .read()
                .get(usize::from(group[0].0.slot))
                .cloned()
                .flatten()
            else {
                continue;
            };
            let file = OpenOptions::new()
                .write(true)
                .open(&seg.path)
                .map_err(io("open", &seg.path))?;
            for (loc, crc) in group {
                let at = u64::from(loc.offset).saturating_sub(RECORD_HEADER as u64);
                file.write_all_at(&(!crc).to_le_bytes(), at)
                    .map_err(io("write", &seg.path))?;
            }
        }
        Ok(())
    }

    /// Bytes in the segment files (written, not preallocated).
    pub(crate) fn disk_bytes(&self) -> u64 {
        self.inner.as_ref().map_or(0, |f| {
            f.slots
                .read()
                .iter()
                .flatten()
                .map(|s| s.written.load(Ordering::Relaxed))
                .sum()
        })
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        // Trim the preallocated tail so the next open reads only records.
        if let Some(w) = self.writer.get_mut().take()
            && let Err(e) = w.file.set_len(w.offset)
        {
            tracing::warn!(error = %e, "Trimming the head chunk file failed.");
        }
    }
}

impl Files {
    /// Creates, preallocates and maps segment `seq`.
    fn start_segment(&self, seq: u64, flags: u8) -> Result<Writer> {
        let path = segment_path(&self.dir, seq);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io("create", &path))?;
        let mut header = [0u8; FILE_HEADER];
        header[..8].copy_from_slice(MAGIC);
        header[FLAGS_AT as usize] = flags;
        file.write_all_at(&header, 0).map_err(io("write", &path))?;
        // Sparse: only written pages take disk space; the mapping covers the whole segment.
        file.set_len(self.segment_bytes)
            .map_err(io("preallocate", &path))?;
        let segment = Arc::new(Segment {
            map: map(&file, self.segment_bytes, &path)?,
            path,
            written: AtomicU64::new(FILE_HEADER as u64),
            max_t: AtomicI64::new(i64::MIN),
        });
        let mut slots = self.slots.write();
        let slot = match slots.iter().position(Option::is_none) {
            Some(i) => i,
            None if slots.len() < usize::from(u16::MAX) => {
                slots.push(None);
                slots.len() - 1
            }
            None => {
                return Err(io("create", &segment.path)(
                    std::io::ErrorKind::StorageFull.into(),
                ));
            }
        };
        slots[slot] = Some(segment);
        Ok(Writer {
            file,
            slot: slot as u16,
            seq,
            offset: FILE_HEADER as u64,
            flags,
            buf: Vec::with_capacity(RECORD_HEADER + 512),
        })
    }

    fn append(
        &self,
        series: u64,
        min_t: i64,
        max_t: i64,
        count: u16,
        len: u16,
        chunk: &[u8],
    ) -> Result<ChunkLoc> {
        let mut guard = self.writer.lock();
        let need = (RECORD_HEADER + chunk.len()) as u64;
        let full = guard
            .as_ref()
            .is_none_or(|w| w.offset + need > self.segment_bytes);
        if full {
            let (seq, flags) = guard.as_ref().map_or((0, 0), |w| (w.seq + 1, w.flags));
            if let Some(old) = guard.take() {
                // Trim the preallocated tail; nothing maps past the written bytes.
                let path = segment_path(&self.dir, old.seq);
                old.file.set_len(old.offset).map_err(io("truncate", path))?;
            }
            *guard = Some(self.start_segment(seq, flags)?);
        }
        let Some(w) = guard.as_mut() else {
            return Err(io("write", &self.dir)(std::io::ErrorKind::NotFound.into()));
        };
        w.buf.clear();
        w.buf.extend_from_slice(&[0; 4]);
        w.buf.extend_from_slice(&len.to_le_bytes());
        w.buf.extend_from_slice(&count.to_le_bytes());
        w.buf.extend_from_slice(&series.to_le_bytes());
        w.buf.extend_from_slice(&min_t.to_le_bytes());
        w.buf.extend_from_slice(&max_t.to_le_bytes());
        w.buf.extend_from_slice(chunk);
        let crc = record_crc(&w.buf[4..]);
        w.buf[..4].copy_from_slice(&crc.to_le_bytes());
        let path = || segment_path(&self.dir, w.seq);
        w.file
            .write_all_at(&w.buf, w.offset)
            .map_err(io("write", path()))?;
        let loc = ChunkLoc {
            slot: w.slot,
            len,
            offset: (w.offset + RECORD_HEADER as u64) as u32,
        };
        w.offset += need;
        if let Some(seg) = self
            .slots
            .read()
            .get(usize::from(w.slot))
            .and_then(Option::as_ref)
        {
            seg.written.store(w.offset, Ordering::Relaxed);
            seg.max_t.fetch_max(max_t, Ordering::AcqRel);
        }
        Ok(loc)
    }
}

/// Parses a segment's file header: `Some(flags)` when the magic is right.
pub(crate) fn parse_header(bytes: &[u8]) -> Option<u8> {
    (bytes.len() >= FILE_HEADER && &bytes[..8] == MAGIC).then(|| bytes[FLAGS_AT as usize])
}

/// Whether flags say the file's ids match the WAL's.
pub(crate) fn ids_stable(flags: u8) -> bool {
    flags & FLAG_IDS_STABLE != 0
}

/// Numbered segment files in `dir`, oldest first.
pub(crate) fn list(dir: &Path) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io("read directory", dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io("read directory", dir))?;
        if let Some(n) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_suffix(".hch"))
            .and_then(|n| n.parse().ok())
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The path of segment `seq` in `dir`.
pub(crate) fn path_of(dir: &Path, seq: u64) -> PathBuf {
    segment_path(dir, seq)
}

/// Header size, for the scanner.
pub(crate) const fn file_header_len() -> usize {
    FILE_HEADER
}
