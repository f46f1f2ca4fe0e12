//! The collector's on-disk buffer of batches the aggregator has not acknowledged yet.
//!
//! Every batch is appended before it is sent and stays until the aggregator acknowledges it, so
//! neither a reconnect nor a collector restart loses data. Batches are stored self-contained
//! (every series they use is defined in the record), because series refs are per stream.
//!
//! Layout: `<dir>/epoch` (random id of this buffer, sent in the hello so the aggregator never
//! confuses a wiped buffer's sequence numbers with an old one's), `<dir>/acked` (highest
//! acknowledged sequence), and segment files `<first sequence, 20 digits>.seg` holding records
//! `[len: u32 LE][crc32: u32 LE][SampleBatch protobuf]`. Each segment has its own series
//! dictionary (a series is defined in the first record of the segment that uses it), so steady
//! state writes only refs, timestamps and values. A torn or corrupt record ends a segment: it and
//! everything after it in that segment are dropped and counted.
//!
//! The buffer is bounded: past `max_bytes` the oldest segments are deleted, and their samples
//! counted as dropped and logged, never silently.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use prost::Message;
use tracing::warn;

use crate::encode::{DictionaryDecoder, OutgoingSample, StreamEncoder};
use crate::proto::SampleBatch;

/// Why the buffer could not be used.
#[derive(Debug, thiserror::Error)]
#[error("relay buffer {path}: {source}")]
pub struct BufferError {
    /// The file or directory.
    pub path: String,
    /// The cause.
    #[source]
    pub source: io::Error,
}

fn err(path: &Path) -> impl FnOnce(io::Error) -> BufferError + '_ {
    move |source| BufferError {
        path: path.display().to_string(),
        source,
    }
}

/// What happened while opening or trimming the buffer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BufferStats {
    /// Records dropped because they were torn or corrupt.
    pub corrupt_records: u64,
    /// Samples dropped because the buffer was full.
    pub dropped_samples: u64,
    /// Batches dropped because the buffer was full.
    pub dropped_batches: u64,
}

struct Segment {
    path: PathBuf,
    bytes: u64,
    last_sequence: u64,
    samples: u64,
}

/// The buffer. Not shared: the relay client's worker owns it.
pub struct DiskBuffer {
    dir: PathBuf,
    epoch: u64,
    acked: u64,
    next_sequence: u64,
    max_bytes: u64,
    segment_bytes: u64,
    /// First sequence → segment, oldest first.
    segments: BTreeMap<u64, Segment>,
    writer: Option<BufWriter<File>>,
    /// The open segment's dictionary.
    dictionary: StreamEncoder,
    stats: BufferStats,
}

const HEADER: usize = 8;

