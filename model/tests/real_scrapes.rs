//! Real scrapes from Istio, Envoy (Kuma), Prometheus and `prometheus/common` parse, keep their
//! exact values, and survive a render→parse round trip.

use std::fs;
use std::path::PathBuf;

use meshfed_model::exposition::{ExpositionSample, Format, MetricFamily, MetricType, check, parse, render};
use meshfed_model::fixtures::fixture_dir;

mod common;

use common::{files, read};

/// Every real scrape body, with the format it is written in.
fn scrapes() -> Vec<(PathBuf, Format)> {
    common::scrapes().into_iter().map(|(_, p, f)| (p, f)).collect()
}

#[test]
fn every_real_scrape_parses() {
    let all = scrapes();
    let mut samples = 0;
    for (path, format) in &all {
        let families = parse(&read(path), *format).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!families.is_empty(), "{}: no families", path.display());
        samples += families.iter().map(|f| f.samples.len()).sum::<usize>();
        let problems = check(&read(path), *format);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if matches!(name, "alltypes.5mfs.om.txt" | "omtestdata.txt") {
            // client_golang exposes a histogram with negative buckets and a negative `_sum`, and a
            // summary with negative quantiles and `_sum`, which OpenMetrics 1.0 forbids: scrape mode
            // accepts them (as Prometheus does), the strict check reports each one.
            let found: Vec<_> = problems
                .iter()
                .map(|e| (e.line, e.column, e.reason.as_str()))
                .collect();
            assert_eq!(
                found,
                [
                    (33, 37, "counter-like values cannot be negative"),
                    (
                        35,
                        1,
                        "a histogram with negative buckets cannot have _sum in histogram \"rpc_durations_histogram_seconds\""
                    ),
                    (44, 56, "quantile values cannot be negative"),
                    (47, 45, "counter-like values cannot be negative"),
                ],
                "{name}"
            );
        } else {
            assert!(
                problems.is_empty(),
                "{}: strict check finds {problems:?}",
                path.display()
            );
        }
    }
    println!("real scrapes: {} files, {samples} samples", all.len());
}

fn equal_values(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

fn same(a: &[MetricFamily], b: &[MetricFamily]) -> Result<(), String> {
    if a.len() != b.len() {
        return Err(format!("{} families became {}", a.len(), b.len()));
    }
    for (fa, fb) in a.iter().zip(b) {
        // A 0.0.4 counter `foo` whose samples are all `foo_total` renders as `# TYPE foo_total
        // counter` (as Prometheus' /federate and prometheus_client write it), so it comes back
        // named `foo_total`: the same family.
        let name = |f: &MetricFamily| match (f.metric_type, f.name.strip_suffix("_total")) {
            (MetricType::Counter, Some(base)) => base.to_owned(),
            _ => f.name.clone(),
        };
        let meta = |f: &MetricFamily| (name(f), f.help.clone(), f.unit.clone(), f.metric_type);
        if meta(fa) != meta(fb) || fa.samples.len() != fb.samples.len() {
            return Err(format!(
                "family {} differs: {:?} vs {:?}",
                fa.name,
                meta(fa),
                meta(fb)
            ));
        }
        for (sa, sb) in fa.samples.iter().zip(&fb.samples) {
            let key = |s: &ExpositionSample| {
                (
                    s.labels.clone(),
                    s.timestamp_ms,
                    s.exemplar.as_ref().map(|e| e.labels.clone()),
                )
            };
            if key(sa) != key(sb) || !equal_values(sa.value, sb.value) {
                return Err(format!("sample {} differs: {sa:?} vs {sb:?}", sa.labels));
            }
        }
    }
    Ok(())
}

#[test]
fn real_scrapes_round_trip_through_render() {
    for (path, format) in scrapes() {
        let first = parse(&read(&path), format).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let rendered = render(&first, format);
        let again =
            parse(&rendered, format).unwrap_or_else(|e| panic!("{} re-rendered: {e}", path.display()));
        if let Err(e) = same(&first, &again) {
            panic!("{}: {e}", path.display());
        }
    }
}

#[test]
fn istio_1_5_merged_keeps_exact_values() {
    let Some(dir) = fixture_dir("istio-sidecar/datadog") else {
        return;
    };
    let families = parse(
        &read(&dir.join("istio-1.5-fixture_istio-merged.txt")),
        Format::PrometheusText,
    )
    .expect("istio 1.5 merged parses");
    let family = |name: &str| {
        families
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
    };

    // A u64-sized gauge (an Envoy version hash) keeps the nearest f64, like Prometheus.
    let cds = family("envoy_cluster_manager_cds_version");
    assert_eq!(cds.metric_type, MetricType::Gauge);
    assert_eq!(cds.samples.len(), 1);
    assert_eq!(cds.samples[0].value, 16_440_392_441_958_861_461_u64 as f64);
    assert_eq!(cds.samples[0].labels.len(), 1, "`{{}}` adds no labels");

    // The first istio_requests_total sample: 25 labels, `grpc_response_status=""` is absent.
    let requests = family("istio_requests_total");
    assert_eq!(requests.metric_type, MetricType::Counter);
    let first = &requests.samples[0];
    assert_eq!(first.value, 1.0);
    assert_eq!(first.timestamp_ms, None);
    assert_eq!(first.labels.get("grpc_response_status"), None);
    assert_eq!(first.labels.len(), 25, "24 non-empty labels plus __name__");
    assert_eq!(first.labels.get("response_flags"), Some("-"));
    assert_eq!(
        first.labels.get("source_principal"),
        Some("spiffe://cluster.local/ns/default/sa/bookinfo-productpage")
    );
    assert_eq!(
        first.labels.get("destination_service"),
        Some("reviews.default.svc.cluster.local")
    );
    assert_eq!(first.labels.metric_name(), Some("istio_requests_total"));

    // Histogram parts join their family.
    let duration = family("istio_request_duration_milliseconds");
    assert_eq!(duration.metric_type, MetricType::Histogram);
    let names: std::collections::BTreeSet<_> = duration
        .samples
        .iter()
        .filter_map(|s| s.labels.metric_name())
        .collect();
    assert!(
        names.contains("istio_request_duration_milliseconds_bucket"),
        "{names:?}"
    );
    assert!(
        names.contains("istio_request_duration_milliseconds_sum"),
        "{names:?}"
    );
}

#[test]
fn promtool_fixtures_are_what_they_are_meant_for() {
    let Some(dir) = fixture_dir("prometheus-promtool-prom") else {
        return;
    };
    // `promtool check metrics` input: valid 0.0.4.
    parse(&read(&dir.join("metrics-test.prom")), Format::PrometheusText).expect("metrics-test.prom");
    // `promtool tsdb dump-openmetrics` output: valid OpenMetrics with float-second timestamps.
    for name in [
        "dump-openmetrics-test.prom",
        "dump-openmetrics-roundtrip-test.prom",
    ] {
        let fams =
            parse(&read(&dir.join(name)), Format::OpenMetrics).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            fams.iter()
                .all(|f| f.samples.iter().all(|s| s.timestamp_ms.is_some()))
        );
    }
    let dumped = parse(
        &read(&dir.join("dump-openmetrics-roundtrip-test.prom")),
        Format::OpenMetrics,
    )
    .expect("roundtrip dump");
    let up = dumped.iter().find(|f| f.name == "up").expect("up");
    assert_eq!(up.samples[0].timestamp_ms, Some(1_700_226_034_330));
    // `promtool tsdb dump` output (`{__name__="x", …} v t`) and series JSON are not exposition formats.
    for name in [
        "dump-test-1.prom",
        "dump-test-2.prom",
        "dump-test-3.prom",
        "dump-series-1.prom",
    ] {
        let body = read(&dir.join(name));
        assert!(
            parse(&body, Format::PrometheusText).is_err(),
            "{name} should not parse as 0.0.4"
        );
        assert!(
            parse(&body, Format::OpenMetrics).is_err(),
            "{name} should not parse as OpenMetrics"
        );
    }
}

