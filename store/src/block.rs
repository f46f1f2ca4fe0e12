//! Immutable on-disk blocks: one file per time range holding every series' samples as Gorilla
//! chunks, with an index of labels and chunk positions (format in [`writer`]).
//!
//! Opening reads only the footer and index (and, when asked, every chunk to check its CRC);
//! queries read a series' chunks with one positioned read. A block whose bytes are not what was
//! written is never trusted: at open it is quarantined, at query time it is flagged (its bad
//! chunks are skipped) and quarantined by the next maintenance.

pub(crate) mod index;
pub(crate) mod set;
pub(crate) mod writer;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use meshfed_model::Sample;

use crate::chunk::XorIter;
use crate::error::{Result, StoreError, corrupt, io};
use crate::postings::SeriesId;
use crate::wal::record::Reader;
pub(crate) use index::BlockLabels;
use writer::{ChunkMeta, END_MAGIC, FOOTER_BYTES, MAGIC, MAGIC_V1};

/// Public description of a block, from [`crate::Store::blocks`].
#[derive(Clone, Debug, PartialEq)]
pub struct BlockInfo {
    /// The block's file.
    pub path: PathBuf,
    /// Covered time range start (inclusive), ms.
    pub start_ms: i64,
    /// Covered time range end (exclusive), ms.
    pub end_ms: i64,
    /// Series with samples in the block.
    pub series: u64,
    /// Samples in the block.
    pub samples: u64,
    /// File size.
    pub bytes: u64,
}

/// One series' chunks in a block: `chunks[first..first + len]`.
#[derive(Clone, Copy, Debug)]
struct BlockSeries {
    id: SeriesId,
    first: u32,
    len: u32,
}

/// An open block. In memory per series: 12 bytes plus its chunk entries (no labels: the store's
/// registry holds every series' labels once, blocks refer to series by id).
#[derive(Debug)]
pub(crate) struct Block {
    pub(crate) path: PathBuf,
    pub(crate) seq: u64,
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) samples: u64,
    pub(crate) bytes: u64,
    pub(crate) parents: Vec<u64>,
    file: File,
    /// Sorted by id once mapped.
    series: Vec<BlockSeries>,
    /// Every series' chunk entries, series in index order.
    chunks: Vec<ChunkMeta>,
    corrupt: AtomicBool,
}

impl Block {
    /// Opens and checks block `path`; returns it with its index bytes, from which
    /// [`BlockLabels::ids`] finds the store ids to pass to [`Block::map_ids`] (callers that know
    /// them drop it).
    pub(crate) fn open(path: &Path, verify_chunks: bool) -> Result<(Self, BlockLabels)> {
        let file = File::open(path).map_err(io("open", path))?;
        let len = file.metadata().map_err(io("stat", path))?.len();
        let bad = |offset: u64, reason: &str| corrupt(path, offset, reason);
        if len < MAGIC.len() as u64 + FOOTER_BYTES {
            return Err(bad(0, "shorter than header and footer"));
        }
        let mut magic = [0u8; 8];
        file.read_exact_at(&mut magic, 0).map_err(io("read", path))?;
        let v1 = match &magic {
            m if m == MAGIC => false,
            m if m == MAGIC_V1 => true,
            _ => return Err(bad(0, "bad magic")),
        };
        let mut footer = [0u8; FOOTER_BYTES as usize];
        let footer_at = len - FOOTER_BYTES;
        file.read_exact_at(&mut footer, footer_at)
            .map_err(io("read", path))?;
        let mut f = Reader::new(&footer, 0);
        let (index_offset, index_len, index_crc, footer_crc) =
            (|| Ok::<_, &str>((f.u64()?, f.u64()?, f.u32()?, f.u32()?)))().map_err(|r| bad(footer_at, r))?;
        if crc32fast::hash(&footer[..20]) != footer_crc || &footer[24..] != END_MAGIC {
            return Err(bad(footer_at, "footer checksum or magic mismatch"));
        }
        if index_offset < MAGIC.len() as u64 || index_offset.checked_add(index_len) != Some(footer_at) {
            return Err(bad(footer_at, "index position outside the file"));
        }
        let index_len = usize::try_from(index_len).map_err(|_| bad(footer_at, "index too large"))?;
        let mut index = vec![0u8; index_len];
        file.read_exact_at(&mut index, index_offset)
            .map_err(io("read", path))?;
        if crc32fast::hash(&index) != index_crc {
            return Err(bad(index_offset, "index checksum mismatch"));
        }
        let (mut series, mut chunks) = (Vec::new(), Vec::new());
        let header = index::walk(&index, index_offset, v1, &mut |_, metas| {
            let first = u32::try_from(chunks.len()).map_err(|_| "more than 2^32 chunks")?;
            let len = u32::try_from(metas.len()).map_err(|_| "more than 2^32 chunks")?;
            series.push(BlockSeries { id: 0, first, len });
            chunks.extend_from_slice(metas);
            Ok(())
        })
        .map_err(|(at, reason)| bad(index_offset + at as u64, reason))?;
        series.shrink_to_fit();
        chunks.shrink_to_fit();
        let block = Self {
            path: path.to_owned(),
            seq: header.seq,
            start: header.start,
            end: header.end,
            samples: header.samples,
            bytes: len,
            parents: header.parents,
            file,
            series,
            chunks,
            corrupt: AtomicBool::new(false),
        };
        if verify_chunks {
            block.verify()?;
        }
        let labels = BlockLabels {
            path: path.to_owned(),
            index,
            index_offset,
            v1,
        };
        Ok((block, labels))
    }

