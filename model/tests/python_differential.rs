//! Differential test against the reference Python parser (`prometheus_client.parser`, 0.0.4 text):
//! every real 0.0.4 scrape under `shared/fixtures` and generated bodies with hostile label values
//! must give the same families with the same samples.
//!
//! Needs Python with `prometheus_client` (`$MESHFED_PYTHON`, default `python3`), so it is ignored by
//! default: `MESHFED_PYTHON=.venv/bin/python cargo test -p meshfed-model --test python_differential
//! -- --ignored`. An interpreter without `prometheus_client` fails the test rather than skipping.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use meshfed_model::exposition::{Format, MetricFamily, MetricType, parse};
use meshfed_model::fixtures::fixture_dir;
use serde_json::Value;

/// Reads a JSON list of bodies on stdin and prints, for each, either `{"error": ...}` or its
/// families as `prometheus_client` parses them. Values and timestamps are printed with `repr` so
/// nothing is lost in JSON.
const DRIVER: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for body in json.load(sys.stdin):
    try:
        fams = []
        for f in text_string_to_metric_families(body):
            fams.append({
                "name": f.name, "type": f.type, "help": f.documentation,
                "samples": [[s.name, s.labels, repr(float(s.value)),
                             None if s.timestamp is None else repr(float(s.timestamp))]
                            for s in f.samples],
            })
        out.append({"families": fams})
    except Exception as e:
        out.append({"error": repr(e)})
json.dump(out, sys.stdout)
"#;

