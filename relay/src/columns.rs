//! The sample columns of a batch as a ZSTD-compressed Arrow IPC stream.
//!
//! One record batch with three non-null columns: `ref_delta` (Int64, the series ref minus the
//! previous sample's), `timestamp_delta_ms` (Int64, likewise) and `value_xor` (UInt64, the value's
//! bits XOR the previous value of the same series, computed by the caller, who keeps that state
//! per stream). Samples of one scrape share a timestamp and arrive in ref order, so both delta
//! columns are mostly constant, and unchanged values XOR to zero: all compress to little.
//!
//! Decoding untrusted bytes: before arrow decompresses anything, [`validate`] walks the IPC
//! framing and checks every buffer's declared uncompressed size and the row count against
//! limits, so a hostile collector cannot make the aggregator allocate without bound.

use std::sync::Arc;

use arrow_array::{Array, Int64Array, RecordBatch, UInt64Array};
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::{IpcWriteOptions, StreamWriter};
use arrow_schema::{DataType, Field, Schema};

/// Most samples one batch may carry.
pub const MAX_ROWS: usize = 1 << 22;
/// Most bytes all buffers of one batch may decompress to.
pub const MAX_DECOMPRESSED_BYTES: u64 = 128 << 20;

/// Why columns could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[error("arrow columns: {0}")]
pub struct ColumnsError(pub String);

fn fail(e: impl ToString) -> ColumnsError {
    ColumnsError(e.to_string())
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("ref_delta", DataType::Int64, false),
        Field::new("timestamp_delta_ms", DataType::Int64, false),
        Field::new("value_xor", DataType::UInt64, false),
    ]))
}

fn deltas(xs: impl Iterator<Item = i64>) -> Vec<i64> {
    let mut prev = 0i64;
    xs.map(|x| {
        let d = x.wrapping_sub(prev);
        prev = x;
        d
    })
    .collect()
}

fn undo_deltas(ds: &[i64]) -> impl Iterator<Item = i64> + '_ {
    ds.iter().scan(0i64, |acc, d| {
        *acc = acc.wrapping_add(*d);
        Some(*acc)
    })
}

/// Encodes the three sample columns.
pub fn encode(refs: &[u64], timestamps_ms: &[i64], values: &[u64]) -> Result<Vec<u8>, ColumnsError> {
    let schema = schema();
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Int64Array::from(deltas(refs.iter().map(|&r| r as i64)))),
            Arc::new(Int64Array::from(deltas(timestamps_ms.iter().copied()))),
            Arc::new(UInt64Array::from(values.to_vec())),
        ],
    )
    .map_err(fail)?;
    let options = IpcWriteOptions::default()
        .try_with_compression(Some(arrow_ipc::CompressionType::ZSTD))
        .map_err(fail)?;
    let mut out = Vec::with_capacity(values.len() * 4 + 512);
    let mut w = StreamWriter::try_new_with_options(&mut out, &schema, options).map_err(fail)?;
    w.write(&batch).map_err(fail)?;
    w.finish().map_err(fail)?;
    drop(w);
    Ok(out)
}

/// Decodes columns produced by [`encode`] into the three vectors (cleared first).
pub fn decode(
    bytes: &[u8],
    refs: &mut Vec<u64>,
    timestamps_ms: &mut Vec<i64>,
    values: &mut Vec<u64>,
) -> Result<(), ColumnsError> {
    validate(bytes)?;
    // Arrow's reader is not hardened against every malformed input; `validate` checks the
    // framing and sizes, and a panic that still gets through is turned into an error here
    // rather than taking the aggregator down.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        read(bytes, refs, timestamps_ms, values)
    }));
    result.unwrap_or_else(|_| Err(fail("malformed columns")))
}

fn read(
    bytes: &[u8],
    refs: &mut Vec<u64>,
    timestamps_ms: &mut Vec<i64>,
    values: &mut Vec<u64>,
) -> Result<(), ColumnsError> {
    refs.clear();
    timestamps_ms.clear();
    values.clear();
    let reader = StreamReader::try_new(bytes, None).map_err(fail)?;
    if reader.schema().fields() != schema().fields() {
        return Err(fail(format!("unexpected schema {:?}", reader.schema())));
    }
    for batch in reader {
        let batch = batch.map_err(fail)?;
        let col = |i: usize| batch.column(i);
        let (r, t, v) = (
            col(0).as_any().downcast_ref::<Int64Array>(),
            col(1).as_any().downcast_ref::<Int64Array>(),
            col(2).as_any().downcast_ref::<UInt64Array>(),
        );
        let (Some(r), Some(t), Some(v)) = (r, t, v) else {
            return Err(fail("column types"));
        };
        if r.null_count() + t.null_count() + v.null_count() > 0 {
            return Err(fail("null values"));
        }
        refs.extend(undo_deltas(r.values()).map(|x| x as u64));
        timestamps_ms.extend(undo_deltas(t.values()));
        values.extend_from_slice(v.values());
    }
    Ok(())
}

