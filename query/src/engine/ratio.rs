//! `limit_ratio`: a deterministic sample of each group's series, chosen by a hash of the labels.
//!
//! Prometheus places every series at `hash(labels) / u64::MAX` in `[0, 1]` and keeps it when that
//! offset is below the ratio (`r >= 0`) or at or above `1 + r` (`r < 0`), so `limit_ratio(r, v)`
//! and `limit_ratio(-(1 - r), v)` are complements. The hash is the one Prometheus' `Labels.Hash`
//! computes (xxHash64, seed 0, over `name 0xff value 0xff` for each label in name order), so the
//! same series are picked as in Prometheus.

use std::collections::HashMap;

use meshfed_model::{Labels, METRIC_NAME};

use crate::value::StepSeries;

/// Keeps, per step, the series whose label-hash offset falls inside the ratio for that step.
/// The ratio is clamped to `[-1, 1]`; a NaN ratio keeps nothing.
pub(super) fn limit_ratio(input: &[StepSeries], ratio: &[f64], steps: usize) -> Vec<StepSeries> {
    let offsets: Vec<f64> = input.iter().map(|s| offset(&s.labels, s.drop_name)).collect();
    let mut out: Vec<StepSeries> = Vec::new();
    let mut out_of: HashMap<usize, usize> = HashMap::new();
    for (step, &r) in ratio.iter().enumerate().take(steps) {
        let r = r.clamp(-1.0, 1.0);
        for (i, s) in input.iter().enumerate() {
            let Some(v) = s.vals[step] else { continue };
            let keep = (r >= 0.0 && offsets[i] < r) || (r < 0.0 && offsets[i] >= 1.0 + r);
            if !keep {
                continue;
            }
            let o = *out_of.entry(i).or_insert_with(|| {
                out.push(StepSeries::new(s.labels.clone(), s.drop_name, steps));
                out.len() - 1
            });
            out[o].vals[step] = Some(v);
        }
    }
    out
}

/// The series' position in `[0, 1]`. A series whose name is due to be dropped is hashed without
/// it, as Prometheus has already removed it by the time the aggregation sees the sample.
fn offset(labels: &Labels, drop_name: bool) -> f64 {
    let mut buf = Vec::with_capacity(256);
    for l in labels {
        if drop_name && l.name == METRIC_NAME {
            continue;
        }
        buf.extend_from_slice(l.name.as_bytes());
        buf.push(0xff);
        buf.extend_from_slice(l.value.as_bytes());
        buf.push(0xff);
    }
    xxh64(&buf) as f64 / u64::MAX as f64
}

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

fn round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

fn merge_round(acc: u64, val: u64) -> u64 {
    (acc ^ round(0, val)).wrapping_mul(P1).wrapping_add(P4)
}

fn read_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn read_u32(b: &[u8]) -> u64 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u64::from(u32::from_le_bytes(a))
}

/// xxHash64 with seed 0 (the function Go's `cespare/xxhash.Sum64` computes).
pub(crate) fn xxh64(data: &[u8]) -> u64 {
    let mut rest = data;
    let mut h = if data.len() >= 32 {
        let (mut v1, mut v2, mut v3, mut v4) = (P1.wrapping_add(P2), P2, 0u64, 0u64.wrapping_sub(P1));
        while rest.len() >= 32 {
            v1 = round(v1, read_u64(rest));
            v2 = round(v2, read_u64(&rest[8..]));
            v3 = round(v3, read_u64(&rest[16..]));
            v4 = round(v4, read_u64(&rest[24..]));
            rest = &rest[32..];
        }
        let mut h = v1
            .rotate_left(1)
            .wrapping_add(v2.rotate_left(7))
            .wrapping_add(v3.rotate_left(12))
            .wrapping_add(v4.rotate_left(18));
        for v in [v1, v2, v3, v4] {
            h = merge_round(h, v);
        }
        h
    } else {
        P5
    };
    h = h.wrapping_add(data.len() as u64);
    while rest.len() >= 8 {
        h ^= round(0, read_u64(rest));
        h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
        rest = &rest[8..];
    }
    if rest.len() >= 4 {
        h ^= read_u32(rest).wrapping_mul(P1);
        h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        rest = &rest[4..];
    }
    for &b in rest {
        h ^= u64::from(b).wrapping_mul(P5);
        h = h.rotate_left(11).wrapping_mul(P1);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xxh64_reference_vectors() {
        // Reference values of XXH64 with seed 0 (xxHash's own test vectors).
        assert_eq!(xxh64(b""), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxh64(b"a"), 0xD24E_C4F1_A98C_6E5B);
        assert_eq!(xxh64(b"abc"), 0x44BC_2CF5_AD77_0999);
    }

    #[test]
    fn complements_partition_the_series() {
        let input: Vec<StepSeries> = (0..50)
            .map(|i| {
                let mut s = StepSeries::new(Labels::from_pairs([("i", i.to_string())]), false, 1);
                s.vals[0] = Some(1.0);
                s
            })
            .collect();
        for r in [0.0, 0.2, 0.5, 0.9] {
            let a = limit_ratio(&input, &[r], 1);
            let b = limit_ratio(&input, &[-(1.0 - r)], 1);
            assert_eq!(a.len() + b.len(), input.len(), "ratio {r}");
            assert!(a.iter().all(|s| !b.iter().any(|t| t.labels == s.labels)));
        }
        assert_eq!(limit_ratio(&input, &[1.5], 1).len(), 50);
        assert!(limit_ratio(&input, &[f64::NAN], 1).is_empty());
    }
}