    /// Reads every chunk and checks its checksum and sample count.
    fn verify(&self) -> Result<()> {
        let mut buf = Vec::new();
        {
            for c in &self.chunks {
                buf.resize(c.len as usize, 0);
                self.file
                    .read_exact_at(&mut buf, c.offset)
                    .map_err(io("read", &self.path))?;
                let decoded = XorIter::new(&buf, c.count).count();
                if crc32fast::hash(&buf) != c.crc || decoded != usize::from(c.count) {
                    return Err(corrupt(&self.path, c.offset, "chunk checksum mismatch"));
                }
            }
        }
        Ok(())
    }

    /// Sets the store ids of the series, in index order (the order [`BlockLabels::ids`] returns).
    pub(crate) fn map_ids(&mut self, ids: &[SeriesId]) {
        for (s, &id) in self.series.iter_mut().zip(ids) {
            s.id = id;
        }
        if !self.series.is_sorted_by_key(|s| s.id) {
            self.series.sort_unstable_by_key(|s| s.id);
        }
    }

    /// Store ids of the series in the block, sorted.
    pub(crate) fn ids(&self) -> impl Iterator<Item = SeriesId> + '_ {
        self.series.iter().map(|s| s.id)
    }

    fn chunks(&self, id: SeriesId) -> &[ChunkMeta] {
        let Ok(i) = self.series.binary_search_by_key(&id, |s| s.id) else {
            return &[];
        };
        let s = self.series[i];
        let first = s.first as usize;
        self.chunks.get(first..first + s.len as usize).unwrap_or(&[])
    }

    /// Whether a chunk failed its checksum at query time.
    pub(crate) fn is_corrupt(&self) -> bool {
        self.corrupt.load(Ordering::Relaxed)
    }

    /// Appends the samples of series `id` in `[mint, maxt]` to `out`.
    pub(crate) fn read_into(&self, id: SeriesId, mint: i64, maxt: i64, out: &mut Vec<Sample>) {
        let chunks = self.chunks(id);
        let first = chunks.partition_point(|c| c.max_t < mint);
        let last = chunks.partition_point(|c| c.min_t <= maxt);
        let Some(wanted) = chunks.get(first..last).filter(|w| !w.is_empty()) else {
            return;
        };
        let from = wanted[0].offset;
        let to = wanted[wanted.len() - 1].offset + u64::from(wanted[wanted.len() - 1].len);
        let mut buf = vec![0u8; (to - from) as usize];
        if let Err(e) = self.file.read_exact_at(&mut buf, from) {
            self.flag(from, &e.to_string());
            return;
        }
        for c in wanted {
            let at = (c.offset - from) as usize;
            let bytes = &buf[at..at + c.len as usize];
            if crc32fast::hash(bytes) != c.crc {
                self.flag(c.offset, "chunk checksum mismatch");
                continue;
            }
            out.extend(
                XorIter::new(bytes, c.count)
                    .skip_while(|&(t, _)| t < mint)
                    .take_while(|&(t, _)| t <= maxt)
                    .map(|(t, v)| Sample::new(t, v)),
            );
        }
    }

    /// Whether series `id` has a sample in `[mint, maxt]`.
    pub(crate) fn has_sample_in(&self, id: SeriesId, mint: i64, maxt: i64) -> bool {
        let chunks = self.chunks(id);
        let first = chunks.partition_point(|c| c.max_t < mint);
        match chunks.get(first) {
            None => false,
            Some(c) if c.min_t > maxt => false,
            Some(c) if c.min_t >= mint || c.max_t <= maxt => true,
            Some(_) => {
                // The range lies strictly inside one chunk: decode it to know.
                let mut out = Vec::new();
                self.read_into(id, mint, maxt, &mut out);
                !out.is_empty()
            }
        }
    }

    fn flag(&self, offset: u64, reason: &str) {
        if !self.corrupt.swap(true, Ordering::Relaxed) {
            tracing::error!(path = %self.path.display(), offset, reason, "Corrupt block; it will be quarantined.");
        }
    }

    /// The public description.
    pub(crate) fn info(&self) -> BlockInfo {
        BlockInfo {
            path: self.path.clone(),
            start_ms: self.start,
            end_ms: self.end,
            series: self.series.len() as u64,
            samples: self.samples,
            bytes: self.bytes,
        }
    }
}