/// Walks the IPC stream's framing and refuses it if any record batch declares more rows, or its
/// compressed buffers more decompressed bytes, than the limits allow.
pub fn validate(bytes: &[u8]) -> Result<(), ColumnsError> {
    let mut pos = 0usize;
    let read_i32 = |at: usize| -> Result<i32, ColumnsError> {
        let b = bytes
            .get(at..at + 4)
            .ok_or_else(|| fail("truncated message header"))?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    loop {
        let mut len = read_i32(pos)?;
        pos += 4;
        if len == -1 {
            len = read_i32(pos)?;
            pos += 4;
        }
        if len == 0 {
            return Ok(()); // end of stream
        }
        let len = usize::try_from(len).map_err(|_| fail("negative metadata length"))?;
        let meta = bytes
            .get(pos..pos + len)
            .ok_or_else(|| fail("truncated metadata"))?;
        pos += len;
        let message = arrow_ipc::root_as_message(meta).map_err(fail)?;
        let body_len = usize::try_from(message.bodyLength()).map_err(|_| fail("negative body length"))?;
        let body = bytes
            .get(pos..pos + body_len)
            .ok_or_else(|| fail("truncated body"))?;
        pos += body_len;
        if let Some(rb) = message.header_as_record_batch() {
            if usize::try_from(rb.length()).map_or(true, |n| n > MAX_ROWS) {
                return Err(fail(format!(
                    "{} rows exceed the limit of {MAX_ROWS}",
                    rb.length()
                )));
            }
            let compressed = rb.compression().is_some();
            let mut total: u64 = 0;
            for buf in rb.buffers().into_iter().flatten() {
                let start = usize::try_from(buf.offset()).map_err(|_| fail("negative buffer offset"))?;
                let blen = usize::try_from(buf.length()).map_err(|_| fail("negative buffer length"))?;
                let data = body
                    .get(start..start.saturating_add(blen))
                    .ok_or_else(|| fail("buffer outside body"))?;
                if !compressed {
                    total = total.saturating_add(blen as u64);
                } else if blen > 0 {
                    let prefix: [u8; 8] = data
                        .get(..8)
                        .and_then(|p| p.try_into().ok())
                        .ok_or_else(|| fail("short buffer"))?;
                    let declared = i64::from_le_bytes(prefix);
                    // -1 means "stored uncompressed"; then the data is the rest of the buffer.
                    total = total.saturating_add(if declared < 0 {
                        blen as u64
                    } else {
                        declared as u64
                    });
                }
            }
            let nodes = rb.nodes().map_or(0, |n| n.len());
            if nodes != 3 || rb.buffers().map_or(0, |b| b.len()) != 6 {
                return Err(fail("unexpected column layout"));
            }
            for node in rb.nodes().into_iter().flatten() {
                if node.length() != rb.length() || node.null_count() != 0 {
                    return Err(fail("column length or nulls do not match the batch"));
                }
            }
            for buf in rb.buffers().into_iter().flatten().skip(1).step_by(2) {
                // Each column's values buffer holds 8 bytes per row (when not compressed).
                if !compressed && (buf.length() as u64) < (rb.length() as u64).saturating_mul(8) {
                    return Err(fail("values buffer shorter than the row count"));
                }
            }
            if total > MAX_DECOMPRESSED_BYTES {
                return Err(fail(format!(
                    "batch decompresses to {total} bytes, over {MAX_DECOMPRESSED_BYTES}"
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_including_special_values() {
        let refs = [1u64, 2, 3, 1, 2, 3, 40, u64::MAX];
        let ts = [5i64, 5, 5, 10, 10, 10, -3, i64::MAX];
        let vals: Vec<u64> = [
            0.0,
            f64::NAN,
            f64::from_bits(0x7ff0_0000_0000_0002),
            f64::INFINITY,
            -0.0,
            1e300,
            3.5,
            -1.0,
        ]
        .iter()
        .map(|v| v.to_bits())
        .collect();
        let bytes = encode(&refs, &ts, &vals).unwrap();
        let (mut r, mut t, mut v) = (Vec::new(), Vec::new(), Vec::new());
        decode(&bytes, &mut r, &mut t, &mut v).unwrap();
        assert_eq!(r, refs);
        assert_eq!(t, ts);
        assert_eq!(v, vals, "bit-exact, staleness marker included");
    }

    #[test]
    fn garbage_and_truncation_are_errors_not_panics() {
        let good = encode(&[1, 2], &[1, 1], &[1, 2]).unwrap();
        let (mut r, mut t, mut v) = (Vec::new(), Vec::new(), Vec::new());
        for cut in 0..good.len() {
            let _ = decode(&good[..cut], &mut r, &mut t, &mut v);
        }
        for seed in 0..200u64 {
            let mut bad = good.clone();
            let i = (seed as usize * 7919) % bad.len();
            bad[i] ^= (seed as u8).wrapping_mul(31) | 1;
            let _ = decode(&bad, &mut r, &mut t, &mut v);
        }
        assert!(decode(b"\xff\xff\xff\xffgarbage", &mut r, &mut t, &mut v).is_err());
    }

    #[test]
    fn oversized_declared_length_is_refused_before_decompressing() {
        let n = 1000;
        let mut bytes = encode(&vec![1; n], &vec![1; n], &vec![1; n]).unwrap();
        // Find the first compressed buffer's 8-byte length prefix (8 bytes per row) and claim an
        // absurd size instead.
        let needle = (n as i64 * 8).to_le_bytes();
        let at = bytes.windows(8).position(|w| w == needle).unwrap();
        bytes[at..at + 8].copy_from_slice(&(1i64 << 60).to_le_bytes());
        let err = decode(&bytes, &mut Vec::new(), &mut Vec::new(), &mut Vec::new()).unwrap_err();
        assert!(err.0.contains("decompresses to"), "{err}");
    }
}
