//! Bit-level writer and reader for the Gorilla chunk encoding.
//!
//! Bits are packed most-significant first, as in Prometheus' `bstream`, so an encoded chunk reads
//! the same regardless of the machine's byte order.

/// Bytes a full [`BitWriter`] grows by.
const GROW_BYTES: usize = 32;

/// Appends bits to a growing byte buffer.
#[derive(Clone, Debug, Default)]
pub(crate) struct BitWriter {
    bytes: Vec<u8>,
    /// Free bits left in the last byte (0 when the last byte is full or there is none).
    free: u8,
}

impl BitWriter {
    /// An empty writer with room for `bytes` bytes.
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bytes),
            free: 0,
        }
    }

    /// Starts a new byte. A full buffer grows by [`GROW_BYTES`], not by doubling: a head chunk
    /// stays open for its whole life (120 samples, ~170 bytes), and doubling would leave up to
    /// half of every open chunk's allocation unused — ~90 B per series at a million series.
    fn push_byte(&mut self) {
        if self.bytes.len() == self.bytes.capacity() {
            self.bytes.reserve_exact(GROW_BYTES);
        }
        self.bytes.push(0);
    }

    /// Writes one bit.
    pub(crate) fn write_bit(&mut self, bit: bool) {
        if self.free == 0 {
            self.push_byte();
            self.free = 8;
        }
        self.free -= 1;
        if bit && let Some(last) = self.bytes.last_mut() {
            *last |= 1 << self.free;
        }
    }

    /// Writes the low `n` bits of `value` (`n <= 64`), most significant first.
    pub(crate) fn write_bits(&mut self, value: u64, n: u8) {
        debug_assert!(n <= 64);
        let mut left = n;
        while left > 0 {
            if self.free == 0 {
                self.push_byte();
                self.free = 8;
            }
            let take = left.min(self.free);
            // The `take` bits of `value` just below bit position `left`.
            let chunk = ((value >> (left - take)) & ((1u64 << take) - 1)) as u8;
            self.free -= take;
            if let Some(last) = self.bytes.last_mut() {
                *last |= chunk << self.free;
            }
            left -= take;
        }
    }

    /// Writes a byte-aligned-agnostic unsigned LEB128 varint.
    pub(crate) fn write_uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.write_bits((v as u8 | 0x80) as u64, 8);
            v >>= 7;
        }
        self.write_bits(v, 8);
    }

    /// Writes a zig-zag signed varint.
    pub(crate) fn write_varint(&mut self, v: i64) {
        self.write_uvarint(((v << 1) ^ (v >> 63)) as u64);
    }

    /// The bytes written so far (the last byte may be partly filled).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Heap bytes held.
    pub(crate) fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// Gives up the buffer, trimmed to its length.
    pub(crate) fn into_boxed(self) -> Box<[u8]> {
        self.bytes.into_boxed_slice()
    }
}

/// The stream ended before the requested bits.
#[derive(Debug, PartialEq)]
pub(crate) struct EndOfStream;

/// Reads bits written by [`BitWriter`].
#[derive(Clone, Debug)]
pub(crate) struct BitReader<'a> {
    bytes: &'a [u8],
    /// Position in bits from the start.
    pos: usize,
}

impl<'a> BitReader<'a> {
    /// A reader at the start of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// Reads one bit.
    pub(crate) fn read_bit(&mut self) -> Result<bool, EndOfStream> {
        let byte = *self.bytes.get(self.pos / 8).ok_or(EndOfStream)?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1 == 1;
        self.pos += 1;
        Ok(bit)
    }

    /// Reads `n <= 64` bits as the low bits of a `u64`.
    pub(crate) fn read_bits(&mut self, n: u8) -> Result<u64, EndOfStream> {
        debug_assert!(n <= 64);
        if self.pos + n as usize > self.bytes.len() * 8 {
            return Err(EndOfStream);
        }
        let mut out = 0u64;
        let mut left = n;
        while left > 0 {
            let byte = self.bytes[self.pos / 8];
            let offset = (self.pos % 8) as u8;
            let avail = 8 - offset;
            let take = left.min(avail);
            let chunk = (byte >> (avail - take)) & (((1u16 << take) - 1) as u8);
            out = (out << take) | chunk as u64;
            self.pos += take as usize;
            left -= take;
        }
        Ok(out)
    }

    /// Reads an unsigned LEB128 varint.
    pub(crate) fn read_uvarint(&mut self) -> Result<u64, EndOfStream> {
        let mut out = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.read_bits(8)?;
            out |= (b & 0x7f).checked_shl(shift).unwrap_or(0);
            if b < 0x80 {
                return Ok(out);
            }
        }
        Err(EndOfStream)
    }

    /// Reads a zig-zag signed varint.
    pub(crate) fn read_varint(&mut self) -> Result<i64, EndOfStream> {
        let u = self.read_uvarint()?;
        Ok((u >> 1) as i64 ^ -((u & 1) as i64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip_across_byte_boundaries() {
        let mut w = BitWriter::default();
        let items: [(u64, u8); 7] = [
            (1, 1),
            (0b101, 3),
            (u64::MAX, 64),
            (0, 0),
            (0x1234, 13),
            (7, 3),
            (1 << 63, 64),
        ];
        for (v, n) in items {
            w.write_bits(v, n);
        }
        w.write_bit(true);
        w.write_varint(-5);
        w.write_varint(i64::MIN);
        w.write_uvarint(u64::MAX);
        let mut r = BitReader::new(w.bytes());
        for (v, n) in items {
            let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
            assert_eq!(r.read_bits(n), Ok(v & mask));
        }
        assert_eq!(r.read_bit(), Ok(true));
        assert_eq!(r.read_varint(), Ok(-5));
        assert_eq!(r.read_varint(), Ok(i64::MIN));
        assert_eq!(r.read_uvarint(), Ok(u64::MAX));
    }

    #[test]
    fn reading_past_the_end_fails() {
        let mut r = BitReader::new(&[0xff]);
        assert_eq!(r.read_bits(8), Ok(0xff));
        assert_eq!(r.read_bit(), Err(EndOfStream));
        assert_eq!(BitReader::new(&[0x80]).read_uvarint(), Err(EndOfStream));
    }
}
