use std::collections::HashMap;
use std::sync::Arc;

use crate::{ManualClock, Mesh, SimConfig};

fn mesh(series: usize) -> Mesh {
    let cfg = SimConfig {
        envoy_upstream_series: series,
        ..SimConfig::quiet()
    };
    Mesh::new(&cfg, Arc::new(ManualClock::new())).expect("mesh")
}

/// True for a line (sample or `# TYPE`) of a per-upstream-cluster stat.
fn is_upstream(line: &str) -> bool {
    let name = line.trim_start_matches("# TYPE ");
    super::COUNTERS
        .iter()
        .map(|c| c.0)
        .chain(super::GAUGES.iter().map(|g| g.0))
        .any(|stat| {
            name.strip_prefix("envoy_cluster_")
                .and_then(|r| r.strip_prefix(stat))
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
}

/// Per-upstream-cluster samples of one scrape, keyed by series text.
fn upstream_samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && is_upstream(l))
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').expect("sample line");
            (k.to_string(), v.parse().expect("value"))
        })
        .collect()
}

#[test]
fn exact_count_monotonic_counters_and_default_unchanged() {
    let plain = mesh(0);
    let pod = plain.topology().pods[0].name.clone();
    let base = plain.render_at(&pod, 30_000).expect("render");
    assert!(upstream_samples(&base).is_empty(), "off by default");

    let big = mesh(1_350);
    let at30 = big.render_at(&pod, 30_000).expect("render");
    let at60 = big.render_at(&pod, 60_000).expect("render");
    let (s30, s60) = (upstream_samples(&at30), upstream_samples(&at60));
    assert_eq!(s30.len(), 1_350);
    assert_eq!(s60.len(), 1_350);
    // The rest of the exposition is what it was without the knob.
    let rest: Vec<_> = at30.lines().filter(|l| !is_upstream(l)).collect();
    assert_eq!(rest, base.lines().collect::<Vec<_>>());
    // Deterministic: the same time renders the same text.
    assert_eq!(at30, big.render_at(&pod, 30_000).expect("render"));
    for (k, v) in &s30 {
        let counter = super::COUNTERS
            .iter()
            .any(|c| k.starts_with(&format!("envoy_cluster_{}{{", c.0)));
        if counter {
            assert!(s60[k] >= *v, "{k} went back: {v} -> {}", s60[k]);
        }
    }
    assert!(s30.keys().any(|k| k.contains("cluster_name=\"outbound|")));
    let grew = s30.iter().filter(|(k, v)| s60[*k] > **v).count();
    assert!(grew > 100, "counters move: {grew}");
    // One `# TYPE` per family.
    let mut types: Vec<_> = at30.lines().filter(|l| l.starts_with("# TYPE")).collect();
    let n = types.len();
    types.sort();
    types.dedup();
    assert_eq!(types.len(), n);
}
