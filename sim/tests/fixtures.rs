//! The rendered output matches real Istio data: label names and order from Istio's stats-filter
//! expectations, and histogram bounds from a real sidecar scrape.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{mesh, parse};
use meshfed_model::fixtures::fixture_dir;
use meshfed_sim::SimConfig;

/// (metric, reporter, label names in order) from one stats-filter template, skipping labels
/// that only appear when the test enables additional labels.
fn expected_labels(path: &Path) -> (String, String, Vec<String>) {
    let text = std::fs::read_to_string(path).expect("fixture readable");
    let metric = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("name: "))
        .expect("name line")
        .to_string();
    let mut names = Vec::new();
    let mut reporter = String::new();
    let mut skipping = false;
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim();
        if t.starts_with("{{- if eq .Vars.EnableAdditionalLabels") {
            skipping = true;
        } else if skipping && t.starts_with("{{- end") {
            skipping = false;
        } else if let Some(n) = t.strip_prefix("- name: ") {
            if skipping {
                continue;
            }
            if n == "reporter" {
                let v = lines
                    .peek()
                    .map(|l| l.trim().trim_start_matches("value: ").to_string());
                reporter = v.unwrap_or_default();
            }
            if !names.iter().any(|x| x == n) {
                names.push(n.to_string());
            }
        }
    }
    (metric, reporter, names)
}

#[test]
fn istio_labels_have_the_stats_filter_names_and_order() {
    let Some(dir) = fixture_dir("istio-stats-filter-expected") else {
        return;
    };
    let (m, _) = mesh(SimConfig {
        extra_namespaces: 0,
        ..SimConfig::quiet()
    });
    let all: Vec<common::Line> = m
        .topology()
        .pods
        .iter()
        .flat_map(|p| parse(&m.render_at(&p.name, 120_000).expect("render")))
        .collect();
    let files = [
        "client_request_total.yaml.tmpl",
        "server_request_total.yaml.tmpl",
        "tcp_client_sent_bytes.yaml.tmpl",
        "tcp_server_sent_bytes.yaml.tmpl",
        "tcp_client_received_bytes.yaml.tmpl",
        "tcp_server_received_bytes.yaml.tmpl",
        "tcp_client_connection_open.yaml.tmpl",
        "tcp_server_connection_open.yaml.tmpl",
        "tcp_client_connection_close.yaml.tmpl",
        "tcp_server_connection_close.yaml.tmpl",
        "istio_build.yaml",
    ];
    for f in files {
        let (metric, reporter, want) = expected_labels(&dir.join(f));
        let ours: Vec<&common::Line> = all
            .iter()
            .filter(|l| {
                l.name == metric && (reporter.is_empty() || l.get("reporter") == Some(reporter.as_str()))
            })
            .collect();
        assert!(
            !ours.is_empty(),
            "{f}: no {metric} reporter={reporter} series rendered"
        );
        for l in ours {
            let got: Vec<&str> = l.labels.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(got, want, "{f}: label order of {metric}");
        }
    }
    // The histograms carry the same labels as istio_requests_total, then `le`.
    let (_, _, want) = expected_labels(&dir.join("client_request_total.yaml.tmpl"));
    for l in all
        .iter()
        .filter(|l| l.name == "istio_request_duration_milliseconds_bucket")
    {
        if l.get("reporter") == Some("source") {
            let got: Vec<&str> = l.labels.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(&got[..got.len() - 1], want.as_slice());
            assert_eq!(got.last(), Some(&"le"));
        }
    }
}

#[test]
fn histogram_bounds_match_a_real_sidecar() {
    let Some(dir) = fixture_dir("istio-sidecar") else {
        return;
    };
    let text =
        std::fs::read_to_string(dir.join("datadog/istio-1.5-fixture_istio-merged.txt")).expect("fixture");
    let real = |fam: &str| -> Vec<String> {
        let lines = text.lines().filter(|l| l.starts_with(&format!("{fam}_bucket{{")));
        let les: Vec<String> = lines
            .filter_map(|l| {
                l.split("le=\"")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .map(String::from)
            })
            .collect();
        let first_series = les
            .iter()
            .position(|le| le == "+Inf")
            .map_or(les.len(), |i| i + 1);
        les[..first_series].to_vec()
    };
    let (m, _) = mesh(SimConfig::quiet());
    let pod = &m.topology().pods[0].name;
    let ours = parse(&m.render_at(pod, 100_000).expect("render"));
    for fam in [
        "istio_request_duration_milliseconds",
        "istio_request_bytes",
        "istio_response_bytes",
    ] {
        let want = real(fam);
        assert_eq!(want.len(), 20, "{fam} in fixture");
        let first = ours
            .iter()
            .find(|l| l.name == format!("{fam}_bucket"))
            .expect("bucket");
        let got: Vec<String> = ours
            .iter()
            .filter(|l| {
                l.name == first.name
                    && l.labels[..l.labels.len() - 1] == first.labels[..first.labels.len() - 1]
            })
            .map(|l| l.get("le").unwrap_or_default().to_string())
            .collect();
        assert_eq!(got, want, "{fam} bounds");
    }
}

#[test]
fn families_carry_type_lines_only_once_and_before_samples() {
    let (m, _) = mesh(SimConfig::quiet());
    let pod = &m.topology().pods[0].name;
    let text = m.render_at(pod, 100_000).expect("render");
    let mut seen = BTreeSet::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap_or_default().to_string();
            assert!(seen.insert(name.clone()), "family {name} declared twice");
            current = name;
        } else {
            assert!(!line.starts_with('#'), "Envoy emits no HELP lines");
            assert!(line.starts_with(&current), "{line} outside its family {current}");
        }
    }
    assert!(seen.contains("envoy_server_live") && seen.contains("istio_requests_total"));
}
