//! Head-chunk files at open: check every record, trim torn or corrupt tails, and reuse the chunks
//! the WAL's replay leads into.
//!
//! A chunk file is never fsynced and may hold samples the WAL lost (a crash between the head
//! taking a sample and its WAL buffer reaching the file), so a chunk is only reused when replay
//! reaches a WAL sample with the chunk's first timestamp and value while the series' newest sample
//! is older: the chunk then takes the place of the WAL samples it covers, which replay skips as
//! "not newer than the newest". Chunks nobody reused are turned into tombstones (or their file is
//! deleted) before anything new is appended to their series, so a chunk holding samples the WAL
//! lost can never be picked up by a later open after different samples were acked for that time.
//! Files written while replay found WAL refs that differ from the store's ids are not used.

use std::path::Path;

use super::{
    ChunkLoc, HeadChunkFiles, RECORD_HEADER, file_header_len, ids_stable, list, parse_header, path_of,
    record_crc,
};
use crate::chunk::XorIter;
use crate::error::{Result, io};
use crate::wal::replay::ReplayStats;

/// Chunk file records referring to series refs above this are ignored (ids are dense).
const MAX_REF: u64 = 1 << 28;

/// A usable record found at open.
#[derive(Clone, Copy, Debug)]
struct Entry {
    series: u64,
    min_t: i64,
    max_t: i64,
    first_bits: u64,
    crc: u32,
    count: u16,
    loc: ChunkLoc,
    attached: bool,
}

/// The records of the existing files, by series, for replay to reuse.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// Sorted by series, then file order (time order within a series).
    entries: Vec<Entry>,
    /// By series ref: index of its next entry not yet passed.
    cursor: Vec<u32>,
    /// Existing (seq, newest max_t) segments, in slot order.
    pub(crate) segments: Vec<(u64, i64)>,
    /// False once replay saw a WAL ref mapped to another id.
    enabled: bool,
}

/// What scanning one file found.
struct FileScan {
    entries: Vec<Entry>,
    max_t: i64,
    /// Where good records end.
    end: usize,
    dropped: u64,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u16::from_le_bytes)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

fn scan_bytes(bytes: &[u8], slot: u16, path: &Path) -> FileScan {
    let mut out = FileScan {
        entries: Vec::new(),
        max_t: i64::MIN,
        end: file_header_len(),
        dropped: 0,
    };
    let mut pos = file_header_len();
    loop {
        let rest = &bytes[pos.min(bytes.len())..];
        let len = usize::from(u16_at(rest, 4));
        if len == 0 && rest.iter().all(|&b| b == 0) {
            // Clean end (or the preallocated zeros after it).
            return out;
        }
        let Some(rec) = rest.get(..RECORD_HEADER + len).filter(|_| len > 0) else {
            tracing::warn!(path = %path.display(), offset = pos, "Torn head chunk record; dropping the rest of the file.");
            out.dropped += 1;
            return out;
        };
        let stored = rec[..4].try_into().map_or(0, u32::from_le_bytes);
        let crc = record_crc(&rec[4..]);
        if stored == !crc {
            // Tombstone.
            pos += rec.len();
            out.end = pos;
            continue;
        }
        if stored != crc {
            tracing::warn!(path = %path.display(), offset = pos, "Corrupt head chunk record; dropping the rest of the file.");
            out.dropped += 1;
            return out;
        }
        let (count, series) = (u16_at(rec, 6), u64_at(rec, 8));
        let (min_t, max_t) = (u64_at(rec, 16) as i64, u64_at(rec, 24) as i64);
        let chunk = &rec[RECORD_HEADER..];
        let first = XorIter::new(chunk, count).next();
        let offset = u32::try_from(pos + RECORD_HEADER).ok();
        match (first, offset) {
            (Some((t, v)), Some(offset)) if t == min_t && min_t <= max_t && series < MAX_REF => {
                out.entries.push(Entry {
                    series,
                    min_t,
                    max_t,
                    first_bits: v.to_bits(),
                    crc,
                    count,
                    loc: ChunkLoc {
                        slot,
                        len: len as u16,
                        offset,
                    },
                    attached: false,
                });
                out.max_t = out.max_t.max(max_t);
            }
            // A checksummed record that still makes no sense is skipped alone.
            _ => out.dropped += 1,
        }
        pos += rec.len();
        out.end = pos;
    }
}