/// Moves a bad block into `quarantine/` beside `blocks/`; returns the new path.
pub(crate) fn quarantine(path: &Path, err: &StoreError) -> Result<PathBuf> {
    let root = path.parent().and_then(Path::parent).unwrap_or(Path::new("."));
    let dir = root.join("quarantine");
    std::fs::create_dir_all(&dir).map_err(io("create directory", &dir))?;
    let name = path.file_name().map(|n| n.to_owned()).unwrap_or_default();
    let to = dir.join(name);
    std::fs::rename(path, &to).map_err(io("rename", path))?;
    tracing::error!(path = %path.display(), quarantined = %to.display(), error = %err, "Quarantined a corrupt block.");
    Ok(to)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

    use super::*;
    use crate::chunk::XorAppender;
    use meshfed_model::Labels;

    fn write_v1(path: &Path, labels: &Labels, samples: &[(i64, f64)]) {
        let mut app = XorAppender::with_capacity(64);
        for &(t, v) in samples {
            app.append(t, v).unwrap();
        }
        let chunk = app.finish();
        let mut file = MAGIC_V1.to_vec();
        let offset = file.len() as u64;
        file.extend_from_slice(&chunk);
        let mut index = Vec::new();
        let (min_t, max_t) = (samples[0].0, samples[samples.len() - 1].0);
        for v in [7i64, min_t, max_t + 1, min_t, max_t, samples.len() as i64] {
            index.extend_from_slice(&v.to_le_bytes());
        }
        index.extend_from_slice(&0u32.to_le_bytes()); // parents
        index.extend_from_slice(&1u32.to_le_bytes()); // series
        index.extend_from_slice(&(labels.len() as u16).to_le_bytes());
        for l in labels.iter() {
            for s in [&l.name, &l.value] {
                index.extend_from_slice(&(s.len() as u32).to_le_bytes());
                index.extend_from_slice(s.as_bytes());
            }
        }
        index.extend_from_slice(&1u32.to_le_bytes()); // chunks
        index.extend_from_slice(&offset.to_le_bytes());
        index.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
        index.extend_from_slice(&(samples.len() as u16).to_le_bytes());
        index.extend_from_slice(&min_t.to_le_bytes());
        index.extend_from_slice(&max_t.to_le_bytes());
        index.extend_from_slice(&crc32fast::hash(&chunk).to_le_bytes());
        let index_offset = file.len() as u64;
        file.extend_from_slice(&index);
        let mut footer = Vec::new();
        footer.extend_from_slice(&index_offset.to_le_bytes());
        footer.extend_from_slice(&(index.len() as u64).to_le_bytes());
        footer.extend_from_slice(&crc32fast::hash(&index).to_le_bytes());
        footer.extend_from_slice(&crc32fast::hash(&footer).to_le_bytes());
        footer.extend_from_slice(END_MAGIC);
        file.extend_from_slice(&footer);
        std::fs::write(path, file).unwrap();
    }

    #[test]
    fn version_1_blocks_still_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0000000000000007.blk");
        let labels = Labels::from_pairs([("__name__", "up"), ("job", "a")]);
        let samples = [(1_000, 1.0), (16_000, 2.0), (31_000, 4.0)];
        write_v1(&path, &labels, &samples);
        let (mut block, got) = Block::open(&path, true).unwrap();
        assert_eq!(got.labels(), vec![labels]);
        block.map_ids(&[3]);
        let mut out = Vec::new();
        block.read_into(3, i64::MIN, i64::MAX, &mut out);
        let read: Vec<(i64, f64)> = out.iter().map(|s| (s.timestamp_ms, s.value)).collect();
        assert_eq!(read, samples);
        assert_eq!(block.seq, 7);
    }

    #[test]
    fn label_sets_of_any_shape_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0000000000000002.blk");
        let mut w = writer::BlockWriter::create(&path, 120).unwrap();
        let sets: Vec<Labels> = [
            vec![("__name__", "a"), ("x", "1"), ("y", "2")],
            vec![("__name__", "a"), ("x", "1"), ("y", "2"), ("z", "3")],
            vec![("__name__", "a"), ("x", "1")],
            vec![("__name__", "b"), ("x", "1"), ("y", "9")],
            vec![],
            (0..20)
                .map(|i| {
                    (
                        ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"][i % 10],
                        "v",
                    )
                })
                .collect(),
            vec![("__name__", "b"), ("x", "1"), ("y", "9")],
        ]
        .into_iter()
        .map(Labels::from_pairs)
        .collect();
        let one = [Sample {
            timestamp_ms: 5,
            value: 1.0,
        }];
        for l in &sets {
            w.add(l, &one).unwrap();
        }
        w.finish(2, 0, 10, &[]).unwrap();
        let (_, got) = Block::open(&path, true).unwrap();
        assert_eq!(got.labels(), sets);
    }

    #[test]
    fn chunk_entries_round_trip_extreme_times() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0000000000000003.blk");
        // 4 samples per block chunk: 3 chunks per series.
        let mut w = writer::BlockWriter::create(&path, 1).unwrap();
        let times = [
            i64::MIN + 1,
            -5,
            0,
            1,
            2,
            1 << 40,
            i64::MAX - 7,
            i64::MAX - 1,
            i64::MAX,
        ];
        let a: Vec<Sample> = times
            .iter()
            .map(|&t| Sample {
                timestamp_ms: t,
                value: t as f64,
            })
            .collect();
        let b: Vec<Sample> = a[2..].to_vec();
        let la = Labels::from_pairs([("s", "a")]);
        let lb = Labels::from_pairs([("s", "b")]);
        w.add(&la, &a).unwrap();
        w.add(&lb, &b).unwrap();
        w.finish(3, i64::MIN, i64::MAX, &[]).unwrap();
        let (mut block, got) = Block::open(&path, true).unwrap();
        assert_eq!(got.labels(), vec![la, lb]);
        block.map_ids(&[0, 1]);
        let mut out = Vec::new();
        block.read_into(0, i64::MIN, i64::MAX, &mut out);
        assert_eq!(out, a);
        out.clear();
        block.read_into(1, i64::MIN, i64::MAX, &mut out);
        assert_eq!(out, b);
    }

    #[test]
    fn symbol_table_shares_repeated_labels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0000000000000001.blk");
        let mut w = writer::BlockWriter::create(&path, 120).unwrap();
        let long = "x".repeat(200);
        let all: Vec<Labels> = (0..50)
            .map(|i| Labels::from_pairs([("__name__", "m"), ("long", long.as_str()), ("i", &i.to_string())]))
            .collect();
        let one = [Sample {
            timestamp_ms: 5,
            value: 1.0,
        }];
        for l in &all {
            w.add(l, &one).unwrap();
        }
        let bytes = w.finish(1, 0, 10, &[]).unwrap();
        // The 200-byte value is stored once, not 50 times.
        assert!(bytes < 4_000, "{bytes} bytes");
        let (_, got) = Block::open(&path, true).unwrap();
        assert_eq!(got.labels(), all);
    }
}
