//! Model check: any interleaving of appends (in order, out of order, duplicates, stale markers),
//! reads and selects gives exactly what a `BTreeMap` reference says.

#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

use std::collections::BTreeMap;

use meshfed_model::{Labels, MatchOp, Matcher, STALE_NAN_BITS, Sample};
use meshfed_store::{AppendError, AppendStats, SeriesRef, Store, StoreOptions};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Append { series: usize, dt: i64, value: u64 },
    Batch(Vec<(usize, i64, u64)>),
    Read { series: usize, mint: i64, maxt: i64 },
    Select { job: usize, mint: i64, maxt: i64 },
}

/// A few values, chosen so repeats and NaN payloads are common.
fn value_bits() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(STALE_NAN_BITS),
        Just(f64::NAN.to_bits()),
        Just(0f64.to_bits()),
        Just((-0f64).to_bits()),
        Just(1f64.to_bits()),
        (0u32..4).prop_map(|v| f64::from(v).to_bits()),
        any::<u64>(),
    ]
}

/// `dt` is relative to the series' newest timestamp: negative is out of order, 0 a repeat.
fn op() -> impl Strategy<Value = Op> {
    let dt = prop_oneof![-3i64..=0, 1i64..30, Just(15_000i64), Just(1i64 << 40)];
    prop_oneof![
        4 => (0usize..6, dt.clone(), value_bits()).prop_map(|(series, dt, value)| Op::Append { series, dt, value }),
        2 => prop::collection::vec((0usize..6, dt, value_bits()), 0..20).prop_map(Op::Batch),
        1 => (0usize..7, -100i64..2000, 0i64..3000).prop_map(|(series, mint, len)| Op::Read {
            series, mint, maxt: mint + len - 200
        }),
        1 => (0usize..3, -100i64..2000, 0i64..3000).prop_map(|(job, mint, len)| Op::Select {
            job, mint, maxt: mint + len - 200
        }),
        1 => (0usize..3).prop_map(|job| Op::Select { job, mint: i64::MIN, maxt: i64::MAX }),
        1 => (0usize..6).prop_map(|series| Op::Read { series, mint: i64::MIN, maxt: i64::MAX }),
    ]
}

fn labels(i: usize) -> Labels {
    Labels::from_pairs([
        ("__name__", "m".to_owned()),
        ("job", format!("j{}", i % 3)),
        ("i", i.to_string()),
    ])
}

struct Model {
    series: Vec<BTreeMap<i64, u64>>,
    refs: Vec<SeriesRef>,
}

impl Model {
    /// Applies an append to the model, returning what the store must answer.
    fn append(&mut self, i: usize, dt: i64, bits: u64) -> (i64, Result<bool, AppendError>) {
        let s = &mut self.series[i];
        let r = self.refs[i];
        let Some((&newest, &newest_bits)) = s.last_key_value() else {
            s.insert(dt, bits);
            return (dt, Ok(true));
        };
        let t = newest + dt;
        let res = if t < newest {
            Err(AppendError::OutOfOrder {
                series: r,
                timestamp_ms: t,
                newest_ms: newest,
            })
        } else if t == newest && bits == newest_bits {
            Ok(false)
        } else if t == newest {
            Err(AppendError::DuplicateTimestamp {
                series: r,
                timestamp_ms: t,
            })
        } else {
            s.insert(t, bits);
            Ok(true)
        };
        (t, res)
    }
}

