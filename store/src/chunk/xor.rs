//! The XOR chunk: timestamps as delta-of-delta, values XOR'd with their predecessor, written bit by
//! bit (Pelkonen et al., "Gorilla", VLDB 2015, as Prometheus' `chunkenc/xor.go` does it).
//!
//! Layout: the first sample as a zig-zag varint timestamp and 64 raw value bits; the second as an
//! unsigned varint delta and an XOR'd value; every later one as a bucketed delta-of-delta and an
//! XOR'd value. The sample count lives beside the bytes (in [`XorAppender`] and the caller's chunk
//! metadata), so the stream needs no header. Timestamp arithmetic wraps, so any pair of strictly
//! increasing `i64` timestamps round-trips, however far apart.

use super::bits::{BitReader, BitWriter, EndOfStream};

/// Why a sample could not be added to a chunk.
#[derive(Debug, PartialEq)]
pub(crate) enum ChunkError {
    /// Timestamps must strictly increase within a chunk.
    NotIncreasing,
}

/// Delta-of-delta buckets: (prefix bits, prefix length, payload bits). The last bucket writes the
/// full 64 bits.
const DOD_BUCKETS: [(u64, u8, u8); 3] = [(0b10, 2, 14), (0b110, 3, 17), (0b1110, 4, 20)];

/// Encodes samples into one chunk.
#[derive(Clone, Debug)]
pub(crate) struct XorAppender {
    stream: BitWriter,
    count: u16,
    t: i64,
    t_delta: u64,
    v_bits: u64,
    leading: u8,
    trailing: u8,
}

impl XorAppender {
    /// An empty chunk with `bytes` preallocated.
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        Self {
            stream: BitWriter::with_capacity(bytes),
            count: 0,
            t: 0,
            t_delta: 0,
            v_bits: 0,
            // An impossible window, so the first XOR always writes its own.
            leading: u8::MAX,
            trailing: 0,
        }
    }

    /// Samples in the chunk.
    pub(crate) fn count(&self) -> u16 {
        self.count
    }

    /// The newest sample's timestamp and value bits, if any.
    pub(crate) fn last(&self) -> Option<(i64, u64)> {
        (self.count > 0).then_some((self.t, self.v_bits))
    }

    /// The encoded bytes so far.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.stream.bytes()
    }

    /// Heap bytes held.
    pub(crate) fn capacity(&self) -> usize {
        self.stream.capacity()
    }

    /// Finishes the chunk, returning its bytes trimmed to size.
    pub(crate) fn finish(self) -> Box<[u8]> {
        self.stream.into_boxed()
    }

    /// Adds a sample; `t` must be greater than the previous sample's.
    pub(crate) fn append(&mut self, t: i64, v: f64) -> Result<(), ChunkError> {
        let v_bits = v.to_bits();
        match self.count {
            0 => {
                self.stream.write_varint(t);
                self.stream.write_bits(v_bits, 64);
                self.v_bits = v_bits;
            }
            1 => {
                if t <= self.t {
                    return Err(ChunkError::NotIncreasing);
                }
                self.t_delta = t.wrapping_sub(self.t) as u64;
                self.stream.write_uvarint(self.t_delta);
                self.write_value(v_bits);
            }
            _ => {
                if t <= self.t {
                    return Err(ChunkError::NotIncreasing);
                }
                let delta = t.wrapping_sub(self.t) as u64;
                let dod = delta.wrapping_sub(self.t_delta) as i64;
                self.write_dod(dod);
                self.t_delta = delta;
                self.write_value(v_bits);
            }
        }
        self.t = t;
        self.count += 1;
        Ok(())
    }

    fn write_dod(&mut self, dod: i64) {
        if dod == 0 {
            self.stream.write_bit(false);
            return;
        }
        for (prefix, prefix_len, bits) in DOD_BUCKETS {
            let min = -(1i64 << (bits - 1)) + 1;
            let max = 1i64 << (bits - 1);
            if (min..=max).contains(&dod) {
                self.stream.write_bits(prefix, prefix_len);
                self.stream.write_bits(dod as u64, bits);
                return;
            }
        }
        self.stream.write_bits(0b1111, 4);
        self.stream.write_bits(dod as u64, 64);
    }

    fn write_value(&mut self, v_bits: u64) {
        let xor = v_bits ^ self.v_bits;
        self.v_bits = v_bits;
        if xor == 0 {
            self.stream.write_bit(false);
            return;
        }
        self.stream.write_bit(true);
        // The leading count is written in 5 bits, so cap it at 31.
        let leading = (xor.leading_zeros() as u8).min(31);
        let trailing = xor.trailing_zeros() as u8;
        if self.leading != u8::MAX && leading >= self.leading && trailing >= self.trailing {
            // Reuse the previous window.
            self.stream.write_bit(false);
            let sig = 64 - self.leading - self.trailing;
            self.stream.write_bits(xor >> self.trailing, sig);
            return;
        }
        self.leading = leading;
        self.trailing = trailing;
        self.stream.write_bit(true);
        self.stream.write_bits(leading as u64, 5);
        let sig = 64 - leading - trailing;
        // 64 significant bits do not fit in 6 bits; 0 stands for 64 (there is never 0).
        self.stream.write_bits((sig % 64) as u64, 6);
        self.stream.write_bits(xor >> trailing, sig);
    }
}

