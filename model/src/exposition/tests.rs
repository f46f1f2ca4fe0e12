//! Unit tests for the exposition parsers and renderer: Istio-shaped label values, 0.0.4 leniency,
//! OpenMetrics specifics and error positions.

use super::*;

fn text(body: &str) -> Vec<MetricFamily> {
    parse(body, Format::PrometheusText).unwrap_or_else(|e| panic!("{e}\n{body}"))
}

fn om(body: &str) -> Vec<MetricFamily> {
    parse_with(body, Format::OpenMetrics, Validation::Strict).unwrap_or_else(|e| panic!("{e}\n{body}"))
}

fn only_sample(fams: &[MetricFamily]) -> &ExpositionSample {
    assert_eq!(fams.len(), 1, "{fams:?}");
    assert_eq!(fams[0].samples.len(), 1, "{fams:?}");
    &fams[0].samples[0]
}

#[test]
fn label_values_with_separators_parse_exactly() {
    let body = concat!(
        r#"istio_requests_total{response_flags="UF,URX",request_path="/a=b",x="}{",y="a\"b\\c\nd",z="日本語 ✓"} 7"#,
        "\n"
    );
    let fams = text(body);
    let s = only_sample(&fams);
    assert_eq!(s.labels.get("response_flags"), Some("UF,URX"));
    assert_eq!(s.labels.get("request_path"), Some("/a=b"));
    assert_eq!(s.labels.get("x"), Some("}{"));
    assert_eq!(s.labels.get("y"), Some("a\"b\\c\nd"));
    assert_eq!(s.labels.get("z"), Some("日本語 ✓"));
    assert_eq!(s.value, 7.0);
    assert_eq!(fams[0].metric_type, MetricType::Unknown);
    assert_eq!(fams, om(&format!("{body}# EOF\n")), "same result in OpenMetrics");
}

#[test]
fn text_is_as_lenient_as_prometheus() {
    let body = "# a plain comment\n#no-space comment\n\n  \t\n   up  {  job = \"a\" , instance=\"b\" , }  1  1700000000000  \nm{a=\"1\" b=\"2\"} 2\n# HELP\n";
    let fams = text(body);
    assert_eq!(fams.len(), 2);
    let up = &fams[0].samples[0];
    assert_eq!(up.labels.get("job"), Some("a"));
    assert_eq!(up.labels.get("instance"), Some("b"));
    assert_eq!(up.timestamp_ms, Some(1_700_000_000_000));
    assert_eq!(fams[1].samples[0].labels.get("b"), Some("2"));
}

#[test]
fn text_values_and_timestamps() {
    let fams = text("a NaN\nb +Inf\nc -Inf\nd Inf\ne 1.5e3 -12\nf 18446744073709551615\n");
    let v: Vec<f64> = fams.iter().map(|f| f.samples[0].value).collect();
    assert!(v[0].is_nan());
    assert_eq!(
        &v[1..],
        [
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            1500.0,
            u64::MAX as f64
        ]
    );
    assert_eq!(fams[4].samples[0].timestamp_ms, Some(-12));
}

