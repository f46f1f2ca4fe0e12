//! WAL record framing and encoding.
//!
//! Frame: `len: u32 LE` (bytes of the body) · `crc: u32 LE` (IEEE CRC-32 of the body, via
//! `crc32fast`) · body. Body: a kind byte, then
//!
//! * `1` series: `ref: u64` · `labels: u16` · per label `name_len: u32` · name · `value_len: u32`
//!   · value;
//! * `2` samples: `n: u32` · `refs: [u64; n]` · `timestamps_ms: [i64; n]` · `value_bits: [u64; n]`
//!   (columns, so a reader can skip what it does not need).
//!
//! All integers are little-endian. A reader trusts nothing: every length is checked against the
//! bytes present and [`MAX_BODY_BYTES`], and a checksum mismatch ends the segment.

use meshfed_model::Labels;

/// Frame header bytes.
pub(crate) const HEADER_BYTES: usize = 8;
/// Largest body a writer produces; a longer length field is corruption.
pub(crate) const MAX_BODY_BYTES: usize = 256 << 20;
/// Largest samples record; bigger batches are split.
pub(crate) const MAX_SAMPLES_PER_RECORD: usize = (MAX_BODY_BYTES - 16) / 24;

const KIND_SERIES: u8 = 1;
const KIND_SAMPLES: u8 = 2;

/// A decoded record.
#[derive(Debug, PartialEq)]
pub(crate) enum Record {
    /// A series was created with this ref.
    Series { series: u64, labels: Labels },
    /// Samples were appended; decoded into the reader's buffer.
    Samples,
}

/// Appends a series record to `buf`.
pub(crate) fn encode_series(buf: &mut Vec<u8>, series: u64, labels: &Labels) {
    let start = begin(buf, KIND_SERIES);
    buf.extend_from_slice(&series.to_le_bytes());
    buf.extend_from_slice(&(labels.len().min(usize::from(u16::MAX)) as u16).to_le_bytes());
    for l in labels.iter().take(usize::from(u16::MAX)) {
        buf.extend_from_slice(&(l.name.len() as u32).to_le_bytes());
        buf.extend_from_slice(l.name.as_bytes());
        buf.extend_from_slice(&(l.value.len() as u32).to_le_bytes());
        buf.extend_from_slice(l.value.as_bytes());
    }
    finish(buf, start);
}

/// Appends a samples record of `(ref, timestamp_ms, value_bits)` to `buf`.
pub(crate) fn encode_samples(buf: &mut Vec<u8>, samples: &[(u64, i64, u64)]) {
    for part in samples.chunks(MAX_SAMPLES_PER_RECORD) {
        let start = begin(buf, KIND_SAMPLES);
        buf.reserve(4 + part.len() * 24);
        buf.extend_from_slice(&(part.len() as u32).to_le_bytes());
        buf.extend(part.iter().flat_map(|s| s.0.to_le_bytes()));
        buf.extend(part.iter().flat_map(|s| s.1.to_le_bytes()));
        buf.extend(part.iter().flat_map(|s| s.2.to_le_bytes()));
        finish(buf, start);
    }
}

fn begin(buf: &mut Vec<u8>, kind: u8) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0; HEADER_BYTES]);
    buf.push(kind);
    start
}

fn finish(buf: &mut [u8], start: usize) {
    let body = &buf[start + HEADER_BYTES..];
    let len = body.len() as u32;
    let crc = crc32fast::hash(body);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The next frame's body in `bytes` at `pos` and the position after it; `Ok(None)` at a clean end,
/// `Err(reason)` for a torn or corrupt frame. The reference the streaming reader in `replay.rs`
/// follows (replay never holds a whole file), kept for the frame tests.
#[cfg(test)]
pub(crate) fn next_frame(bytes: &[u8], pos: usize) -> Result<Option<(&[u8], usize)>, &'static str> {
    let Some(rest) = bytes.get(pos..).filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let (Some(len), Some(crc)) = (read_u32(rest, 0), read_u32(rest, 4)) else {
        return Err("torn frame header");
    };
    let len = len as usize;
    if len == 0 || len > MAX_BODY_BYTES {
        return Err("impossible record length");
    }
    let Some(body) = rest.get(HEADER_BYTES..HEADER_BYTES + len) else {
        return Err("torn record body");
    };
    if crc32fast::hash(body) != crc {
        return Err("checksum mismatch");
    }
    Ok(Some((body, pos + HEADER_BYTES + len)))
}