/// Decodes the samples of one chunk, oldest first.
#[derive(Clone, Debug)]
pub(crate) struct XorIter<'a> {
    stream: BitReader<'a>,
    left: u16,
    read: u16,
    t: i64,
    t_delta: u64,
    v_bits: u64,
    leading: u8,
    trailing: u8,
}

impl<'a> XorIter<'a> {
    /// Iterates the first `count` samples of `bytes`.
    pub(crate) fn new(bytes: &'a [u8], count: u16) -> Self {
        Self {
            stream: BitReader::new(bytes),
            left: count,
            read: 0,
            t: 0,
            t_delta: 0,
            v_bits: 0,
            leading: 0,
            trailing: 0,
        }
    }

    fn decode(&mut self) -> Result<(i64, f64), EndOfStream> {
        match self.read {
            0 => {
                self.t = self.stream.read_varint()?;
                self.v_bits = self.stream.read_bits(64)?;
            }
            1 => {
                self.t_delta = self.stream.read_uvarint()?;
                self.t = self.t.wrapping_add(self.t_delta as i64);
                self.read_value()?;
            }
            _ => {
                let dod = self.read_dod()?;
                self.t_delta = self.t_delta.wrapping_add(dod as u64);
                self.t = self.t.wrapping_add(self.t_delta as i64);
                self.read_value()?;
            }
        }
        self.read += 1;
        Ok((self.t, f64::from_bits(self.v_bits)))
    }

    fn read_dod(&mut self) -> Result<i64, EndOfStream> {
        // Count leading one bits of the prefix, up to four.
        let mut ones = 0;
        while ones < 4 && self.stream.read_bit()? {
            ones += 1;
        }
        let bits = match ones {
            0 => return Ok(0),
            1..=3 => DOD_BUCKETS[ones - 1].2,
            _ => 64,
        };
        let raw = self.stream.read_bits(bits)?;
        if bits == 64 {
            return Ok(raw as i64);
        }
        // Sign-extend; the bucket's top value (1 << (bits - 1)) reads as negative and is fixed up.
        let mut dod = ((raw << (64 - bits)) as i64) >> (64 - bits);
        if dod == -(1i64 << (bits - 1)) {
            dod = 1i64 << (bits - 1);
        }
        Ok(dod)
    }

    fn read_value(&mut self) -> Result<(), EndOfStream> {
        if !self.stream.read_bit()? {
            return Ok(());
        }
        if self.stream.read_bit()? {
            self.leading = self.stream.read_bits(5)? as u8;
            let sig = self.stream.read_bits(6)? as u8;
            let sig = if sig == 0 { 64 } else { sig };
            // Only corrupt input has a window wider than 64 bits; refuse it rather than overflow.
            self.trailing = 64u8
                .checked_sub(self.leading)
                .and_then(|r| r.checked_sub(sig))
                .ok_or(EndOfStream)?;
        }
        let sig = 64 - self.leading - self.trailing;
        let bits = self.stream.read_bits(sig)?;
        self.v_bits ^= bits << self.trailing;
        Ok(())
    }
}

impl Iterator for XorIter<'_> {
    type Item = (i64, f64);

    fn next(&mut self) -> Option<(i64, f64)> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // A chunk is only ever decoded from bytes this process encoded; a short stream would be a
        // bug, and ending the iteration is the safe answer.
        self.decode().ok()
    }
}

#[cfg(test)]
mod tests;
