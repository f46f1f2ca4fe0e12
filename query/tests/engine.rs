//! Table-driven engine tests with hand-computed expectations.

use std::sync::Arc;

use meshfed_model::{Labels, stale_nan};
use meshfed_query::{Engine, EngineOptions, QueryError, Value};
use meshfed_store::{Store, StoreOptions};

type Pairs<'a> = &'a [(&'a str, &'a str)];
type Samples<'a> = &'a [(f64, f64)];
type RateCase<'a> = (&'a str, Samples<'a>, &'a str, f64, f64);
type BucketCase<'a> = (&'a [(&'a str, f64)], f64, f64);
type VectorCase<'a> = (&'a str, &'a [(Pairs<'a>, f64)]);

/// Builds an engine over series given as `(labels, [(seconds, value)])`.
fn engine(series: &[(Pairs<'_>, Samples<'_>)]) -> Engine {
    let store = Arc::new(Store::new(StoreOptions::default()));
    for (labels, samples) in series {
        let r = store.get_or_create(&Labels::from_pairs(labels.iter().copied()));
        for (t, v) in samples.iter() {
            store.append(r, (t * 1000.0) as i64, *v).expect("append");
        }
    }
    Engine::new(store, EngineOptions::default())
}

fn l(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

/// Instant query result as `(labels, value)` sorted by labels.
fn instant(e: &Engine, q: &str, t_s: f64) -> Vec<(Labels, f64)> {
    match e.query_instant(q, (t_s * 1000.0) as i64) {
        Ok(Value::Vector { mut samples, .. }) => {
            samples.sort_by(|a, b| a.0.cmp(&b.0));
            samples
        }
        Ok(Value::Scalar { value, .. }) => vec![(Labels::empty(), value)],
        other => panic!("{q}: unexpected {other:?}"),
    }
}

fn assert_close(q: &str, got: f64, want: f64) {
    let ok =
        got == want || (got.is_nan() && want.is_nan()) || (got - want).abs() <= 1e-9 * want.abs().max(1.0);
    assert!(ok, "{q}: got {got}, want {want}");
}

const C: &[(&str, &str)] = &[("__name__", "c"), ("job", "a")];

#[test]
fn rate_extrapolation_cases() {
    // Samples every 15s from 10s to 55s; window (0, 60].
    let cases: &[RateCase<'_>] = &[
        // Close to both edges: extrapolate fully to 60s of data.
        (
            "full",
            &[(10., 10.), (25., 20.), (40., 30.), (55., 40.)],
            "increase(c[1m])",
            60.,
            30. * 60. / 45.,
        ),
        (
            "rate",
            &[(10., 10.), (25., 20.), (40., 30.), (55., 40.)],
            "rate(c[1m])",
            60.,
            30. * 60. / 45. / 60.,
        ),
        // Zero-point clamp: the counter would hit 0 1.5s before the first sample.
        (
            "zero clamp",
            &[(10., 1.), (25., 11.), (40., 21.), (55., 31.)],
            "increase(c[1m])",
            60.,
            30. * 51.5 / 45.,
        ),
        // Counter reset 20 -> 5 adds 20.
        (
            "reset",
            &[(10., 10.), (25., 20.), (40., 5.), (55., 15.)],
            "increase(c[1m])",
            60.,
            25. * 60. / 45.,
        ),
        // Far from both edges: half an interval each side, start clamped by the zero point.
        (
            "sparse",
            &[(30., 0.), (45., 15.)],
            "rate(c[2m])",
            120.,
            22.5 / 120.,
        ),
        // delta has no counter semantics and no zero clamp.
        ("delta", &[(30., 5.), (45., 20.)], "delta(c[2m])", 120., 30.),
        // irate after a reset uses the last value.
        (
            "irate",
            &[(10., 10.), (25., 20.), (40., 5.)],
            "irate(c[1m])",
            60.,
            5. / 15.,
        ),
        (
            "idelta",
            &[(10., 10.), (25., 20.), (40., 5.)],
            "idelta(c[1m])",
            60.,
            -15.,
        ),
    ];
    for (name, samples, q, t, want) in cases {
        let e = engine(&[(C, samples)]);
        let got = instant(&e, q, *t);
        assert_eq!(got.len(), 1, "{name}: {got:?}");
        assert_eq!(got[0].0, l(&[("job", "a")]), "{name}: name dropped");
        assert_close(name, got[0].1, *want);
    }
}

#[test]
fn rate_needs_two_samples_in_left_open_window() {
    let e = engine(&[(C, &[(0., 1.), (60., 2.)])]);
    // The sample at exactly t-range is outside the window.
    assert!(instant(&e, "rate(c[1m])", 60.).is_empty());
    assert_eq!(instant(&e, "rate(c[61s])", 60.).len(), 1);
}

#[test]
fn staleness_and_lookback() {
    let e = engine(&[
        (C, &[(0., 1.), (10., stale_nan())]),
        (&[("__name__", "g")], &[(0., 7.)]),
    ]);
    let cases: &[(&str, f64, usize)] = &[
        ("c", 5., 1),
        ("c", 10., 0),  // stale marker ends the series
        ("c", 100., 0), // and it stays ended
        ("g", 299.999, 1),
        ("g", 300., 0), // lookback is left-open: (t-5m, t]
        ("count_over_time(c[1m])", 30., 1),
    ];
    for (q, t, n) in cases {
        assert_eq!(instant(&e, q, *t).len(), *n, "{q} at {t}");
    }
    // Range vectors drop stale markers.
    assert_eq!(instant(&e, "count_over_time(c[1m])", 30.)[0].1, 1.0);
}

#[test]
fn offset_and_at() {
    let e = engine(&[(C, &[(0., 1.), (60., 2.), (120., 3.)])]);
    assert_eq!(instant(&e, "c offset 1m", 120.)[0].1, 2.0);
    assert_eq!(instant(&e, "c @ 60", 1000.)[0].1, 2.0);
    assert_eq!(instant(&e, "c @ 120 offset 2m", 0.)[0].1, 1.0);
    match e.query_range("c @ end()", 0, 120_000, 60_000) {
        Ok(Value::Matrix(m)) => assert_eq!(m[0].points, vec![(0, 3.0), (60_000, 3.0), (120_000, 3.0)]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn histogram_quantile_cases() {
    let bucket = |le: &'static str| -> Vec<(&'static str, &'static str)> {
        vec![("__name__", "h_bucket"), ("job", "a"), ("le", le)]
    };
    let cases: &[BucketCase<'_>] = &[
        (&[("0.1", 10.), ("0.5", 30.), ("1", 40.), ("+Inf", 50.)], 0.5, 0.4),
        (
            &[("0.1", 10.), ("0.5", 30.), ("1", 40.), ("+Inf", 50.)],
            0.1,
            0.05,
        ),
        // Rank lands in +Inf: the highest finite bound.
        (&[("0.1", 10.), ("0.5", 30.), ("1", 40.), ("+Inf", 50.)], 0.9, 1.0),
        // Non-monotonic counts are forced monotonic (0.5 -> 10).
        (&[("0.1", 10.), ("0.5", 8.), ("1", 40.), ("+Inf", 50.)], 0.5, 0.75),
        // No +Inf bucket: NaN.
        (&[("0.1", 10.), ("0.5", 30.)], 0.5, f64::NAN),
        // No observations: NaN.
        (&[("0.1", 0.), ("+Inf", 0.)], 0.5, f64::NAN),
        // q out of range.
        (&[("0.1", 10.), ("+Inf", 20.)], 1.5, f64::INFINITY),
        (&[("0.1", 10.), ("+Inf", 20.)], -1., f64::NEG_INFINITY),
    ];
    for (buckets, q, want) in cases {
        let labels: Vec<Vec<(&str, &str)>> = buckets.iter().map(|(le, _)| bucket(le)).collect();
        let samples: Vec<[(f64, f64); 1]> = buckets.iter().map(|(_, v)| [(0., *v)]).collect();
        let series: Vec<(Pairs<'_>, Samples<'_>)> = labels
            .iter()
            .zip(&samples)
            .map(|(l, s)| (l.as_slice(), s.as_slice()))
            .collect();
        let e = engine(&series);
        let query = format!("histogram_quantile({q}, h_bucket)");
        let got = instant(&e, &query, 10.);
        assert_eq!(got.len(), 1, "{query}");
        assert_eq!(got[0].0, l(&[("job", "a")]));
        assert_close(&query, got[0].1, *want);
    }
}

fn matching_engine() -> Engine {
    engine(&[
        (
            &[("__name__", "req"), ("instance", "i1"), ("code", "200")],
            &[(0., 10.)],
        ),
        (
            &[("__name__", "req"), ("instance", "i1"), ("code", "500")],
            &[(0., 2.)],
        ),
        (
            &[("__name__", "req"), ("instance", "i2"), ("code", "200")],
            &[(0., 4.)],
        ),
        (
            &[("__name__", "info"), ("instance", "i1"), ("version", "v1")],
            &[(0., 1.)],
        ),
        (
            &[("__name__", "info"), ("instance", "i2"), ("version", "v2")],
            &[(0., 1.)],
        ),
        (&[("__name__", "up"), ("instance", "i1")], &[(0., 1.)]),
        (&[("__name__", "up"), ("instance", "i2")], &[(0., 0.)]),
    ])
}

#[test]
fn vector_matching_and_aggregation() {
    let e = matching_engine();
    let cases: &[VectorCase<'_>] = &[
        (
            "sum by (instance) (req)",
            &[(&[("instance", "i1")], 12.), (&[("instance", "i2")], 4.)],
        ),
        (
            "sum without (code) (req)",
            &[(&[("instance", "i1")], 12.), (&[("instance", "i2")], 4.)],
        ),
        ("count(req)", &[(&[], 3.)]),
        (
            "max by (code) (req)",
            &[(&[("code", "200")], 10.), (&[("code", "500")], 2.)],
        ),
        ("avg(req)", &[(&[], 16. / 3.)]),
        (
            "req * on(instance) group_left(version) info",
            &[
                (&[("code", "200"), ("instance", "i1"), ("version", "v1")], 10.),
                (&[("code", "200"), ("instance", "i2"), ("version", "v2")], 4.),
                (&[("code", "500"), ("instance", "i1"), ("version", "v1")], 2.),
            ],
        ),
        (
            "sum by (instance) (req) / on(instance) up",
            &[
                (&[("instance", "i1")], 12.),
                (&[("instance", "i2")], f64::INFINITY),
            ],
        ),
        ("up == 1", &[(&[("__name__", "up"), ("instance", "i1")], 1.)]),
        (
            "up == bool 1",
            &[(&[("instance", "i1")], 1.), (&[("instance", "i2")], 0.)],
        ),
        ("2 > bool 1", &[(&[], 1.)]),
        (
            "req and on(instance) (up == 1)",
            &[
                (&[("__name__", "req"), ("code", "200"), ("instance", "i1")], 10.),
                (&[("__name__", "req"), ("code", "500"), ("instance", "i1")], 2.),
            ],
        ),
        (
            "up unless on(instance) req{code=\"500\"}",
            &[(&[("__name__", "up"), ("instance", "i2")], 0.)],
        ),
        (
            "up{instance=\"i1\"} or up",
            &[
                (&[("__name__", "up"), ("instance", "i1")], 1.),
                (&[("__name__", "up"), ("instance", "i2")], 0.),
            ],
        ),
        (
            "{__name__=~\"u.\"}",
            &[
                (&[("__name__", "up"), ("instance", "i1")], 1.),
                (&[("__name__", "up"), ("instance", "i2")], 0.),
            ],
        ),
        (
            "topk(1, req)",
            &[(&[("__name__", "req"), ("code", "200"), ("instance", "i1")], 10.)],
        ),
    ];
    for (q, want) in cases {
        let got = instant(&e, q, 10.);
        let mut want: Vec<(Labels, f64)> = want.iter().map(|(p, v)| (l(p), *v)).collect();
        want.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got.len(), want.len(), "{q}: {got:?}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.0, w.0, "{q}");
            assert_close(q, g.1, w.1);
        }
    }
}

#[test]
fn matching_errors_are_execution_errors() {
    let e = matching_engine();
    for q in ["req * on(instance) info", "info * on(instance) req"] {
        match e.query_instant(q, 10_000) {
            Err(QueryError::Execution(_)) => {}
            other => panic!("{q}: {other:?}"),
        }
    }
    assert!(matches!(e.query_instant("sum(", 0), Err(QueryError::BadData(_))));
    assert!(matches!(
        e.query_instant("histogram_count(req)", 0),
        Err(QueryError::Unsupported(_))
    ));
}

#[test]
fn range_query_steps_are_aligned_to_start() {
    let e = engine(&[(C, &[(0., 0.), (15., 15.), (30., 30.), (45., 45.), (60., 60.)])]);
    match e.query_range("c", 7_000, 60_000, 20_000) {
        Ok(Value::Matrix(m)) => {
            assert_eq!(m.len(), 1);
            assert_eq!(m[0].labels, l(C));
            assert_eq!(m[0].points, vec![(7_000, 0.), (27_000, 15.), (47_000, 45.)]);
        }
        other => panic!("{other:?}"),
    }
    match e.query_range("time()", 0, 20_000, 10_000) {
        Ok(Value::Matrix(m)) => assert_eq!(m[0].points, vec![(0, 0.), (10_000, 10.), (20_000, 20.)]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn limits_classify_as_timeout_and_execution() {
    let store = Arc::new(Store::new(StoreOptions::default()));
    let r = store.get_or_create(&l(C));
    for k in 0..100 {
        store.append(r, k * 15_000, k as f64).expect("append");
    }
    let slow = Engine::new(
        store.clone(),
        EngineOptions {
            timeout: std::time::Duration::ZERO,
            ..Default::default()
        },
    );
    assert!(matches!(
        slow.query_instant("c", 60_000),
        Err(QueryError::Timeout(_))
    ));
    let small = Engine::new(
        store,
        EngineOptions {
            max_samples: 10,
            ..Default::default()
        },
    );
    assert!(matches!(
        small.query_instant("c[10m]", 1_000_000),
        Err(QueryError::Execution(_))
    ));
    assert!(matches!(
        small.query_instant("c[1m]", 1_000_000),
        Ok(Value::Matrix(_))
    ));
}

#[test]
fn functions_and_subqueries() {
    let e = engine(&[(C, &[(0., 0.), (60., 60.), (120., 120.), (180., 180.)])]);
    let cases: &[(&str, f64, Pairs<'_>, f64)] = &[
        ("max_over_time(rate(c[2m])[3m:1m])", 180., &[("job", "a")], 1.0),
        (
            "absent(nope{job=\"x\", env=~\"p.*\"})",
            180.,
            &[("job", "x")],
            1.0,
        ),
        (
            "label_replace(c, \"svc\", \"$1-svc\", \"job\", \"(.*)\")",
            180.,
            &[("__name__", "c"), ("job", "a"), ("svc", "a-svc")],
            180.,
        ),
        ("last_over_time(c[5m])", 180., C, 180.),
        ("deriv(c[5m])", 180., &[("job", "a")], 1.0),
        ("predict_linear(c[5m], 60)", 180., &[("job", "a")], 240.0),
        ("changes(c[5m])", 180., &[("job", "a")], 3.0),
        ("timestamp(c)", 200., &[("job", "a")], 180.0),
        ("scalar(c) * 2", 180., &[], 360.0),
        ("clamp_max(c, 100)", 180., &[("job", "a")], 100.0),
        ("quantile_over_time(0.5, c[5m])", 180., &[("job", "a")], 90.0),
        ("day_of_week(vector(86400 * 3))", 0., &[], 0.0),
        ("year(vector(1700000000))", 0., &[], 2023.0),
    ];
    for (q, t, labels, want) in cases {
        let got = instant(&e, q, *t);
        assert_eq!(got.len(), 1, "{q}: {got:?}");
        assert_eq!(got[0].0, l(labels), "{q}");
        assert_close(q, got[0].1, *want);
    }
}
