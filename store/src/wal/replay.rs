//! Reading the log back at open: the newest checkpoint, then every later segment in order.
//!
//! A bad frame (torn write, flipped bits, impossible length) ends its file: in the last segment
//! that is the expected torn tail of a crash, so the file is truncated there; anywhere else it is
//! damage, reported and skipped. Either way the count lands in [`ReplayStats`] and replay goes on.
//! No byte of any file can make it panic.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use meshfed_model::Labels;

use super::record::{self, Record};
use crate::error::{Result, io};

/// What replay found, from [`crate::Store::replay_stats`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplayStats {
    /// The checkpoint replayed first, by the segment it precedes.
    pub checkpoint: Option<u64>,
    /// Segment files read.
    pub segments: u64,
    /// Records applied.
    pub records: u64,
    /// Series records applied.
    pub series: u64,
    /// Samples put back into the head.
    pub samples: u64,
    /// Samples skipped: already in a block, already in the head from the checkpoint, or for a
    /// series no record defines.
    pub skipped_samples: u64,
    /// Torn or corrupt records dropped (each ends the file it is in).
    pub dropped_records: u64,
    /// Bytes cut off the end of the last segment.
    pub truncated_bytes: u64,
    /// Closed head chunks reused from `chunks_head/` instead of rebuilt from the WAL.
    pub head_chunks_reused: u64,
    /// Head-chunk records dropped as torn or corrupt (their samples come from the WAL).
    pub head_chunks_dropped: u64,
    /// Bytes cut off damaged head-chunk files.
    pub head_chunk_bytes_truncated: u64,
    /// Blocks that failed verification and were moved to `quarantine/`.
    pub quarantined_blocks: Vec<PathBuf>,
    /// Wall time of the whole open.
    pub duration: Duration,
    /// Part of `duration` spent on blocks: reading their indexes (and, with
    /// `verify_blocks_on_open`, every chunk) and looking their series up in the registry.
    pub block_open: Duration,
}

/// Receives replayed records.
pub(crate) trait ReplaySink {
    /// A series record.
    fn series(&mut self, series: u64, labels: Labels);
    /// A samples record as `(ref, timestamp_ms, value_bits)`; returns how many were applied.
    fn samples(&mut self, samples: &[(u64, i64, u64)]) -> u64;
}

/// Numbered files in the WAL directory.
#[derive(Default)]
struct Listing {
    segments: Vec<u64>,
    checkpoints: Vec<u64>,
    temporary: Vec<PathBuf>,
}

