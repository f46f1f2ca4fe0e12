//! The real Istio 1.24 ztunnel scrape (TCP only, both reporters for every connection) through the
//! edge table: seven bookinfo edges, each counted once.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use meshfed_aggregator::graph::view::build;
use meshfed_aggregator::graph::{EdgeTable, GraphQuery};
use meshfed_model::Labels;
use meshfed_model::exposition::{Format, parse};
use meshfed_model::fixtures::fixture_dir;

fn load() -> Option<Vec<(Labels, f64)>> {
    let dir = fixture_dir("istio-sidecar/datadog")?;
    let body = std::fs::read_to_string(dir.join("istio-1.24-fixture_ztunnel.txt")).unwrap();
    let mut out = Vec::new();
    for family in parse(&body, Format::PrometheusText).unwrap() {
        for s in family.samples {
            let mut b = s.labels.to_builder();
            b.set("cluster", "Kubernetes");
            out.push((b.build(), s.value));
        }
    }
    Some(out)
}

const T0: i64 = 1_700_000_000_000;

/// The fixture as two scrapes 15 s apart in which every counter doubles, through an edge table;
/// the graph over a 1m window at the second scrape.
fn two_scrapes(samples: &[(Labels, f64)]) -> meshfed_aggregator::graph::Graph {
    let table = EdgeTable::new(600_000);
    for (i, (labels, _)) in samples.iter().enumerate() {
        table.observe_series(i as u64, labels);
    }
    let batch = |t: i64, k: f64| -> Vec<(u64, i64, f64)> {
        samples
            .iter()
            .enumerate()
            .map(|(i, (_, v))| (i as u64, t, k * v))
            .collect()
    };
    table.append("Kubernetes", &batch(T0, 1.0));
    table.append("Kubernetes", &batch(T0 + 15_000, 2.0));
    let snap = table.compute(T0 + 15_000, 60_000, true);
    build(&snap, "1m", &GraphQuery::default(), &Default::default())
}

#[test]
fn ztunnel_scrape_yields_seven_deduplicated_edges() {
    let Some(samples) = load() else { return };
    let g = two_scrapes(&samples);
    let edges: Vec<(String, String)> = g
        .edges
        .iter()
        .map(|e| (e.source.clone(), e.target.clone()))
        .collect();
    let expected = [
        ("productpage-v1", "details-v1"),
        ("productpage-v1", "reviews-v1"),
        ("productpage-v1", "reviews-v2"),
        ("productpage-v1", "reviews-v3"),
        ("reviews-v2", "ratings-v1"),
        ("reviews-v3", "ratings-v1"),
        ("traffic-gen", "productpage-v1"),
    ]
    .map(|(s, d)| {
        (
            format!("Kubernetes/default/{s}"),
            format!("Kubernetes/default/{d}"),
        )
    });
    assert_eq!(edges, expected);

    // Only the source's report counts: a counter doubling in 15 s reads as value / 40 per second
    // over a 1m window (Prometheus' extrapolation), never the sum of both reporters.
    let mut source_sent: BTreeMap<(String, String), f64> = BTreeMap::new();
    for (l, v) in &samples {
        if l.metric_name() == Some("istio_tcp_sent_bytes_total") && l.get("reporter") == Some("source") {
            let key = (
                format!("Kubernetes/default/{}", l.get("source_workload").unwrap()),
                format!("Kubernetes/default/{}", l.get("destination_workload").unwrap()),
            );
            *source_sent.entry(key).or_default() += v;
        }
    }
    for e in &g.edges {
        let want = source_sent[&(e.source.clone(), e.target.clone())] / 40.0;
        let got = e.tcp_sent_bytes_per_second;
        assert!(
            (got - want).abs() <= 1e-9 * want.max(1.0),
            "{} -> {}: {got} vs {want}",
            e.source,
            e.target
        );
        assert_eq!(e.protocol, "tcp");
        assert_eq!(e.request_rate, 0.0, "TCP edges carry no requests");
    }
}

#[test]
fn graph_renders_as_dot_and_node_graph_frames() {
    let Some(samples) = load() else { return };
    let g = two_scrapes(&samples);

    let dot = meshfed_aggregator::graph::dot::render(&g);
    assert!(dot.starts_with("digraph meshfed {"));
    assert_eq!(dot.matches(" -> ").count(), 7);

    let frames = meshfed_aggregator::graph::nodegraph::frames(&g);
    let node_fields: Vec<&str> = frames["nodes_fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field_name"].as_str().unwrap())
        .collect();
    for f in [
        "id",
        "title",
        "subtitle",
        "mainstat",
        "secondarystat",
        "arc__success",
        "arc__failed",
    ] {
        assert!(node_fields.contains(&f), "node field {f}");
    }
    for n in frames["nodes"].as_array().unwrap() {
        let arcs = n["arc__success"].as_f64().unwrap() + n["arc__failed"].as_f64().unwrap();
        assert!((arcs - 1.0).abs() < 1e-9, "arcs add up to 1: {n}");
        for f in &node_fields {
            assert!(n.get(*f).is_some(), "node row has {f}: {n}");
        }
    }
    let edge_fields: Vec<&str> = frames["edges_fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field_name"].as_str().unwrap())
        .collect();
    for f in ["id", "source", "target", "mainstat", "secondarystat"] {
        assert!(edge_fields.contains(&f), "edge field {f}");
    }
    assert_eq!(frames["edges"].as_array().unwrap().len(), 7);
}

/// Graphviz accepts the DOT output (`dot` from the graphviz package; scripts/test installs it).
#[test]
#[ignore = "needs Graphviz's dot (scripts/test installs it)"]
fn dot_output_renders_with_graphviz() {
    use std::io::Write;
    let Some(samples) = load() else { return };
    let g = two_scrapes(&samples);
    let dot = meshfed_aggregator::graph::dot::render(&g);
    let mut child = std::process::Command::new(std::env::var("MESHFED_DOT").unwrap_or_else(|_| "dot".into()))
        .args(["-Tsvg"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run Graphviz dot (apt-get install graphviz)");
    child.stdin.take().unwrap().write_all(dot.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "dot failed: {}\n{dot}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = String::from_utf8(out.stdout).unwrap();
    assert!(svg.contains("<svg") && svg.contains("productpage"));
}

/// A collector announces its series before it sends samples; expiry must not forget them in between.
#[test]
fn series_announced_but_not_yet_sampled_survive_expiry() {
    let Some(samples) = load() else { return };
    let table = EdgeTable::new(600_000);
    for (i, (labels, _)) in samples.iter().enumerate() {
        table.observe_series(i as u64, labels);
    }
    let before = table.size();
    assert!(before.0 > 0);
    table.expire();
    assert_eq!(table.size(), before);
}
