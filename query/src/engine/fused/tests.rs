//! The fused path against the unfused one on the same data: `agg(f(x[r]) + 0)` is not fused and
//! adds nothing, so both must give the same series and bit-identical values, including above
//! the two-thread threshold and with counter resets, staleness markers, gaps and series that
//! end before the range.

use std::sync::Arc;

use meshfed_model::{Labels, stale_nan};
use meshfed_store::{Store, StoreOptions};

use crate::{Engine, EngineOptions, Value};

fn store(series: usize) -> Arc<Store> {
    let store = Arc::new(Store::new(StoreOptions::default()));
    for i in 0..series {
        let labels = Labels::from_pairs([
            ("__name__", "req_total".to_string()),
            ("svc", format!("s{}", i % 7)),
            ("code", ["200", "500", "404"][i % 3].to_string()),
            ("pod", format!("p{i}")),
        ]);
        let r = store.get_or_create(&labels);
        let mut v = (i % 11) as f64;
        // Every 15 s from a per-series phase; some end early, some reset, some go stale.
        let phase = (i as i64 * 1_300) % 15_000;
        let end = if i % 13 == 0 { 20 } else { 120 };
        for k in 0..end {
            let t = phase + k * 15_000;
            if i % 17 == 0 && (40..50).contains(&k) {
                continue;
            }
            v = if i % 5 == 0 && k == 60 {
                1.0
            } else {
                v + ((i * 7 + k as usize) % 5) as f64 * 0.37
            };
            let value = if i % 19 == 0 && k == 90 { stale_nan() } else { v };
            store.append(r, t, value).expect("append");
        }
    }
    store
}

fn points(v: Value) -> Vec<(Labels, Vec<(i64, u64)>)> {
    let Value::Matrix(m) = v else {
        panic!("not a matrix: {v:?}")
    };
    m.into_iter()
        .map(|s| {
            (
                s.labels,
                s.points.into_iter().map(|(t, v)| (t, v.to_bits())).collect(),
            )
        })
        .collect()
}

#[test]
fn fused_equals_unfused() {
    for n in [40, 700] {
        let engine = Engine::new(store(n), EngineOptions::default());
        for agg in ["sum", "avg", "count", "min", "max"] {
            for f in ["rate", "increase", "delta", "irate", "idelta"] {
                for grouping in [
                    "",
                    " by (svc)",
                    " by (code, svc)",
                    " without (pod)",
                    " by (__name__)",
                ] {
                    let fused = format!("{agg}{grouping} ({f}(req_total[1m]))");
                    let plain = format!("{agg}{grouping} ({f}(req_total[1m]) + 0)");
                    let a = points(engine.query_range(&fused, 0, 1_800_000, 15_000).expect("fused"));
                    let b = points(engine.query_range(&plain, 0, 1_800_000, 15_000).expect("plain"));
                    assert!(!a.is_empty(), "{fused}: empty");
                    assert_eq!(a, b, "{fused} with {n} series");
                }
            }
        }
    }
}

#[test]
fn fused_with_offset_and_at() {
    let engine = Engine::new(store(300), EngineOptions::default());
    for sel in ["req_total[2m] offset 3m", "req_total[1m] @ 900"] {
        let fused = format!("sum by (svc) (rate({sel}))");
        let plain = format!("sum by (svc) (rate({sel}) + 0)");
        let a = points(
            engine
                .query_range(&fused, 300_000, 1_500_000, 30_000)
                .expect("fused"),
        );
        let b = points(
            engine
                .query_range(&plain, 300_000, 1_500_000, 30_000)
                .expect("plain"),
        );
        assert!(!a.is_empty(), "{fused}: empty");
        assert_eq!(a, b, "{fused}");
    }
}

#[test]
fn fused_respects_max_samples() {
    let options = EngineOptions {
        max_samples: 1_000,
        ..EngineOptions::default()
    };
    let engine = Engine::new(store(300), options);
    let err = engine.query_range("sum(rate(req_total[1m]))", 0, 1_800_000, 15_000);
    assert!(matches!(err, Err(crate::QueryError::Execution(_))), "{err:?}");
}
