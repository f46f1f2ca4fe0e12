#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;

use meshfed_model::Labels;

use super::*;

fn obs(at_s: i64, error_percent: f64) -> Observation {
    Observation {
        at_ms: at_s * 1000,
        requests: 100.0,
        error_percent: Some(error_percent),
        ..Observation::default()
    }
}

/// Feeds `(time s, error %)` observations; returns the state after each.
fn run(steps: &[(i64, f64)]) -> Vec<HealthState> {
    let policy = HealthPolicy::default();
    let t = policy.thresholds("default", "web-api");
    let mut h = ServiceHealth::new(HealthState::Healthy, 0, Vec::new());
    steps
        .iter()
        .map(|&(at, e)| {
            let o = obs(at, e);
            let (candidate, reasons) = state::judge(&o, &t, &policy);
            h.observe(o, candidate, reasons, &policy);
            h.state
        })
        .collect()
}

#[test]
fn one_bad_observation_does_not_flip_state() {
    use HealthState::*;
    assert_eq!(run(&[(5, 0.0), (10, 40.0), (15, 0.0), (20, 0.0)]), [Healthy; 4]);
}

#[test]
fn two_bad_observations_make_it_failing_and_recovery_waits_for_the_clear_window() {
    use HealthState::*;
    let states = run(&[
        (5, 0.0),
        (10, 30.0),
        (15, 30.0), // second consecutive: Failing
        (20, 0.0),  // better streak starts
        (25, 0.0),
        (30, 0.0),
        (35, 0.0), // 15 s of better observations: Healthy
    ]);
    assert_eq!(
        states,
        [Healthy, Healthy, Failing, Failing, Failing, Failing, Healthy]
    );
}

#[test]
fn a_worse_streak_settles_on_its_mildest_state() {
    use HealthState::*;
    // Failing then Degraded observations: two worse ones, the milder wins.
    assert_eq!(run(&[(5, 30.0), (10, 2.0)]), [Healthy, Degraded]);
}

#[test]
fn thresholds_take_per_service_overrides() {
    let policy: HealthPolicy = serde_norway::from_str(
        "error_rate_failing_percent: 10\noverrides:\n  - {service: payments/checkout, error_rate_failing_percent: 1, latency_p99_failing_ms: 800}\n",
    )
    .unwrap();
    policy.validate().unwrap();
    assert_eq!(policy.thresholds("default", "checkout").error_failing, 10.0);
    let t = policy.thresholds("payments", "checkout");
    assert_eq!((t.error_failing, t.p99_failing), (1.0, Some(800.0)));
    let o = Observation {
        p99_ms: Some(900.0),
        ..Observation::default()
    };
    let (s, reasons) = state::judge(&o, &t, &policy);
    assert_eq!(s, HealthState::Failing);
    assert_eq!(reasons, ["p99 latency 900 ms >= 800 ms"]);
}

#[test]
fn invalid_policies_are_rejected_with_the_field_named() {
    let bad = HealthPolicy {
        error_rate_degraded_percent: 10.0,
        error_rate_failing_percent: 5.0,
        ..HealthPolicy::default()
    };
    assert!(
        bad.validate()
            .unwrap_err()
            .contains("error_rate_degraded_percent")
    );
    let bad = HealthPolicy {
        min_healthy_endpoint_fraction: 1.5,
        ..HealthPolicy::default()
    };
    assert!(
        bad.validate()
            .unwrap_err()
            .contains("min_healthy_endpoint_fraction")
    );
}

fn requests(reporter: &str, src: &str, dst_cluster: &str, code: &str) -> Labels {
    Labels::from_pairs([
        ("__name__", "istio_requests_total"),
        ("reporter", reporter),
        ("source_workload", src),
        ("source_workload_namespace", "default"),
        ("source_cluster", "c1"),
        ("destination_workload", "web-api"),
        ("destination_workload_namespace", "default"),
        ("destination_service_name", "web-api"),
        ("destination_service_namespace", "default"),
        ("destination_cluster", dst_cluster),
        ("request_protocol", "http"),
        ("response_code", code),
    ])
}

#[test]
fn model_follows_the_table_and_marks_silent_clusters_unknown() {
    let table = crate::graph::EdgeTable::new(600_000);
    let model = HealthModel::new(HealthPolicy::default());
    let series = [
        requests("source", "frontend", "c2", "200"),
        requests("source", "frontend", "c2", "503"),
        // The destination's view of the same calls: must not be counted twice.
        requests("destination", "frontend", "c2", "200"),
    ];
    for (i, l) in series.iter().enumerate() {
        table.observe_series(i as u64, l);
    }
    let mut events = model.subscribe();
    let fresh: HashMap<Name, i64> = [(Arc::from("c2"), 0)].into_iter().collect();
    let step = |t: i64, ok: f64, failed: f64| {
        table.append("c2", &[(0, t, ok), (1, t, failed), (2, t, ok)]);
        model.evaluate(&table, t, &fresh)
    };
    step(0, 0.0, 0.0);
    step(5_000, 100.0, 0.0);
    assert_eq!(
        model.state_of("c2", "default", "web-api"),
        Some(HealthState::Healthy)
    );
    assert!(
        step(10_000, 170.0, 30.0).is_empty(),
        "one bad observation is not enough"
    );
    let changes = step(15_000, 240.0, 60.0);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].to, HealthState::Failing);
    assert_eq!(changes[0].reasons, ["error rate 30.0% >= 5%"]);
    assert_eq!(events.try_recv().unwrap(), changes[0]);

    let series = model.series();
    let failing: Vec<_> = series
        .iter()
        .filter(|(l, v)| l.get("state") == Some("failing") && *v == 1.0)
        .collect();
    assert_eq!(failing.len(), 1);
    assert_eq!(failing[0].0.get("cluster"), Some("c2"));

    let silent: HashMap<Name, i64> = [(Arc::from("c2"), 60_000)].into_iter().collect();
    let changes = model.evaluate(&table, 100_000, &silent);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].to, HealthState::Unknown);
    assert!(changes[0].reasons[0].contains("no data from cluster c2"));
}