impl DiskBuffer {
    /// Opens (or creates) the buffer in `dir`, holding at most `max_bytes`.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, BufferError> {
        fs::create_dir_all(dir).map_err(err(dir))?;
        let epoch_path = dir.join("epoch");
        let epoch = match fs::read_to_string(&epoch_path)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
        {
            Some(e) => e,
            None => {
                let e = rand::random::<u64>() | 1;
                write_atomic(&epoch_path, &e.to_string())?;
                e
            }
        };
        let acked = fs::read_to_string(dir.join("acked"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let mut buf = Self {
            dir: dir.to_owned(),
            epoch,
            acked,
            next_sequence: acked + 1,
            max_bytes: max_bytes.max(1 << 16),
            segment_bytes: (max_bytes / 8).clamp(1 << 16, 64 << 20),
            segments: BTreeMap::new(),
            writer: None,
            dictionary: StreamEncoder::new(),
            stats: BufferStats::default(),
        };
        buf.scan()?;
        Ok(buf)
    }

    /// This buffer's random id.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Counters since open.
    pub fn stats(&self) -> &BufferStats {
        &self.stats
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.segments.values().map(|s| s.bytes).sum()
    }

    /// Highest acknowledged sequence.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// The sequence the next appended batch gets.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    fn scan(&mut self) -> Result<(), BufferError> {
        let mut files: Vec<(u64, PathBuf)> = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(err(&self.dir))? {
            let path = entry.map_err(err(&self.dir))?.path();
            let first = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".seg"));
            if let Some(first) = first.and_then(|f| f.parse::<u64>().ok()) {
                files.push((first, path));
            }
        }
        files.sort();
        for (first, path) in files {
            let mut records = Vec::new();
            let (valid_len, corrupt) = read_segment(&path, &mut records)?;
            if corrupt {
                self.stats.corrupt_records += 1;
                warn!(segment = %path.display(), kept = records.len(), "Dropped a torn or corrupt relay buffer record.");
                let f = OpenOptions::new().write(true).open(&path).map_err(err(&path))?;
                f.set_len(valid_len).map_err(err(&path))?;
            }
            let Some(last) = records.last().map(|b| b.sequence) else {
                let _ = fs::remove_file(&path);
                continue;
            };
            if last <= self.acked {
                let _ = fs::remove_file(&path);
                continue;
            }
            let samples = records.iter().map(|b| b.refs.len() as u64).sum();
            self.next_sequence = self.next_sequence.max(last + 1);
            self.segments.insert(
                first,
                Segment {
                    path,
                    bytes: valid_len,
                    last_sequence: last,
                    samples,
                },
            );
        }
        Ok(())
    }

    /// Appends a batch and flushes it to the OS; returns the sequence it was given.
    pub fn append(&mut self, samples: &[OutgoingSample]) -> Result<u64, BufferError> {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let full = self
            .segments
            .last_key_value()
            .is_some_and(|(_, s)| s.bytes >= self.segment_bytes);
        if self.writer.is_none() || full {
            let path = self.dir.join(format!("{sequence:020}.seg"));
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(err(&path))?;
            self.writer = Some(BufWriter::new(f));
            self.dictionary = StreamEncoder::new();
            self.segments.insert(
                sequence,
                Segment {
                    path,
                    bytes: 0,
                    last_sequence: 0,
                    samples: 0,
                },
            );
        }
        let body = self.dictionary.encode(sequence, samples).encode_to_vec();
        let (Some(w), Some(mut entry)) = (self.writer.as_mut(), self.segments.last_entry()) else {
            return Err(BufferError {
                path: self.dir.display().to_string(),
                source: io::Error::other("no open segment"),
            });
        };
        let seg = entry.get_mut();
        let crc = crc32fast::hash(&body);
        w.write_all(&(body.len() as u32).to_le_bytes())
            .and_then(|()| w.write_all(&crc.to_le_bytes()))
            .and_then(|()| w.write_all(&body))
            .and_then(|()| w.flush())
            .map_err(err(&seg.path))?;
        seg.bytes += (body.len() + HEADER) as u64;
        seg.last_sequence = sequence;
        seg.samples += samples.len() as u64;
        self.enforce_limit();
        Ok(sequence)
    }

    /// Records that everything up to `sequence` is stored by the aggregator; deletes segments no
    /// longer needed.
    pub fn acknowledge(&mut self, sequence: u64) -> Result<(), BufferError> {
        if sequence <= self.acked {
            return Ok(());
        }
        self.acked = sequence;
        write_atomic(&self.dir.join("acked"), &sequence.to_string())?;
        let done: Vec<u64> = self
            .segments
            .iter()
            .filter(|(_, s)| s.last_sequence <= sequence && s.last_sequence > 0)
            .map(|(k, _)| *k)
            .collect();
        for k in done {
            let is_last = self.segments.last_key_value().is_some_and(|(last, _)| *last == k);
            if is_last {
                self.writer = None;
            }
            if let Some(s) = self.segments.remove(&k) {
                let _ = fs::remove_file(&s.path);
            }
        }
        Ok(())
    }

    /// Every unacknowledged batch with its sequence, oldest first.
    pub fn unacknowledged(&self) -> Result<Vec<(u64, Vec<OutgoingSample>)>, BufferError> {
        let mut out = Vec::new();
        for s in self.segments.values() {
            let mut records = Vec::new();
            read_segment(&s.path, &mut records)?;
            let mut dictionary = DictionaryDecoder::default();
            for r in records {
                // Decode every record, acknowledged or not, to keep the dictionary complete.
                match dictionary.decode(&r) {
                    Some(samples) if r.sequence > self.acked => out.push((r.sequence, samples)),
                    Some(_) => {}
                    None => {
                        warn!(segment = %s.path.display(), sequence = r.sequence, "Relay buffer record names an undefined series; skipped.");
                    }
                }
            }
        }
        Ok(out)
    }

    fn enforce_limit(&mut self) {
        while self.bytes() > self.max_bytes && self.segments.len() > 1 {
            let Some((_, s)) = self.segments.pop_first() else {
                break;
            };
            let _ = fs::remove_file(&s.path);
            self.stats.dropped_samples += s.samples;
            self.stats.dropped_batches += 1;
            warn!(
                samples = s.samples,
                up_to_sequence = s.last_sequence,
                "Relay buffer full: dropped the oldest unacknowledged data."
            );
            self.acked = self.acked.max(s.last_sequence);
        }
    }
}

/// Reads valid records into `out`; returns the valid length and whether a bad record ended it.
fn read_segment(path: &Path, out: &mut Vec<SampleBatch>) -> Result<(u64, bool), BufferError> {
    let mut data = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(err(path))?;
    let mut pos = 0usize;
    while pos < data.len() {
        let Some(header) = data.get(pos..pos + HEADER) else {
            return Ok((pos as u64, true));
        };
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let Some(body) = data.get(pos + HEADER..pos + HEADER + len) else {
            return Ok((pos as u64, true));
        };
        if crc32fast::hash(body) != crc {
            return Ok((pos as u64, true));
        }
        match SampleBatch::decode(body) {
            Ok(b) => out.push(b),
            Err(_) => return Ok((pos as u64, true)),
        }
        pos += HEADER + len;
    }
    Ok((pos as u64, false))
}

fn write_atomic(path: &Path, body: &str) -> Result<(), BufferError> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, body)
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(err(path))
}

#[cfg(test)]
mod tests;
