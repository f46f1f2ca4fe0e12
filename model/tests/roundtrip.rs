//! Property test: rendering arbitrary families and parsing them back gives the same families, in
//! both formats (strict validation for OpenMetrics, so the renderer's output is spec-valid too).

use meshfed_model::exposition::{
    Exemplar, ExpositionSample, Format, MetricFamily, MetricType, Validation, parse_with, render,
};
use meshfed_model::{Labels, METRIC_NAME};
use proptest::prelude::*;

/// Label values: anything, weighted towards the characters that break naive parsers.
fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9 ,={}\"\\\\\n#/.:|-]{1,12}",
        "\\PC{1,8}",
        Just("UF,URX".to_owned()),
        Just("outbound|9080||reviews.default.svc.cluster.local".to_owned()),
    ]
}

fn label_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(("[a-zA-Z_][a-zA-Z0-9_]{0,8}", label_value()), 0..4).prop_map(|v| {
        // `le`, `quantile` and names starting with the family prefix are reserved by the generators.
        v.into_iter()
            .filter(|(n, _)| !n.starts_with("__") && n != "le" && n != "quantile" && n != "i")
            .collect()
    })
}

fn labels(name: &str, pairs: &[(String, String)], extra: &[(&str, String)]) -> Labels {
    let mut all: Vec<(String, String)> = pairs.to_vec();
    all.extend(extra.iter().map(|(n, v)| ((*n).to_owned(), v.clone())));
    all.push((METRIC_NAME.to_owned(), name.to_owned()));
    Labels::from_pairs(all)
}

fn sample(labels: Labels, value: f64, timestamp_ms: Option<i64>) -> ExpositionSample {
    ExpositionSample {
        labels,
        value,
        timestamp_ms,
        exemplar: None,
    }
}

/// Any float, or any non-negative non-NaN one (counter-like samples).
fn value(counter_like: bool) -> BoxedStrategy<f64> {
    if counter_like {
        prop_oneof![
            0.0..1e12f64,
            (0u64..1 << 53).prop_map(|v| v as f64),
            Just(f64::INFINITY)
        ]
        .boxed()
    } else {
        prop_oneof![
            any::<f64>(),
            Just(f64::NAN),
            Just(f64::NEG_INFINITY),
            (-1000i64..1000).prop_map(|v| v as f64)
        ]
        .boxed()
    }
}

/// One family of `index` (its name prefix keeps names from clashing) in `format`.
fn family(index: usize, format: Format) -> impl Strategy<Value = MetricFamily> {
    let om = format == Format::OpenMetrics;
    let types = if om {
        vec![
            MetricType::Counter,
            MetricType::Gauge,
            MetricType::Unknown,
            MetricType::Histogram,
            MetricType::GaugeHistogram,
            MetricType::Summary,
            MetricType::Info,
            MetricType::StateSet,
        ]
    } else {
        vec![
            MetricType::Counter,
            MetricType::Gauge,
            MetricType::Unknown,
            MetricType::Histogram,
            MetricType::Summary,
        ]
    };
    (
        prop::sample::select(types),
        "[a-z][a-z0-9_]{0,6}",
        prop::option::of("\\PC{0,10}|[ a\\\\n\"\n]{0,6}"),
        any::<bool>(),
        prop::collection::vec(
            (
                label_pairs(),
                value(false),
                value(true),
                prop::option::of(any::<i64>()),
            ),
            0..4,
        ),
        prop::option::of((
            label_pairs(),
            value(false),
            prop::option::of(-1_000_000_000_000i64..1_000_000_000_000),
        )),
    )
        .prop_map(move |(t, base, help, unit, series, exemplar)| {
            let unit = (om && unit && matches!(t, MetricType::Gauge | MetricType::Counter))
                .then(|| "seconds".to_owned());
            let name = format!("m{index}_{base}{}", if unit.is_some() { "_seconds" } else { "" });
            let typ = t;
            let mut samples = Vec::new();
            // OpenMetrics timestamps travel as decimal seconds: keep them in a range f64 round-trips.
            let ts = |t: Option<i64>| t.map(|t| if om { t % 1_000_000_000_000_000_000 } else { t });
            for (i, (pairs, v, c, t)) in series.iter().enumerate() {
                let id = [("i", i.to_string())];
                let l = |suffix: &str, extra: &[(&str, String)]| {
                    let mut e = id.to_vec();
                    e.extend(extra.iter().cloned());
                    labels(&format!("{name}{suffix}"), pairs, &e)
                };
                // An info family is one group, where timestamps must be all present or all absent.
                let t = if typ == MetricType::Info { None } else { ts(*t) };
                let mut push = |labels, value| samples.push(sample(labels, value, t));
                match typ {
                    MetricType::Counter if om => {
                        push(l("_total", &[]), *c);
                        push(l("_created", &[]), *v);
                    }
                    MetricType::Counter | MetricType::Gauge | MetricType::Unknown => push(l("", &[]), *v),
                    MetricType::Info => push(l("_info", &[]), 1.0),
                    MetricType::StateSet => {
                        push(l("", &[(name.as_str(), "a".to_owned())]), 1.0);
                        push(l("", &[(name.as_str(), "b".to_owned())]), 0.0);
                    }
                    MetricType::Summary => {
                        push(l("", &[("quantile", "0.5".to_owned())]), c.min(1e9));
                        push(l("", &[("quantile", "1".to_owned())]), c.min(1e9) + 1.0);
                        push(l("_sum", &[]), *c);
                        push(l("_count", &[]), 3.0);
                    }
                    MetricType::Histogram | MetricType::GaugeHistogram => {
                        let n = c.min(1e9).floor();
                        push(l("_bucket", &[("le", "0.25".to_owned())]), n);
                        push(l("_bucket", &[("le", "+Inf".to_owned())]), n + 1.0);
                        let gauge = typ == MetricType::GaugeHistogram;
                        push(l(if gauge { "_gcount" } else { "_count" }, &[]), n + 1.0);
                        push(l(if gauge { "_gsum" } else { "_sum" }, &[]), *c);
                    }
                }
            }
            let mut fam = MetricFamily {
                name: name.clone(),
                help,
                unit,
                metric_type: typ,
                samples,
            };
            if let (true, Some((pairs, v, t))) = (om, exemplar) {
                let slot = fam.samples.iter_mut().find(|s| {
                    let n = s.labels.metric_name().unwrap_or("");
                    n.ends_with("_total") || n.ends_with("_bucket")
                });
                if let Some(s) = slot {
                    let labels = Labels::from_pairs(
                        pairs
                            .into_iter()
                            .map(|(n, v)| (n, v.chars().take(3).collect::<String>())),
                    );
                    s.exemplar = Some(Exemplar {
                        labels,
                        value: v,
                        timestamp_ms: t,
                    });
                }
            }
            fam
        })
}