/// Decodes a checksummed body. Samples go to `samples` (replaced).
pub(crate) fn decode(body: &[u8], samples: &mut Vec<(u64, i64, u64)>) -> Result<Record, &'static str> {
    let mut r = Reader { bytes: body, pos: 1 };
    match body.first() {
        Some(&KIND_SERIES) => {
            let series = r.u64()?;
            let n = r.u16()?;
            let mut pairs = Vec::with_capacity(usize::from(n));
            for _ in 0..n {
                let name = r.str()?;
                let value = r.str()?;
                pairs.push((name, value));
            }
            r.end()?;
            Ok(Record::Series {
                series,
                labels: Labels::from_pairs(pairs),
            })
        }
        Some(&KIND_SAMPLES) => {
            let n = r.u32()? as usize;
            let cols = r.take(n.checked_mul(24).ok_or("sample count overflow")?)?;
            r.end()?;
            let (refs, rest) = cols.split_at(n * 8);
            let (ts, vals) = rest.split_at(n * 8);
            samples.clear();
            samples.extend((0..n).map(|i| {
                let at = i * 8..i * 8 + 8;
                (
                    le_u64(&refs[at.clone()]),
                    le_u64(&ts[at.clone()]) as i64,
                    le_u64(&vals[at]),
                )
            }));
            Ok(Record::Samples)
        }
        _ => Err("unknown record kind"),
    }
}

#[cfg(test)]
fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)?.try_into().ok().map(u32::from_le_bytes)
}

fn le_u64(b: &[u8]) -> u64 {
    b.try_into().map_or(0, u64::from_le_bytes)
}

/// A bounds-checked cursor over bytes from a file; every read can fail, none can panic.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A cursor at `pos`.
    pub(crate) fn new(bytes: &'a [u8], pos: usize) -> Self {
        Self { bytes, pos }
    }
    /// The position.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }
    pub(crate) fn i64(&mut self) -> Result<i64, &'static str> {
        Ok(self.u64()? as i64)
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let end = self.pos.checked_add(n).ok_or("length overflow")?;
        let out = self
            .bytes
            .get(self.pos..end)
            .ok_or("record shorter than its fields")?;
        self.pos = end;
        Ok(out)
    }
    pub(crate) fn u16(&mut self) -> Result<u16, &'static str> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().map_err(|_| "short")?))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| "short")?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, &'static str> {
        Ok(le_u64(self.take(8)?))
    }
    pub(crate) fn str(&mut self) -> Result<&'a str, &'static str> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.take(n)?).map_err(|_| "label is not UTF-8")
    }
    /// An unsigned LEB128 varint that fits a `u32`.
    pub(crate) fn uvarint32(&mut self) -> Result<u32, &'static str> {
        u32::try_from(self.uvarint64()?).map_err(|_| "varint overflows u32")
    }
    /// An unsigned LEB128 varint of at most 10 bytes.
    pub(crate) fn uvarint64(&mut self) -> Result<u64, &'static str> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.take(1)?[0];
            v |= u64::from(b & 0x7f).checked_shl(7 * i).unwrap_or(0);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes")
    }
    pub(crate) fn end(&self) -> Result<(), &'static str> {
        (self.pos == self.bytes.len())
            .then_some(())
            .ok_or("trailing bytes in record")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_torn_frames() {
        let mut buf = Vec::new();
        let labels = Labels::from_pairs([("__name__", "up"), ("pod", "a=b,}")]);
        encode_series(&mut buf, 7, &labels);
        encode_samples(&mut buf, &[(7, 1000, 1f64.to_bits()), (7, 2000, u64::MAX)]);
        let mut samples = Vec::new();
        let (body, next) = next_frame(&buf, 0).unwrap().unwrap();
        assert_eq!(
            decode(body, &mut samples),
            Ok(Record::Series { series: 7, labels })
        );
        let (body, end) = next_frame(&buf, next).unwrap().unwrap();
        assert_eq!(decode(body, &mut samples), Ok(Record::Samples));
        assert_eq!(samples, [(7, 1000, 1f64.to_bits()), (7, 2000, u64::MAX)]);
        assert_eq!(next_frame(&buf, end), Ok(None));
        // Every truncation of the second frame is detected, as is any flipped bit.
        for cut in next + 1..end {
            assert!(next_frame(&buf[..cut], next).is_err(), "cut at {cut}");
        }
        for i in next..end {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            assert!(
                next_frame(&bad, next).is_err() || decode_fails(&bad, next),
                "flip at {i}"
            );
        }
    }

    fn decode_fails(buf: &[u8], at: usize) -> bool {
        let mut s = Vec::new();
        next_frame(buf, at)
            .ok()
            .flatten()
            .is_none_or(|(b, _)| decode(b, &mut s).is_err())
    }
}
