#![allow(clippy::unwrap_used)]

use super::*;

#[test]
fn longer_windows_are_refreshed_in_proportion_to_their_length() {
    let g = GraphService::new(&["1m".into(), "5m".into(), "10m".into()]).unwrap();
    let schedule: Vec<(i64, u64)> = g.refresh_schedule().iter().map(|(&w, &k)| (w, k)).collect();
    assert_eq!(schedule, [(60_000, 1), (300_000, 5), (600_000, 10)]);
    let mut counts = BTreeMap::new();
    for i in 0..20 {
        let now = 1_000_000 + i * 5_000;
        for w in g.refresh(now) {
            *counts.entry(w).or_insert(0) += 1;
            assert_eq!(g.snapshot_time(w), Some(now));
        }
    }
    assert_eq!(counts[&60_000], 20);
    assert_eq!(counts[&300_000], 4);
    assert_eq!(counts[&600_000], 2);
    // A snapshot not due keeps its own instant.
    assert_eq!(g.snapshot_time(600_000), Some(1_000_000 + 10 * 5_000));
    g.refresh_all(2_000_000);
    assert!(
        g.windows()
            .values()
            .all(|&w| g.snapshot_time(w) == Some(2_000_000))
    );
}

#[test]
fn windows_parse_or_are_rejected_by_name() {
    assert_eq!(parse_window("90s"), Ok(90_000));
    assert_eq!(parse_window("1h"), Ok(3_600_000));
    for bad in ["", "m", "0m", "5d", "-1m"] {
        assert!(parse_window(bad).unwrap_err().contains(bad), "{bad}");
    }
}

/// `graph.enabled: false`: the table keeps nothing, while the same series and samples make an
/// edge in a tracking one; both note which cluster delivered.
#[test]
fn a_service_without_tracking_keeps_no_series() {
    let labels = meshfed_model::Labels::from_pairs([
        ("__name__", "istio_requests_total"),
        ("reporter", "source"),
        ("source_workload", "frontend"),
        ("source_workload_namespace", "shop"),
        ("source_cluster", "c1"),
        ("destination_workload", "cart"),
        ("destination_workload_namespace", "shop"),
        ("destination_service_name", "cart"),
        ("destination_service_namespace", "shop"),
        ("destination_cluster", "c1"),
        ("request_protocol", "http"),
        ("response_code", "200"),
    ]);
    let windows = ["1m".to_owned()];
    let on = GraphService::new(&windows).unwrap();
    let off = GraphService::new(&windows).unwrap().without_tracking();
    for g in [&on, &off] {
        g.table.observe_series(7, &labels);
        for k in 0..13 {
            g.table
                .append("c1", &[(7, 1_000_000 + k * 5_000, (k * 10) as f64)]);
        }
        g.refresh_all(1_000_000 + 62_500);
        assert!(g.table.cluster_last_seen().contains_key("c1"));
    }
    assert_eq!(on.table.size(), (1, 1));
    assert_eq!(on.snapshot(60_000, None).edges().count(), 1);
    assert_eq!(off.table.size(), (0, 0));
    assert!(off.snapshot(60_000, None).edges().next().is_none());
    let mut drained = 0;
    off.table.drain_increments(|_, _, _| drained += 1);
    assert_eq!(drained, 0);
}