fn families(format: Format) -> impl Strategy<Value = Vec<MetricFamily>> {
    (0usize..6).prop_flat_map(move |n| (0..n).map(|i| family(i, format)).collect::<Vec<_>>())
}

fn same_value(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

fn assert_same(want: &[MetricFamily], got: &[MetricFamily], rendered: &str) {
    let strip = |fams: &[MetricFamily]| {
        fams.iter()
            .map(|f| {
                let samples: Vec<_> = f
                    .samples
                    .iter()
                    .map(|s| {
                        let ex = s
                            .exemplar
                            .as_ref()
                            .map(|e| (e.labels.clone(), e.value.to_bits(), e.timestamp_ms));
                        (s.labels.clone(), s.timestamp_ms, ex)
                    })
                    .collect();
                (
                    f.name.clone(),
                    f.help.clone(),
                    f.unit.clone(),
                    f.metric_type,
                    samples,
                )
            })
            .collect::<Vec<_>>()
    };
    let (mut w, mut g) = (strip(want), strip(got));
    // Values are compared separately (NaN-aware); exemplar values likewise.
    for fams in [&mut w, &mut g] {
        for f in fams.iter_mut() {
            for s in f.4.iter_mut() {
                if let Some(e) = s.2.as_mut() {
                    e.1 = if f64::from_bits(e.1).is_nan() { 0 } else { e.1 };
                }
            }
        }
    }
    assert_eq!(w, g, "rendered:\n{rendered}");
    for (fw, fg) in want.iter().zip(got) {
        for (sw, sg) in fw.samples.iter().zip(&fg.samples) {
            assert!(
                same_value(sw.value, sg.value),
                "{} {} vs {}\n{rendered}",
                sw.labels,
                sw.value,
                sg.value
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn prometheus_text_round_trips(fams in families(Format::PrometheusText)) {
        let rendered = render(&fams, Format::PrometheusText);
        let parsed = parse_with(&rendered, Format::PrometheusText, Validation::Strict)
            .unwrap_or_else(|e| panic!("{e}\n{rendered}"));
        assert_same(&fams, &parsed, &rendered);
    }

    #[test]
    fn openmetrics_round_trips(fams in families(Format::OpenMetrics)) {
        let rendered = render(&fams, Format::OpenMetrics);
        let parsed = parse_with(&rendered, Format::OpenMetrics, Validation::Strict)
            .unwrap_or_else(|e| panic!("{e}\n{rendered}"));
        assert_same(&fams, &parsed, &rendered);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Garbage built from the format's own punctuation never panics, and `check` agrees with `parse`.
    #[test]
    fn arbitrary_input_never_panics(body in "([a-z_{}=,\" \\\\\n#.:+0-9é日]|# EOF\n|# TYPE |# HELP |# UNIT |le=\"|NaN|Inf){0,60}") {
        for format in [Format::PrometheusText, Format::OpenMetrics] {
            for validation in [Validation::Scrape, Validation::Strict] {
                let parsed = parse_with(&body, format, validation);
                let problems = meshfed_model::exposition::check_with(&body, format, validation);
                prop_assert_eq!(parsed.is_ok(), problems.is_empty());
                if let Err(e) = parsed {
                    prop_assert!(e.line >= 1 && e.column >= 1);
                    prop_assert!(problems.contains(&e));
                }
            }
        }
    }
}