fn list(dir: &Path) -> Result<Listing> {
    let mut out = Listing::default();
    for entry in std::fs::read_dir(dir).map_err(io("read directory", dir))? {
        let entry = entry.map_err(io("read directory", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".tmp") {
            out.temporary.push(entry.path());
        } else if let Some(n) = name.strip_suffix(".seg").and_then(|n| n.parse().ok()) {
            out.segments.push(n);
        } else if let Some(n) = name.strip_prefix("checkpoint.").and_then(|n| n.parse().ok()) {
            out.checkpoints.push(n);
        }
    }
    out.segments.sort_unstable();
    out.checkpoints.sort_unstable();
    Ok(out)
}

/// Deletes segments before `segment` and checkpoints before it.
pub(crate) fn remove_older(dir: &Path, segment: u64) -> Result<()> {
    let listing = list(dir)?;
    for s in listing.segments.iter().filter(|&&s| s < segment) {
        let path = super::segment_path(dir, *s);
        std::fs::remove_file(&path).map_err(io("remove", &path))?;
    }
    for c in listing.checkpoints.iter().filter(|&&c| c < segment) {
        let path = super::checkpoint_path(dir, *c);
        std::fs::remove_file(&path).map_err(io("remove", &path))?;
    }
    Ok(())
}

/// Replays `dir` into `sink`; returns the number the next segment should have.
pub(crate) fn replay(dir: &Path, sink: &mut impl ReplaySink, stats: &mut ReplayStats) -> Result<u64> {
    let listing = list(dir)?;
    for tmp in &listing.temporary {
        std::fs::remove_file(tmp).map_err(io("remove", tmp))?;
    }
    let first = listing.checkpoints.last().copied().unwrap_or(0);
    if listing.checkpoints.last().is_some() {
        remove_older(dir, first)?;
        stats.checkpoint = Some(first);
        replay_file(&super::checkpoint_path(dir, first), false, sink, stats)?;
    }
    let segments: Vec<u64> = listing.segments.into_iter().filter(|&s| s >= first).collect();
    for (i, &s) in segments.iter().enumerate() {
        stats.segments += 1;
        replay_file(&super::segment_path(dir, s), i + 1 == segments.len(), sink, stats)?;
    }
    Ok(segments.last().map_or(first, |s| s + 1).max(first))
}

/// Reads a log file one frame at a time: a checkpoint of a large head is several GiB and is never
/// held in memory whole. Same checks as [`record::next_frame`] over the whole file.
struct Frames {
    file: BufReader<File>,
    len: u64,
    pos: u64,
    body: Vec<u8>,
}

impl Frames {
    fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(io("open", path))?;
        let len = file.metadata().map_err(io("stat", path))?.len();
        Ok(Self {
            file: BufReader::with_capacity(1 << 20, file),
            len,
            pos: 0,
            body: Vec::new(),
        })
    }

    /// The next frame's body (in `self.body`): `Ok(Ok(true))`, `Ok(Ok(false))` at a clean end,
    /// `Ok(Err(reason))` for a torn or corrupt frame.
    fn next(&mut self) -> std::io::Result<Result<bool, &'static str>> {
        let rest = self.len - self.pos;
        if rest == 0 {
            return Ok(Ok(false));
        }
        if rest < record::HEADER_BYTES as u64 {
            return Ok(Err("torn frame header"));
        }
        let mut header = [0u8; record::HEADER_BYTES];
        self.file.read_exact(&mut header)?;
        let [l0, l1, l2, l3, c0, c1, c2, c3] = header;
        let (len, crc) = (
            u32::from_le_bytes([l0, l1, l2, l3]) as usize,
            u32::from_le_bytes([c0, c1, c2, c3]),
        );
        if len == 0 || len > record::MAX_BODY_BYTES {
            return Ok(Err("impossible record length"));
        }
        if (record::HEADER_BYTES + len) as u64 > rest {
            return Ok(Err("torn record body"));
        }
        self.body.resize(len, 0);
        self.file.read_exact(&mut self.body)?;
        if crc32fast::hash(&self.body) != crc {
            return Ok(Err("checksum mismatch"));
        }
        self.pos += (record::HEADER_BYTES + len) as u64;
        Ok(Ok(true))
    }
}

fn replay_file(path: &Path, last: bool, sink: &mut impl ReplaySink, stats: &mut ReplayStats) -> Result<()> {
    let mut frames = Frames::open(path)?;
    let mut samples = Vec::new();
    loop {
        let pos = frames.pos;
        match frames.next().map_err(io("read", path))? {
            Ok(false) => return Ok(()),
            Ok(true) => {
                match record::decode(&frames.body, &mut samples) {
                    Ok(Record::Series { series, labels }) => {
                        stats.series += 1;
                        sink.series(series, labels);
                    }
                    Ok(Record::Samples) => {
                        let applied = sink.samples(&samples);
                        stats.samples += applied;
                        stats.skipped_samples += samples.len() as u64 - applied;
                    }
                    Err(reason) => {
                        // The frame is intact, so the next one can still be found.
                        tracing::warn!(path = %path.display(), offset = pos, reason, "Dropped an undecodable WAL record.");
                        stats.dropped_records += 1;
                        continue;
                    }
                }
                stats.records += 1;
            }
            Err(reason) => {
                stats.dropped_records += 1;
                let cut = frames.len - pos;
                if last {
                    tracing::warn!(path = %path.display(), offset = pos, bytes = cut, reason, "Truncating torn WAL tail.");
                    let file = std::fs::OpenOptions::new()
                        .write(true)
                        .open(path)
                        .map_err(io("open", path))?;
                    file.set_len(pos).map_err(io("truncate", path))?;
                    file.sync_all().map_err(io("fsync", path))?;
                    stats.truncated_bytes += cut;
                } else {
                    tracing::error!(path = %path.display(), offset = pos, bytes = cut, reason, "Corrupt WAL record; skipping the rest of the file.");
                }
                return Ok(());
            }
        }
    }
}