impl Pending {
    /// Scans every segment in `dir`: unusable files are deleted, files are trimmed to their last
    /// good record, and the good records are collected. Counts go to `stats`.
    pub(crate) fn scan(dir: &Path, stats: &mut ReplayStats) -> Result<Self> {
        let mut out = Pending {
            enabled: true,
            ..Default::default()
        };
        for seq in list(dir)? {
            let path = path_of(dir, seq);
            let bytes = std::fs::read(&path).map_err(io("read", &path))?;
            let header = parse_header(&bytes);
            if header.is_none() {
                tracing::warn!(path = %path.display(), "Head chunk file with a bad header; deleting it.");
            }
            let usable = header.filter(|&f| ids_stable(f));
            let scan = match usable {
                Some(_) => scan_bytes(&bytes, out.segments.len() as u16, &path),
                None => FileScan {
                    entries: Vec::new(),
                    max_t: i64::MIN,
                    end: 0,
                    dropped: 0,
                },
            };
            stats.head_chunks_dropped += scan.dropped;
            if scan.entries.is_empty() || out.segments.len() >= usize::from(u16::MAX) - 1 {
                std::fs::remove_file(&path).map_err(io("remove", &path))?;
                continue;
            }
            if scan.end < bytes.len() {
                let cut = bytes.len() - scan.end;
                if bytes[scan.end..].iter().any(|&b| b != 0) {
                    tracing::warn!(path = %path.display(), bytes = cut, "Truncated a damaged head chunk file.");
                    stats.head_chunk_bytes_truncated += cut as u64;
                }
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io("open", &path))?;
                file.set_len(scan.end as u64).map_err(io("truncate", &path))?;
            }
            out.entries.extend(scan.entries);
            out.segments.push((seq, scan.max_t));
        }
        if stats.head_chunks_dropped > 0 {
            tracing::warn!(
                dropped = stats.head_chunks_dropped,
                "Dropped unreadable head chunks; their samples come from the WAL."
            );
        }
        // Stable: file order (time order) is kept within a series.
        out.entries.sort_by_key(|e| e.series);
        let top = out.entries.last().map_or(0, |e| e.series as usize + 1);
        out.cursor = vec![u32::MAX; top];
        for (i, e) in out.entries.iter().enumerate().rev() {
            out.cursor[e.series as usize] = i as u32;
        }
        Ok(out)
    }

    /// Stops reusing chunks (replay found a WAL ref that maps to another id).
    pub(crate) fn disable(&mut self) {
        self.enabled = false;
    }

    /// For a replayed WAL sample of WAL ref `series`: the chunk that starts with it, if any, as
    /// `(index, loc, (min_t, max_t, count))`. Passes (drops from consideration) the series'
    /// chunks that end before `t` or that start before `t` (the WAL does not lead into them).
    pub(crate) fn starting_at(
        &mut self,
        series: u64,
        t: i64,
        bits: u64,
    ) -> Option<(usize, ChunkLoc, (i64, i64, u16))> {
        if !self.enabled {
            return None;
        }
        let cursor = self.cursor.get_mut(usize::try_from(series).ok()?)?;
        loop {
            let i = *cursor as usize;
            let e = self.entries.get(i).filter(|e| e.series == series)?;
            if e.min_t > t {
                return None;
            }
            *cursor += 1;
            if e.min_t == t && e.first_bits == bits {
                return Some((i, e.loc, (e.min_t, e.max_t, e.count)));
            }
        }
    }

    /// Records that the chunk at `index` was reused.
    pub(crate) fn attached(&mut self, index: usize) {
        if let Some(e) = self.entries.get_mut(index) {
            e.attached = true;
        }
    }

    /// After replay: tombstones the records nobody reused in files that stay, deletes the files
    /// with nothing reused, and marks the file being written as matching the WAL's ids (if no
    /// shift was seen). Counts reused chunks in `stats`.
    pub(crate) fn finish(self, files: &HeadChunkFiles, stats: &mut ReplayStats) -> Result<()> {
        let mut used = vec![false; self.segments.len()];
        for e in self.entries.iter().filter(|e| e.attached) {
            used[usize::from(e.loc.slot)] = true;
            stats.head_chunks_reused += 1;
        }
        let mut doomed: Vec<(ChunkLoc, u32)> = self
            .entries
            .iter()
            .filter(|e| !e.attached && used[usize::from(e.loc.slot)])
            .map(|e| (e.loc, e.crc))
            .collect();
        files.tombstone(&mut doomed)?;
        let unused: Vec<u16> = (0..used.len()).filter(|&i| !used[i]).map(|i| i as u16).collect();
        files.remove_slots(&unused)?;
        files.set_ids_stable(self.enabled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_never_panics_the_scanner() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..2000 {
            let n = rng.random_range(0..300);
            let mut bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            if rng.random_bool(0.5) && bytes.len() > 16 {
                bytes[..8].copy_from_slice(b"MFHCHK01");
            }
            let s = scan_bytes(&bytes, 0, Path::new("x"));
            assert!(s.end <= bytes.len().max(file_header_len()));
        }
    }
}
