//! `for_each_sample` agrees with `parse`: the same samples (labels built on demand, values, timestamps,
//! family types) on every real scrape, on the synthetic Istio payload, on tricky label values and on
//! arbitrary generated bodies; and it fails where `parse` fails.

use std::fs;
use std::path::PathBuf;

use meshfed_model::Labels;
use meshfed_model::exposition::{Format, MetricType, for_each_sample, parse};
use meshfed_model::fixtures::{fixture_dir, istio_scrape};
use proptest::prelude::*;

type Flat = (Labels, u64, Option<i64>, MetricType);

fn via_parse(body: &str, format: Format) -> Result<Vec<Flat>, String> {
    let fams = parse(body, format).map_err(|e| e.to_string())?;
    let mut v: Vec<Flat> = fams
        .iter()
        .flat_map(|f| {
            f.samples
                .iter()
                .map(|s| (s.labels.clone(), s.value.to_bits(), s.timestamp_ms, f.metric_type))
        })
        .collect();
    v.sort_by(|a, b| (&a.0, a.2).cmp(&(&b.0, b.2)));
    Ok(v)
}

fn via_stream(body: &str, format: Format) -> Result<Vec<Flat>, String> {
    let mut v = Vec::new();
    let mut err = None;
    for_each_sample(body, format, |raw| {
        assert!(body[raw.line_offset()..].contains(raw.series_text));
        assert!(raw.series_text.starts_with(raw.name));
        match raw.labels() {
            Ok(l) => v.push((l, raw.value.to_bits(), raw.timestamp_ms, raw.metric_type)),
            Err(e) => err = err.take().or(Some(e.to_string())),
        }
    })
    .map_err(|e| e.to_string())?;
    if let Some(e) = err {
        return Err(e);
    }
    v.sort_by(|a, b| (&a.0, a.2).cmp(&(&b.0, b.2)));
    Ok(v)
}

fn agree(body: &str, format: Format) {
    let (p, s) = (via_parse(body, format), via_stream(body, format));
    match (&p, &s) {
        (Ok(p), Ok(s)) => assert!(p == s, "streaming differs from parse on\n{body}"),
        (Err(_), Err(_)) => {}
        _ => panic!("parse {p:?} but streaming {s:?} on\n{body}"),
    }
}

fn real_scrapes() -> Vec<(PathBuf, Format)> {
    let mut out = Vec::new();
    for sub in [
        "istio-sidecar/datadog",
        "istio-control-plane/datadog",
        "envoy-stats/kuma-dp-metrics",
        "prometheus-textparse",
        "prometheus-textparse/legacy-2024-10",
    ] {
        let Some(dir) = fixture_dir(sub) else { continue };
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for p in entries.flatten().map(|e| e.path()).filter(|p| p.is_file()) {
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            if sub.starts_with("envoy") && !name.ends_with(".in") {
                continue;
            }
            let om = name.ends_with(".om.txt") || name == "omtestdata.txt";
            out.push((
                p,
                if om {
                    Format::OpenMetrics
                } else {
                    Format::PrometheusText
                },
            ));
        }
    }
    out
}

#[test]
fn streaming_agrees_on_real_scrapes() {
    let all = real_scrapes();
    for (path, format) in &all {
        let body = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let n = via_stream(&body, *format).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(Ok(n), via_parse(&body, *format), "{}", path.display());
    }
    println!("streaming agrees with parse on {} real scrapes", all.len());
}

#[test]
fn streaming_agrees_on_synthetic_istio() {
    for commas in [true, false] {
        agree(&istio_scrape(200_000, commas), Format::PrometheusText);
    }
}

#[test]
fn streaming_agrees_on_edge_cases() {
    let text = [
        "a{x=\"UF,URX\",y=\"/a=b\",z=\"}{\",w=\"q\\\"\\\\\\n\",u=\"日本\"} 1\n",
        "  up  {  job = \"a\" , instance=\"b\" , }  1  1700000000000  \n",
        "m{a=\"1\" b=\"2\"} 2\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\nother 1\nh_sum 4\n",
        "dup{a=\"1\",a=\"2\"} 1\n",
        "empty{a=\"\"} 1\n",
        "multi{a=\"x\ny\"} 1\n",
        "bad{a=\"x} 1\n",
        "bad 1 2 3\n",
        "bad{a=\"1\"}\n",
        "x{__name__=\"y\"} 1\n",
    ];
    for body in text {
        agree(body, Format::PrometheusText);
    }
    let om = [
        "# TYPE a counter\na_total{x=\"UF,URX\"} 1 1.5 # {trace_id=\"abc\"} 2 3\na_created 5\n# EOF\n",
        "# TYPE s stateset\ns{s=\"a\"} 1\ns{s=\"b\"} 0\n# EOF\n",
        "a 1\n",
        "a{b=\"1\",b=\"2\"} 1\n# EOF\n",
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 3 # {a=\"x\",a=\"y\"} 0.5\n# EOF\n",
        "a  1\n# EOF\n",
    ];
    for body in om {
        agree(body, Format::OpenMetrics);
    }
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9 ,={}\"\\\\\n#/.:|-]{0,12}",
        "\\PC{0,8}",
        Just("UF,URX".to_owned())
    ]
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

proptest! {
    #[test]
    fn streaming_agrees_on_generated_bodies(
        lines in prop::collection::vec(
            (
                prop_oneof![Just("foo"), Just("foo_bucket"), Just("foo_sum"), Just("bar_total")],
                prop::collection::vec(("[a-c]", value()), 0..4),
                -1e6f64..1e6,
            ),
            0..8,
        ),
        typed in any::<bool>(),
    ) {
        let mut body = String::new();
        if typed {
            body.push_str("# TYPE foo histogram\n");
        }
        for (name, labels, v) in &lines {
            let set: Vec<String> = labels.iter().map(|(n, v)| format!("{n}=\"{}\"", escape(v))).collect();
            body.push_str(&format!("{name}{{{}}} {v}\n", set.join(",")));
        }
        agree(&body, Format::PrometheusText);
        body.push_str("# EOF\n");
        agree(&body, Format::OpenMetrics);
    }
}
