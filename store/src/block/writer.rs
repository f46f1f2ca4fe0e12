//! Writing a block file. Layout (integers little-endian):
//!
//! ```text
//! magic "MFBLOCK2"
//! chunk data        Gorilla chunks, each series' chunks contiguous, series in index order
//! index             seq u64 · start i64 · end i64 · min_t i64 · max_t i64 · samples u64
//!                   · parents u32 · [parent seq u64]
//!                   · symbols u32 · [len u32 · UTF-8 bytes]
//!                   · series u32 · per series: labels uvarint · same bitmap (⌈labels/8⌉ bytes)
//!                     · [name uvarint · value uvarint] for each label not in the bitmap
//!                     · chunks uvarint · [len uvarint · count uvarint · min_t − base zig-zag
//!                     varint · max_t − min_t uvarint · crc u32]
//! footer (32 B)     index_offset u64 · index_len u64 · index_crc u32 · footer_crc u32 · "MFBLKEND"
//! ```
//!
//! `[start, end)` is the time range the block covers (a cut's boundaries), `min_t..=max_t` the
//! samples actually in it. The file is written under a `.tmp` name, fsynced and renamed, so a
//! block either exists whole or not at all.
//!
//! Label names and values are interned in the block's symbol table (numbered in first-use order),
//! and a series' label pairs (symbol numbers) are written relative to the previous series': bit `i`
//! of the bitmap (byte `i / 8`, bit `i % 8`) set means pair `i` equals the previous series' pair
//! `i` and is not written. Series of one target sit next to each other and differ in a few labels,
//! so 30 Istio labels cost about 15 index bytes instead of about 1.3 KB of strings. Chunk entries
//! are varints too: a chunk's data follows the previous chunk's (the offset is implied), and its
//! `base` is the previous chunk's `max_t` within a series, the previous series' first sample time
//! for a series' first chunk (0 for the block's first series): ≈ 10 bytes an entry instead of 34.
//! Version 1 (`"MFBLOCK1"`, labels as `labels u16 · [name_len u32 · name · value_len u32 ·
//! value]` and no symbol table) is still read.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use meshfed_model::{Labels, Sample};

use crate::chunk::XorAppender;
use crate::error::{Result, io};

/// First bytes of a block file.
pub(crate) const MAGIC: &[u8; 8] = b"MFBLOCK2";
/// First bytes of a version 1 block file (labels as strings, no symbol table): read only.
pub(crate) const MAGIC_V1: &[u8; 8] = b"MFBLOCK1";
/// Last bytes of a block file.
pub(crate) const END_MAGIC: &[u8; 8] = b"MFBLKEND";
/// Footer bytes.
pub(crate) const FOOTER_BYTES: u64 = 32;

/// One chunk's index entry.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ChunkMeta {
    pub(crate) offset: u64,
    pub(crate) len: u32,
    pub(crate) count: u16,
    pub(crate) min_t: i64,
    pub(crate) max_t: i64,
    pub(crate) crc: u32,
}

/// Streams series into a new block file.
pub(crate) struct BlockWriter {
    tmp: PathBuf,
    path: PathBuf,
    file: BufWriter<File>,
    offset: u64,
    index: Vec<u8>,
    series: u32,
    samples: u64,
    min_t: i64,
    max_t: i64,
    samples_per_chunk: u16,
    /// Label name/value → symbol number, and the symbols in number order.
    symbol_ids: HashMap<String, u32>,
    symbols: Vec<String>,
    /// The previous series' label pairs as symbol numbers.
    prev: Vec<(u32, u32)>,
    /// The previous series' first sample time (0 before the first series).
    series_base: i64,
}

impl BlockWriter {
    /// Starts block `path` (written as `path.tmp` until [`BlockWriter::finish`]).
    pub(crate) fn create(path: &Path, samples_per_chunk: u16) -> Result<Self> {
        let tmp = path.with_extension("tmp");
        let file = File::create(&tmp).map_err(io("create", &tmp))?;
        let mut file = BufWriter::with_capacity(1 << 20, file);
        file.write_all(MAGIC).map_err(io("write", &tmp))?;
        Ok(Self {
            tmp,
            path: path.to_owned(),
            file,
            offset: MAGIC.len() as u64,
            index: Vec::new(),
            series: 0,
            samples: 0,
            min_t: i64::MAX,
            max_t: i64::MIN,
            // Blocks are read whole-range more than appended to: 4× the head's chunk size halves the
            // per-chunk overhead (index entry, first sample in full).
            samples_per_chunk: samples_per_chunk.saturating_mul(4).max(1),
            symbol_ids: HashMap::new(),
            symbols: Vec::new(),
            prev: Vec::new(),
            series_base: 0,
        })
    }

