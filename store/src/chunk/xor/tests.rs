//! Round-trip tests for the XOR chunk on edge values.

use super::*;
use proptest::prelude::*;

fn encode(samples: &[(i64, f64)]) -> XorAppender {
    let mut a = XorAppender::with_capacity(16);
    for &(t, v) in samples {
        a.append(t, v).expect("increasing timestamps");
    }
    a
}

fn assert_round_trip(samples: &[(i64, f64)]) {
    let a = encode(samples);
    assert_eq!(a.count() as usize, samples.len());
    let got: Vec<(i64, u64)> = XorIter::new(a.bytes(), a.count())
        .map(|(t, v)| (t, v.to_bits()))
        .collect();
    let want: Vec<(i64, u64)> = samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();
    assert_eq!(got, want);
    // The finished bytes decode the same.
    let bytes = a.clone().finish();
    assert_eq!(XorIter::new(&bytes, a.count()).count(), samples.len());
}

#[test]
fn edge_values_round_trip_bit_exactly() {
    let stale = f64::from_bits(meshfed_model::STALE_NAN_BITS);
    let values = [
        0.0,
        -0.0,
        f64::NAN,
        stale,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MIN_POSITIVE,
        f64::MAX,
        f64::MIN,
        1.0,
        1.0,
        stale,
        f64::from_bits(1),
        -0.0,
        f64::from_bits(u64::MAX),
    ];
    let samples: Vec<(i64, f64)> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| (i as i64 * 15_000, v))
        .collect();
    assert_round_trip(&samples);
}

#[test]
fn timestamp_edges_round_trip() {
    assert_round_trip(&[]);
    assert_round_trip(&[(i64::MIN, 1.0)]);
    assert_round_trip(&[(i64::MIN, 1.0), (i64::MAX, 2.0)]);
    assert_round_trip(&[(i64::MIN, 1.0), (0, 2.0), (i64::MAX, 3.0)]);
    assert_round_trip(&[
        (-5, 1.0),
        (-4, 1.0),
        (1 << 40, 1.0),
        ((1 << 40) + 1, 1.0),
        (i64::MAX, 0.5),
    ]);
    // Every delta-of-delta bucket boundary, positive and negative.
    let mut t = 0i64;
    let mut delta = 1_000_000_000i64;
    let mut samples = vec![(t, 0.0)];
    for bits in [14u32, 17, 20] {
        for dod in [
            1i64 << (bits - 1),
            (1i64 << (bits - 1)) + 1,
            -(1i64 << (bits - 1)) + 1,
            -(1i64 << (bits - 1)),
        ] {
            delta += dod;
            t += delta;
            samples.push((t, dod as f64));
        }
    }
    assert_round_trip(&samples);
}

#[test]
fn regular_scrapes_compress_well() {
    let samples: Vec<(i64, f64)> = (0..120)
        .map(|i| (1_700_000_000_000 + i * 15_000, (i * 7) as f64))
        .collect();
    let a = encode(&samples);
    assert!(
        a.bytes().len() < 120 * 3,
        "{} bytes for 120 samples",
        a.bytes().len()
    );
}

#[test]
fn non_increasing_timestamps_are_refused() {
    let mut a = encode(&[(10, 1.0)]);
    assert_eq!(a.append(10, 2.0), Err(ChunkError::NotIncreasing));
    assert_eq!(a.append(9, 2.0), Err(ChunkError::NotIncreasing));
    a.append(11, 2.0).expect("increasing");
    assert_eq!(a.append(5, 2.0), Err(ChunkError::NotIncreasing));
    assert_eq!(a.count(), 2);
    assert_round_trip(&[(10, 1.0), (11, 2.0)]);
}

proptest! {
    #[test]
    fn arbitrary_samples_round_trip(
        start in any::<i64>(),
        steps in prop::collection::vec((1u64..u64::MAX / 256, any::<u64>(), 0u8..4), 0..200),
    ) {
        let mut t = start;
        let mut v = 0u64;
        let mut samples = vec![(t, f64::from_bits(v))];
        for (dt, bits, kind) in steps {
            let Some(next) = t.checked_add_unsigned(match kind { 0 => dt, 1 => dt % 100 + 1, _ => 15_000 }) else {
                break;
            };
            t = next;
            v = match kind { 0 => bits, 1 => v, 2 => (v as f64 + 1.0).to_bits(), _ => v ^ (bits & 0xff) };
            samples.push((t, f64::from_bits(v)));
        }
        assert_round_trip(&samples);
    }
}
