//! Decoding a block's index (layout in [`super::writer`]) one series at a time.
//!
//! A series' label pairs are handed out as `&str` slices of the index bytes and its chunk entries
//! as a reused buffer: walking a 1 M-series index allocates nothing per series. Opening a block
//! keeps only the chunk entries; the labels are read by a second walk, only where the caller needs
//! them (to find the store's ids of series in a block found on disk), and never kept.

use std::path::PathBuf;

use super::writer::{ChunkMeta, MAGIC};
use crate::error::{Result, corrupt};
use crate::postings::SeriesId;
use crate::wal::record::Reader;

/// The index's fixed part.
#[derive(Debug)]
pub(crate) struct IndexHeader {
    pub(crate) seq: u64,
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) samples: u64,
    pub(crate) parents: Vec<u64>,
}

/// Called per series in file order with its (name, value) pairs and chunk entries.
pub(crate) type OnSeries<'f> = dyn FnMut(&[(&str, &str)], &[ChunkMeta]) -> Result<(), &'static str> + 'f;

/// Walks a whole index (`index` starts at file offset `index_offset`), checking every chunk entry
/// lies inside the chunk data and is in time order.
pub(crate) fn walk(
    index: &[u8],
    index_offset: u64,
    v1: bool,
    on_series: &mut OnSeries<'_>,
) -> Result<IndexHeader, (usize, &'static str)> {
    let mut r = Reader::new(index, 0);
    walk_reader(&mut r, index_offset, v1, on_series).map_err(|e| (r.pos(), e))
}

fn walk_reader(
    r: &mut Reader<'_>,
    index_offset: u64,
    v1: bool,
    on_series: &mut OnSeries<'_>,
) -> Result<IndexHeader, &'static str> {
    let seq = r.u64()?;
    let (start, end, _min_t, _max_t) = (r.i64()?, r.i64()?, r.i64()?, r.i64()?);
    let samples = r.u64()?;
    let parents = (0..r.u32()?).map(|_| r.u64()).collect::<Result<Vec<_>, _>>()?;
    let mut symbols = Vec::new();
    if !v1 {
        for _ in 0..r.u32()? {
            symbols.push(r.str()?);
        }
    }
    let symbol = |r: &mut Reader<'_>| -> Result<&str, &'static str> {
        let i = r.uvarint32()? as usize;
        symbols.get(i).copied().ok_or("symbol number out of range")
    };
    let n = r.u32()?;
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    let mut prev = pairs.clone();
    let mut metas = Vec::new();
    let (mut series_base, mut next_offset) = (0i64, MAGIC.len() as u64);
    for _ in 0..n {
        pairs.clear();
        if v1 {
            for _ in 0..r.u16()? {
                pairs.push((r.str()?, r.str()?));
            }
        } else {
            let count = r.uvarint32()? as usize;
            let bitmap = r.take(count.div_ceil(8))?;
            for i in 0..count {
                if bitmap[i / 8] & (1 << (i % 8)) != 0 {
                    pairs.push(*prev.get(i).ok_or("label repeats a missing previous label")?);
                } else {
                    pairs.push((symbol(r)?, symbol(r)?));
                }
            }
            prev.clone_from(&pairs);
        }
        let chunks = if v1 { r.u32()? } else { r.uvarint32()? };
        metas.clear();
        let mut base = series_base;
        for _ in 0..chunks {
            let c = if v1 {
                ChunkMeta {
                    offset: r.u64()?,
                    len: r.u32()?,
                    count: r.u16()?,
                    min_t: r.i64()?,
                    max_t: r.i64()?,
                    crc: r.u32()?,
                }
            } else {
                let len = r.uvarint32()?;
                let count = u16::try_from(r.uvarint32()?).map_err(|_| "chunk sample count over u16")?;
                let min_t = base.wrapping_add(unzigzag(r.uvarint64()?));
                let max_t = min_t.wrapping_add(r.uvarint64()? as i64);
                let c = ChunkMeta {
                    offset: next_offset,
                    len,
                    count,
                    min_t,
                    max_t,
                    crc: r.u32()?,
                };
                next_offset = next_offset.saturating_add(u64::from(len));
                if metas.is_empty() {
                    series_base = min_t;
                }
                base = max_t;
                c
            };
            let in_file = c.offset >= MAGIC.len() as u64
                && c.offset
                    .checked_add(u64::from(c.len))
                    .is_some_and(|e| e <= index_offset);
            let ordered = metas.last().is_none_or(|p: &ChunkMeta| p.max_t < c.min_t);
            if !in_file || c.count == 0 || c.min_t > c.max_t || !ordered {
                return Err("chunk entry out of bounds or out of order");
            }
            metas.push(c);
        }
        on_series(&pairs, &metas)?;
    }
    r.end()?;
    Ok(IndexHeader {
        seq,
        start,
        end,
        samples,
        parents,
    })
}

/// Inverse of [`super::writer::zigzag`].
fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

/// A just opened block's index bytes, kept until its series have store ids
/// ([`BlockLabels::ids`]) and then dropped: the labels live in the store's registry only.
#[derive(Debug)]
pub(crate) struct BlockLabels {
    pub(crate) path: PathBuf,
    pub(crate) index: Vec<u8>,
    pub(crate) index_offset: u64,
    pub(crate) v1: bool,
}

impl BlockLabels {
    /// The store id of each series in index order, as `id_of` gives it from the series' labels.
    pub(crate) fn ids(&self, mut id_of: impl FnMut(&[(&str, &str)]) -> SeriesId) -> Result<Vec<SeriesId>> {
        let mut ids = Vec::new();
        walk(&self.index, self.index_offset, self.v1, &mut |pairs, _| {
            ids.push(id_of(pairs));
            Ok(())
        })
        .map_err(|(at, reason)| corrupt(&self.path, self.index_offset + at as u64, reason))?;
        Ok(ids)
    }

    /// Every series' labels (tests compare them with what was written).
    #[cfg(test)]
    pub(crate) fn labels(&self) -> Vec<meshfed_model::Labels> {
        let mut out = Vec::new();
        let _ = self.ids(|pairs| {
            out.push(meshfed_model::Labels::from_pairs(pairs.iter().copied()));
            0
        });
        out
    }
}