    /// Adds a series with its samples (time order, strictly increasing). Empty ones are skipped.
    pub(crate) fn add(&mut self, labels: &Labels, samples: &[Sample]) -> Result<()> {
        if samples.is_empty() {
            return Ok(());
        }
        self.put_labels(labels);
        let chunks = samples.chunks(usize::from(self.samples_per_chunk));
        put_uvarint(&mut self.index, chunks.len() as u32);
        // Chunk times are written relative to the previous series' first chunk (first chunk) or
        // this series' previous chunk (the others): one to four bytes instead of eight.
        let mut base = self.series_base;
        self.series_base = samples[0].timestamp_ms;
        for part in chunks {
            let mut app = XorAppender::with_capacity(part.len() * 2 + 16);
            for s in part {
                // Callers pass strictly increasing timestamps (a series' samples); a repeat would
                // be dropped here rather than corrupt the chunk.
                let _ = app.append(s.timestamp_ms, s.value);
            }
            let count = app.count();
            let bytes = app.finish();
            let meta = ChunkMeta {
                offset: self.offset,
                len: bytes.len() as u32,
                count,
                min_t: part[0].timestamp_ms,
                max_t: part[part.len() - 1].timestamp_ms,
                crc: crc32fast::hash(&bytes),
            };
            self.file.write_all(&bytes).map_err(io("write", &self.tmp))?;
            self.offset += bytes.len() as u64;
            put_chunk(&mut self.index, &meta, base);
            base = meta.max_t;
            self.samples += u64::from(count);
        }
        self.min_t = self.min_t.min(samples[0].timestamp_ms);
        self.max_t = self.max_t.max(samples[samples.len() - 1].timestamp_ms);
        self.series += 1;
        Ok(())
    }

    /// Writes index and footer, fsyncs and renames into place. Returns the file's size.
    pub(crate) fn finish(mut self, seq: u64, start: i64, end: i64, parents: &[u64]) -> Result<u64> {
        let mut head = Vec::with_capacity(64 + parents.len() * 8);
        for v in [
            seq as i64,
            start,
            end,
            self.min_t,
            self.max_t,
            self.samples as i64,
        ] {
            head.extend_from_slice(&v.to_le_bytes());
        }
        head.extend_from_slice(&(parents.len() as u32).to_le_bytes());
        for p in parents {
            head.extend_from_slice(&p.to_le_bytes());
        }
        head.extend_from_slice(&(self.symbols.len() as u32).to_le_bytes());
        for sym in &self.symbols {
            head.extend_from_slice(&(sym.len() as u32).to_le_bytes());
            head.extend_from_slice(sym.as_bytes());
        }
        head.extend_from_slice(&self.series.to_le_bytes());
        let index_offset = self.offset;
        let index_len = (head.len() + self.index.len()) as u64;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head);
        crc.update(&self.index);
        let mut footer = Vec::with_capacity(FOOTER_BYTES as usize);
        footer.extend_from_slice(&index_offset.to_le_bytes());
        footer.extend_from_slice(&index_len.to_le_bytes());
        footer.extend_from_slice(&crc.finalize().to_le_bytes());
        let footer_crc = crc32fast::hash(&footer);
        footer.extend_from_slice(&footer_crc.to_le_bytes());
        footer.extend_from_slice(END_MAGIC);
        self.file.write_all(&head).map_err(io("write", &self.tmp))?;
        self.file.write_all(&self.index).map_err(io("write", &self.tmp))?;
        self.file.write_all(&footer).map_err(io("write", &self.tmp))?;
        let file = self
            .file
            .into_inner()
            .map_err(|e| io("write", &self.tmp)(e.into_error()))?;
        file.sync_all().map_err(io("fsync", &self.tmp))?;
        std::fs::rename(&self.tmp, &self.path).map_err(io("rename", &self.path))?;
        if let Some(dir) = self.path.parent() {
            crate::wal::sync_dir(dir)?;
        }
        Ok(index_offset + index_len + FOOTER_BYTES)
    }
}

impl BlockWriter {
    /// The symbol number of `s`, adding it to the table if new.
    fn symbol(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.symbol_ids.get(s) {
            return id;
        }
        let id = self.symbols.len() as u32;
        self.symbols.push(s.to_owned());
        self.symbol_ids.insert(s.to_owned(), id);
        id
    }

    /// Writes a label set relative to the previous series': a bitmap of the positions whose
    /// (name, value) equals the previous series' pair at that position, then the other pairs.
    fn put_labels(&mut self, labels: &Labels) {
        let pairs: Vec<(u32, u32)> = labels
            .iter()
            .map(|l| (self.symbol(&l.name), self.symbol(&l.value)))
            .collect();
        put_uvarint(&mut self.index, pairs.len() as u32);
        let mut bitmap = vec![0u8; pairs.len().div_ceil(8)];
        for (i, p) in pairs.iter().enumerate() {
            if self.prev.get(i) == Some(p) {
                bitmap[i / 8] |= 1 << (i % 8);
            }
        }
        self.index.extend_from_slice(&bitmap);
        for (i, &(name, value)) in pairs.iter().enumerate() {
            if bitmap[i / 8] & (1 << (i % 8)) == 0 {
                put_uvarint(&mut self.index, name);
                put_uvarint(&mut self.index, value);
            }
        }
        self.prev = pairs;
    }
}

/// Unsigned LEB128.
fn put_uvarint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A chunk entry; its data directly follows the previous chunk's, so the offset is implied.
fn put_chunk(out: &mut Vec<u8>, c: &ChunkMeta, base: i64) {
    put_uvarint(out, c.len);
    put_uvarint(out, u32::from(c.count));
    put_uvarint64(out, zigzag(c.min_t.wrapping_sub(base)));
    put_uvarint64(out, c.max_t.wrapping_sub(c.min_t) as u64);
    out.extend_from_slice(&c.crc.to_le_bytes());
}

/// Zig-zag: small magnitudes of either sign become small unsigned numbers.
pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Unsigned LEB128 of a `u64`.
fn put_uvarint64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}