#[test]
fn interleaved_and_untyped_families_merge_by_name() {
    let body = "\
# HELP rq Requests.
# TYPE rq counter
rq{a=\"1\"} 1
# TYPE lat histogram
lat_bucket{le=\"1\"} 1
untyped_thing 3
lat_bucket{le=\"+Inf\"} 2
rq{a=\"2\"} 2
lat_sum 3
lat_count 2
untyped_thing{x=\"y\"} 4
# TYPE rq counter
";
    let fams = text(body);
    let names: Vec<_> = fams
        .iter()
        .map(|f| (f.name.as_str(), f.metric_type, f.samples.len()))
        .collect();
    assert_eq!(
        names,
        [
            ("rq", MetricType::Counter, 2),
            ("lat", MetricType::Histogram, 4),
            ("untyped_thing", MetricType::Unknown, 2)
        ]
    );
    assert_eq!(fams[0].help.as_deref(), Some("Requests."));
}

#[test]
fn counter_declared_without_total_takes_its_total_samples() {
    // Istio's ztunnel (Rust prometheus-client) writes the OpenMetrics naming in a 0.0.4 body.
    let body = "\
# HELP istio_tcp_sent_bytes Bytes sent.
# TYPE istio_tcp_sent_bytes counter
istio_tcp_sent_bytes_total{reporter=\"source\"} 10
istio_tcp_sent_bytes_total{reporter=\"destination\"} 20
# TYPE plain counter
plain 1
plain_total 2
other_total 3
";
    let fams = text(body);
    let names: Vec<_> = fams
        .iter()
        .map(|f| (f.name.as_str(), f.metric_type, f.samples.len()))
        .collect();
    assert_eq!(
        names,
        [
            ("istio_tcp_sent_bytes", MetricType::Counter, 2),
            ("plain", MetricType::Counter, 2),
            ("other_total", MetricType::Unknown, 1),
        ]
    );
    assert_eq!(
        fams[0].samples[1].labels.metric_name(),
        Some("istio_tcp_sent_bytes_total"),
        "samples keep their exposed name"
    );
    // The streaming path reports the same type, so a scraper treats them as counters.
    let mut types = Vec::new();
    for_each_sample(body, Format::PrometheusText, |s| {
        types.push((s.name, s.metric_type))
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(types[0], ("istio_tcp_sent_bytes_total", MetricType::Counter));
    assert_eq!(types[4], ("other_total", MetricType::Unknown));
    // A `_total` family of its own stays separate.
    let fams = text("# TYPE a counter\na 1\n# TYPE a_total gauge\na_total 2\n");
    assert_eq!(fams.len(), 2);
    assert_eq!(fams[1].metric_type, MetricType::Gauge);
}

#[test]
fn help_escapes() {
    let fams = text("# HELP a x\\\\y\\nz\\t \"q\"\n# TYPE a gauge\na 1\n");
    assert_eq!(fams[0].help.as_deref(), Some("x\\y\nz\\t \"q\""));
}

#[test]
fn openmetrics_families_and_exemplars() {
    let body = "\
# TYPE rpc counter
# HELP rpc Help.
rpc_total{a=\"1\"} 3 1.5 # {trace_id=\"abc\"} 0.5 1.25
rpc_created{a=\"1\"} 1700000000.123 1.5
# TYPE h histogram
h_bucket{le=\"0.5\"} 1 # {} 0.2
h_bucket{le=\"+Inf\"} 2
h_count 2
h_sum 1
# TYPE s stateset
s{s=\"on\"} 1
s{s=\"off\"} 0
# TYPE i info
i_info{v=\"1\"} 1
# EOF
";
    let fams = om(body);
    assert_eq!(fams.len(), 4);
    let rpc = &fams[0];
    assert_eq!(
        (rpc.name.as_str(), rpc.unit.as_deref(), rpc.metric_type),
        ("rpc", None, MetricType::Counter)
    );
    let ex = rpc.samples[0].exemplar.as_ref().expect("exemplar");
    assert_eq!(
        (ex.labels.get("trace_id"), ex.value, ex.timestamp_ms),
        (Some("abc"), 0.5, Some(1250))
    );
    assert_eq!(rpc.samples[0].timestamp_ms, Some(1500));
    assert_eq!(rpc.samples[1].value, 1_700_000_000.123);
    assert_eq!(
        fams[1].samples[0].exemplar.as_ref().map(|e| e.labels.len()),
        Some(0)
    );
    assert_eq!(fams[2].metric_type, MetricType::StateSet);
    assert_eq!(fams[3].samples[0].labels.metric_name(), Some("i_info"));
}

#[test]
fn unit_must_end_the_name() {
    assert!(
        parse_with(
            "# TYPE rpc counter\n# UNIT rpc seconds\n# EOF\n",
            Format::OpenMetrics,
            Validation::Strict
        )
        .is_err()
    );
    let fams = om("# TYPE rpc_seconds counter\n# UNIT rpc_seconds seconds\nrpc_seconds_total 1\n# EOF\n");
    assert_eq!(fams[0].unit.as_deref(), Some("seconds"));
}

#[test]
fn content_type_negotiation() {
    use Format::*;
    let cases = [
        (
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            OpenMetrics,
        ),
        ("Application/OpenMetrics-Text", OpenMetrics),
        ("text/plain; version=0.0.4", PrometheusText),
        ("", PrometheusText),
        ("application/json", PrometheusText),
    ];
    for (ct, want) in cases {
        assert_eq!(Format::from_content_type(ct), want, "{ct}");
        assert_eq!(Format::from_content_type(want.content_type()), want);
    }
}

#[test]
fn render_formats() {
    let fams = om(
        "# TYPE a counter\n# HELP a x\\\\y\\nz\na_total{l=\"q\\\"\\n\\\\\"} 1 1.5 # {t=\"1\"} 2 3\n# EOF\n",
    );
    assert_eq!(
        render(&fams, Format::OpenMetrics),
        "# HELP a x\\\\y\\nz\n# TYPE a counter\na_total{l=\"q\\\"\\n\\\\\"} 1 1.5 # {t=\"1\"} 2 3\n# EOF\n"
    );
    assert_eq!(
        render(&fams, Format::PrometheusText),
        "# HELP a_total x\\\\y\\nz\n# TYPE a_total counter\na_total{l=\"q\\\"\\n\\\\\"} 1 1500\n"
    );
    for (v, s) in [
        (1.0, "1"),
        (-0.0, "-0"),
        (0.1, "0.1"),
        (1e300, "1e300"),
        (f64::NEG_INFINITY, "-Inf"),
    ] {
        assert_eq!(format_value(v), s);
    }
}

/// (format, body, line, column, reason fragment)
const BAD: &[(Format, &str, usize, usize, &str)] = &[
    (
        Format::PrometheusText,
        "a 1\nb{c=\"d\" 2\n",
        2,
        9,
        "expected a label name",
    ),
    (
        Format::PrometheusText,
        "a 1\n\n  b{c=d} 2\n",
        3,
        7,
        "expected '\"'",
    ),
    (Format::PrometheusText, "a 1\nb x\n", 2, 3, "invalid value"),
    (Format::PrometheusText, "a 1 1.5\n", 1, 5, "invalid timestamp"),
    (Format::PrometheusText, "a 1 2 3\n", 1, 7, "end of the line"),
    (
        Format::PrometheusText,
        "ä{x=\"1\"} 1\n",
        1,
        1,
        "expected a metric name",
    ),
    (
        Format::PrometheusText,
        "a{é=\"1\"} 1\n",
        1,
        3,
        "expected a label name",
    ),
    (
        Format::PrometheusText,
        "# TYPE a gauge\n# TYPE b sometimes\n",
        2,
        10,
        "invalid metric type",
    ),
    (
        Format::PrometheusText,
        "a{x=\"1\",x=\"2\"} 1\n",
        1,
        1,
        "duplicate label name",
    ),
    (Format::PrometheusText, "a{x=\"é\\\"} 1\n", 1, 5, "unterminated"),
    (
        Format::PrometheusText,
        "a{x=\"multi\nline\"} 1\nb{} x\n",
        3,
        5,
        "invalid value",
    ),
    (Format::OpenMetrics, "a 1\n\n# EOF\n", 2, 1, "blank line"),
    (Format::OpenMetrics, "a 1\n", 2, 1, "missing # EOF"),
    (
        Format::OpenMetrics,
        "a{x=\"ü\"}  1\n# EOF\n",
        1,
        10,
        "missing value",
    ),
    (
        Format::OpenMetrics,
        "a{x=\"1\", y=\"2\"} 1\n# EOF\n",
        1,
        9,
        "expected a label name",
    ),
    (
        Format::OpenMetrics,
        "# TYPE a gauge\na 1 z\n# EOF\n",
        2,
        5,
        "invalid timestamp",
    ),
    (Format::OpenMetrics, "# EOF\na 1\n", 2, 1, "after # EOF"),
    (
        Format::OpenMetrics,
        "# TYPE a histogram\na_bucket{le=\"1\"} 1\n# EOF\n",
        2,
        1,
        "+Inf bucket missing",
    ),
];

#[test]
fn errors_point_at_the_right_line_and_column() {
    for &(format, body, line, column, reason) in BAD {
        let err = parse_with(body, format, Validation::Strict).expect_err(body);
        assert_eq!((err.line, err.column), (line, column), "{body:?}: {err}");
        assert!(err.reason.contains(reason), "{body:?}: {err}");
        let all = check(body, format);
        assert_eq!(all.first(), Some(&err), "{body:?}");
    }
}

#[test]
fn check_reports_every_bad_line() {
    let body = "a 1\nb x\nc{ 1\nd 4\ne 1 y\n";
    let lines: Vec<_> = check(body, Format::PrometheusText)
        .iter()
        .map(|e| e.line)
        .collect();
    assert_eq!(lines, [2, 3, 5]);
    let om = "a 1\nb x\n# TYPE c gauge\nc 1 1\nc 2 0\n# EOF\n";
    let lines: Vec<_> = check(om, Format::OpenMetrics).iter().map(|e| e.line).collect();
    assert_eq!(lines, [2, 5]);
}

#[test]
fn never_panics_on_truncations_of_tricky_input() {
    let body = "# HELP ä ü\\\n# TYPE h histogram\nh_bucket{le=\"+Inf\",x=\"é\\\"\\\\\"} 1 2 # {a=\"ß\"} 1 3\nh_sum 1\nh_count 1\n# EOF\n";
    for end in (0..=body.len()).filter(|&i| body.is_char_boundary(i)) {
        for format in [Format::PrometheusText, Format::OpenMetrics] {
            let _ = parse(&body[..end], format);
            let _ = check(&body[..end], format);
        }
    }
}