fn python() -> String {
    std::env::var("MESHFED_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Runs the driver over `bodies`.
fn python_parse(bodies: &[String]) -> Vec<Value> {
    let py = python();
    let mut child = Command::new(&py)
        .args(["-c", DRIVER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {py} (set MESHFED_PYTHON): {e}"));
    let input = serde_json::to_vec(bodies).expect("bodies serialise");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(&input)
        .expect("write to python");
    let out = child.wait_with_output().expect("python runs");
    assert!(
        out.status.success(),
        "{py} failed (is prometheus_client installed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Vec<Value> = serde_json::from_slice(&out.stdout).expect("driver prints JSON");
    assert_eq!(v.len(), bodies.len());
    v
}

/// One sample, normalised: its family's name and type word, its own name, labels without empty
/// values, value bits (NaN canonical) and timestamp in ms.
type Norm = (String, String, String, BTreeMap<String, String>, u64, Option<i64>);

/// What is compared: every family's (name, type word, help), and every sample, sorted.
#[derive(Debug, PartialEq)]
struct Normal {
    families: BTreeSet<(String, String, String)>,
    samples: Vec<Norm>,
}

fn bits(v: f64) -> u64 {
    if v.is_nan() {
        f64::NAN.to_bits()
    } else {
        v.to_bits()
    }
}

fn py_float(s: &str) -> f64 {
    match s {
        "nan" => f64::NAN,
        "inf" => f64::INFINITY,
        "-inf" => f64::NEG_INFINITY,
        _ => s.parse().unwrap_or_else(|e| panic!("python float {s:?}: {e}")),
    }
}

/// The sample-name suffixes a family of this type (as `prometheus_client` names it) owns.
fn owned_suffixes(type_word: &str) -> &'static [&'static str] {
    match type_word {
        "counter" => &["", "_total"],
        "histogram" => &["_bucket", "_sum", "_count"],
        "summary" => &["", "_sum", "_count"],
        _ => &[""],
    }
}

fn normalise_python(v: &Value) -> Result<Normal, String> {
    if let Some(e) = v.get("error") {
        return Err(e.to_string());
    }
    let mut out = Normal {
        families: BTreeSet::new(),
        samples: Vec::new(),
    };
    let mut typed: Vec<(String, String)> = Vec::new();
    for f in v["families"].as_array().expect("families") {
        let mut name = f["name"].as_str().expect("name").to_owned();
        let mut type_word = f["type"].as_str().expect("type").to_owned();
        let help = f["help"].as_str().unwrap_or("").to_owned();
        // Normalisation: when an interleaved family comes back after another (the Istio 1.5
        // merged scrape), prometheus_client starts a new untyped family for it, while Prometheus
        // (and we) keep its samples in the family declared earlier, with that family's type.
        let earlier = (type_word == "unknown" && help.is_empty())
            .then(|| {
                typed.iter().rev().find(|(n, t)| {
                    name.strip_prefix(n.as_str())
                        .is_some_and(|suffix| owned_suffixes(t).contains(&suffix))
                })
            })
            .flatten();
        if let Some((n, t)) = earlier {
            (name, type_word) = (n.clone(), t.clone());
        } else {
            out.families.insert((name.clone(), type_word.clone(), help));
            if type_word != "unknown" {
                typed.push((name.clone(), type_word.clone()));
            }
        }
        for s in f["samples"].as_array().expect("samples") {
            let labels = s[1]
                .as_object()
                .expect("labels")
                .iter()
                // Normalisation: prometheus_client keeps `a=""`; Prometheus (and we) treat an empty
                // value as the label being absent.
                .filter(|(_, v)| v.as_str() != Some(""))
                .map(|(k, v)| (k.clone(), v.as_str().expect("label value").to_owned()))
                .collect();
            let mut sample_name = s[0].as_str().expect("sample name").to_owned();
            if type_word == "counter" && !sample_name.ends_with("_total") {
                // A re-attached counter sample, renamed as prometheus_client names the others.
                sample_name.push_str("_total");
            }
            // Normalisation: prometheus_client gives 0.0.4 timestamps as float seconds (ms / 1000);
            // rounding back to ms is exact for every integer ms a float seconds value can hold.
            let ts = s[3].as_str().map(|t| (py_float(t) * 1000.0).round() as i64);
            let value = bits(py_float(s[2].as_str().expect("value")));
            out.samples
                .push((name.clone(), type_word.clone(), sample_name, labels, value, ts));
        }
    }
    out.samples.sort();
    Ok(out)
}

fn normalise_ours(fams: &[MetricFamily]) -> Normal {
    let mut out = Normal {
        families: BTreeSet::new(),
        samples: Vec::new(),
    };
    for f in fams {
        // A 0.0.4 body that names its counter `foo` in `# TYPE` but its samples `foo_total`
        // (OpenMetrics naming, as Rust's prometheus-client writes it, e.g. Istio's ztunnel) is
        // counter `foo` in both parsers: no normalisation needed.
        let counter = f.metric_type == MetricType::Counter;
        // Normalisation: prometheus_client names a counter family without `_total` and every one
        // of its samples with it (a 0.0.4 `foo` sample of counter `foo` becomes `foo_total`).
        let name = match f.name.strip_suffix("_total") {
            Some(base) if counter => base.to_owned(),
            _ => f.name.clone(),
        };
        // Normalisation: 0.0.4 `untyped` is `unknown` in prometheus_client.
        let type_word = f.metric_type.type_word(Format::OpenMetrics).to_owned();
        // Normalisation: prometheus_client has no "no HELP"; it reports an empty one.
        let help = f.help.clone().unwrap_or_default();
        out.families.insert((name.clone(), type_word.clone(), help));
        for s in &f.samples {
            let mut sample_name = s.labels.metric_name().unwrap_or("").to_owned();
            if counter && !sample_name.ends_with("_total") {
                sample_name.push_str("_total");
            }
            let labels = s
                .labels
                .without_metric_name()
                .iter()
                .map(|l| (l.name.to_string(), l.value.to_string()))
                .collect();
            out.samples.push((
                name.clone(),
                type_word.clone(),
                sample_name,
                labels,
                bits(s.value),
                s.timestamp_ms,
            ));
        }
    }
    out.samples.sort();
    out
}

fn compare(what: &str, body: &str, py: &Value) -> Result<usize, String> {
    let ours = parse(body, Format::PrometheusText).map(|f| normalise_ours(&f));
    match (ours, normalise_python(py)) {
        (Ok(a), Ok(b)) if a == b => Ok(a.samples.len()),
        (Ok(a), Ok(b)) => {
            let only = |x: &Normal, y: &Normal| {
                let fams: Vec<_> = x.families.difference(&y.families).collect();
                let samples: Vec<_> = x
                    .samples
                    .iter()
                    .filter(|s| !y.samples.contains(s))
                    .take(3)
                    .collect();
                format!("families {fams:?}, samples {samples:?}")
            };
            Err(format!(
                "{what} differs:\n only ours:   {}\n only python: {}",
                only(&a, &b),
                only(&b, &a)
            ))
        }
        (Err(e), Err(_)) => Err(format!("{what}: both reject it ({e})")),
        (Ok(_), Err(e)) => Err(format!("{what}: python rejects it: {e}")),
        (Err(e), Ok(_)) => Err(format!("{what}: we reject it: {e}")),
    }
}

/// Every real 0.0.4 scrape under the fixtures.
fn fixtures() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut add = |sub: &str, keep: &dyn Fn(&str) -> bool| {
        let Some(dir) = fixture_dir(sub) else { return };
        let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(keep))
            .collect();
        v.sort();
        out.extend(v);
    };
    add("istio-sidecar/datadog", &|_| true);
    add("istio-control-plane/datadog", &|_| true);
    add("envoy-stats/kuma-dp-metrics", &|n| n.ends_with(".in"));
    add("envoy-stats/kuma-dp-metrics/otel", &|n| n.ends_with(".in"));
    add("envoy-stats/kuma-dp-metrics/profiles", &|n| n.ends_with(".in"));
    add("prometheus-textparse", &|n| n.ends_with(".prom.txt"));
    add("prometheus-textparse/legacy-2024-10", &|n| {
        n.starts_with("promtestdata")
    });
    add("prometheus-promtool-prom", &|n| n == "metrics-test.prom");
    out
}

/// Deterministic generated bodies whose label values hold every character that breaks naive
/// parsers, in counters, gauges, histograms, summaries and untyped samples.
fn generated() -> Vec<String> {
    const VALUES: [&str; 14] = [
        "UF,URX",
        "/a=b",
        "a\"b",
        "back\\slash",
        "{braces}",
        "}",
        "line\nbreak",
        "日本語 ✓",
        "emoji 🚀",
        "outbound|9080||reviews.bookinfo.svc.cluster.local",
        "",
        " spaces ",
        "#hash",
        "k=v,k2=\"v2\"}",
    ];
    let esc = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    let mut bodies = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for i in 0..60 {
        let mut body = String::new();
        let labels = |next: &mut dyn FnMut(usize) -> usize| {
            (0..next(4))
                .map(|j| format!("l{j}=\"{}\"", esc(VALUES[next(VALUES.len())])))
                .collect::<Vec<_>>()
        };
        body.push_str(&format!(
            "# HELP c{i}_total A counter with \\\\ and \\n in its help.\n"
        ));
        body.push_str(&format!("# TYPE c{i}_total counter\n"));
        for k in 0..3 {
            let mut l = labels(&mut next);
            l.push(format!("k=\"{k}\""));
            body.push_str(&format!("c{i}_total{{{}}} {}\n", l.join(","), next(1000)));
        }
        body.push_str(&format!("# TYPE h{i} histogram\n"));
        let mut l = labels(&mut next);
        l.push("le=\"LE\"".to_owned());
        let set = l.join(",");
        for le in ["0.005", "0.5", "1.0", "+Inf"] {
            body.push_str(&format!(
                "h{i}_bucket{{{}}} {}\n",
                set.replace("LE", le),
                next(10)
            ));
        }
        body.push_str(&format!("h{i}_sum 1.5e-3\nh{i}_count 9 1700000000123\n"));
        body.push_str(&format!("# TYPE s{i} summary\n"));
        body.push_str(&format!(
            "s{i}{{quantile=\"0.99\",{}}} NaN\ns{i}_sum -Inf\ns{i}_count 0\n",
            labels(&mut next).join(",")
        ));
        body.push_str(&format!(
            "# TYPE g{i} gauge\ng{i}{{{}}} -0.25\n",
            labels(&mut next).join(",")
        ));
        body.push_str(&format!(
            "u{i}{{{}}} 18446744073709551615\n",
            labels(&mut next).join(",")
        ));
        bodies.push(body);
    }
    bodies
}

#[test]
#[ignore = "needs Python with prometheus_client (MESHFED_PYTHON)"]
fn same_families_and_samples_as_prometheus_client() {
    let paths = fixtures();
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut bodies: Vec<String> = paths.iter().map(|p| read(p)).collect();
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let generated = generated();
    bodies.extend(generated.iter().cloned());
    let results = python_parse(&bodies);

    let mut failures = Vec::new();
    let (mut samples, mut files) = (0, 0);
    for (i, (body, py)) in bodies.iter().zip(&results).enumerate() {
        let what = names
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("generated #{}", i - names.len()));
        match compare(&what, body, py) {
            Ok(n) => {
                samples += n;
                files += 1;
            }
            Err(e) => failures.push(e),
        }
    }
    println!(
        "python differential: {files}/{} inputs agree ({} fixtures, {} generated), {samples} samples",
        bodies.len(),
        names.len(),
        generated.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