fn bits(samples: &[Sample]) -> Vec<(i64, u64)> {
    samples
        .iter()
        .map(|s| (s.timestamp_ms, s.value.to_bits()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_reference_model(chunk in 1usize..6, ops in prop::collection::vec(op(), 0..120)) {
        let store = Store::new(StoreOptions { samples_per_chunk: chunk, ..StoreOptions::default() });
        let refs: Vec<SeriesRef> = (0..6).map(|i| store.get_or_create(&labels(i))).collect();
        let mut model = Model { series: vec![BTreeMap::new(); 6], refs: refs.clone() };
        let mut kept = 0u64;
        let mut buf = vec![Sample::new(0, 0.0); 3];
        for op in ops {
            match op {
                Op::Append { series, dt, value } => {
                    let (t, want) = model.append(series, dt, value);
                    let got = store.append(refs[series], t, f64::from_bits(value));
                    prop_assert_eq!(got, want.clone().map(|_| ()));
                    kept += u64::from(want == Ok(true));
                }
                Op::Batch(items) => {
                    let mut want = AppendStats::default();
                    let mut batch = Vec::new();
                    for (series, dt, value) in items {
                        let (t, res) = model.append(series, dt, value);
                        match res {
                            Ok(true) => want.appended += 1,
                            Ok(false) => want.unchanged += 1,
                            Err(AppendError::OutOfOrder { .. }) => want.out_of_order += 1,
                            Err(_) => want.duplicate += 1,
                        }
                        batch.push((refs[series], t, f64::from_bits(value)));
                    }
                    kept += want.appended;
                    prop_assert_eq!(store.append_batch(&batch), want);
                }
                Op::Read { series, mint, maxt } => {
                    let r = refs.get(series).copied().unwrap_or(SeriesRef(99));
                    store.read_samples(r, mint, maxt, &mut buf);
                    let want: Vec<(i64, u64)> = model.series.get(series).map_or(Vec::new(), |s| {
                        if mint > maxt { return Vec::new(); }
                        s.range(mint..=maxt).map(|(t, v)| (*t, *v)).collect()
                    });
                    prop_assert_eq!(bits(&buf), want);
                }
                Op::Select { job, mint, maxt } => {
                    let m = [Matcher::equal("job", format!("j{job}")), Matcher::new(MatchOp::Regex, "__name__", "m").unwrap()];
                    let got: Vec<SeriesRef> = store.select(&m, mint, maxt).into_iter().map(|h| h.series).collect();
                    let mut want: Vec<(Labels, SeriesRef)> = (0..6)
                        .filter(|&i| i % 3 == job && mint <= maxt && model.series[i].range(mint..=maxt).next().is_some())
                        .map(|i| (labels(i), refs[i]))
                        .collect();
                    want.sort();
                    prop_assert_eq!(got, want.into_iter().map(|w| w.1).collect::<Vec<_>>());
                }
            }
        }
        prop_assert_eq!(store.stats().samples, kept);
        prop_assert_eq!(store.stats().series, 6);
        for (i, r) in refs.iter().enumerate() {
            store.read_samples(*r, i64::MIN, i64::MAX, &mut buf);
            let want: Vec<(i64, u64)> = model.series[i].iter().map(|(t, v)| (*t, *v)).collect();
            prop_assert_eq!(bits(&buf), want);
        }
    }
}

#[test]
fn unknown_refs_are_refused_and_counted() {
    let store = Store::new(StoreOptions::default());
    let r = store.get_or_create(&labels(0));
    assert_eq!(
        store.append(SeriesRef(7), 1, 1.0),
        Err(AppendError::UnknownSeries(SeriesRef(7)))
    );
    assert_eq!(
        store.append(SeriesRef(u64::MAX), 1, 1.0),
        Err(AppendError::UnknownSeries(SeriesRef(u64::MAX)))
    );
    let stats = store.append_batch(&[(r, 1, 1.0), (SeriesRef(1 << 40), 1, 1.0)]);
    assert_eq!(
        stats,
        AppendStats {
            appended: 1,
            unknown_series: 1,
            ..AppendStats::default()
        }
    );
    let mut buf = vec![Sample::new(1, 1.0)];
    store.read_samples(SeriesRef(9), i64::MIN, i64::MAX, &mut buf);
    assert!(buf.is_empty());
    assert_eq!(store.labels(SeriesRef(9)), None);
    assert_eq!(store.labels(r), Some(labels(0)));
    assert_eq!(store.get(&labels(0)), Some(r));
    assert_eq!(store.get(&labels(1)), None);
}

#[test]
fn stale_markers_are_stored_bit_exactly() {
    let store = Store::new(StoreOptions::default());
    let r = store.get_or_create(&labels(0));
    store.append(r, 1000, 5.0).unwrap();
    store.append(r, 2000, f64::from_bits(STALE_NAN_BITS)).unwrap();
    store.append(r, 3000, f64::NAN).unwrap();
    let mut buf = Vec::new();
    store.read_samples(r, 0, 10_000, &mut buf);
    assert_eq!(
        bits(&buf),
        [
            (1000, 5f64.to_bits()),
            (2000, STALE_NAN_BITS),
            (3000, f64::NAN.to_bits())
        ]
    );
    assert!(meshfed_model::is_stale_nan(buf[1].value) && !meshfed_model::is_stale_nan(buf[2].value));
}