#[test]
fn expfmt_fuzz_corpus() {
    let Some(dir) = fixture_dir("prometheus-common-expfmt/fuzz/corpus") else {
        return;
    };
    // Where Go's expfmt is stricter than Prometheus' scraper (which we follow), we accept.
    let lenient = [
        "from_test_parse_error_1",  // unknown escape `\t` is kept, as Prometheus does
        "from_test_parse_error_2",  // Prometheus' lexer allows a raw newline inside a label value
        "from_test_parse_error_12", // a second HELP replaces the first
        "from_test_parse_error_13", // a second TYPE is ignored
        "from_test_parse_error_14", // TYPE after samples annotates them
        "from_test_parse_error_7",  // quantile values are not validated in 0.0.4
        "from_test_parse_error_19", // nor are `le` values
        "from_test_parse_error_0",  // no trailing newline
    ];
    for path in files(&dir, |_| true) {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let body = String::from_utf8_lossy(&fs::read(&path).expect("read corpus file")).into_owned();
        let result = parse(&body, Format::PrometheusText);
        let _ = parse(&body, Format::OpenMetrics);
        if name.starts_with("from_test_parse_error") && !lenient.contains(&name) {
            assert!(result.is_err(), "{name} should be rejected");
        } else {
            assert!(result.is_ok(), "{name}: {result:?}");
        }
    }
}

#[test]
fn ztunnel_total_samples_join_their_counter_families() {
    let Some(dir) = fixture_dir("istio-sidecar/datadog") else {
        return;
    };
    let fams = parse(
        &read(&dir.join("istio-1.24-fixture_ztunnel.txt")),
        Format::PrometheusText,
    )
    .expect("ztunnel parses");
    // ztunnel declares `# TYPE istio_tcp_sent_bytes counter` and exposes `..._total` samples.
    let sent = fams
        .iter()
        .find(|f| f.name == "istio_tcp_sent_bytes")
        .expect("istio_tcp_sent_bytes");
    assert_eq!(sent.metric_type, MetricType::Counter);
    assert!(sent.help.is_some());
    assert!(!sent.samples.is_empty());
    assert!(
        sent.samples
            .iter()
            .all(|s| s.labels.metric_name() == Some("istio_tcp_sent_bytes_total"))
    );
    // No counter's samples are left in an untyped `_total` family beside it.
    for f in &fams {
        if f.metric_type == MetricType::Unknown {
            let base = f.name.strip_suffix("_total");
            assert!(
                base.is_none_or(|b| !fams.iter().any(|g| g.name == b)),
                "{} split from its counter",
                f.name
            );
        }
    }
}
