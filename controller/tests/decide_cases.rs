//! Table-driven cases for `decide`: how thresholds classify clusters and what routing follows.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::{LOCALITY, NOW, PRIORITY, entry, healthy, topology, vd};
use meshfed_controller::health::{HealthState, HealthView, ServiceHealth};
use meshfed_controller::{Decision, decide};

/// (what, health of cluster-1, expected weights, expected reason).
type Case = (
    &'static str,
    ServiceHealth,
    &'static [(&'static str, u32)],
    &'static str,
);

fn weights(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
    pairs.iter().map(|(c, w)| ((*c).to_owned(), *w)).collect()
}

fn with(first: ServiceHealth) -> HealthView {
    let mut h = healthy();
    h.services[0] = first;
    h
}

fn from_cluster_1() -> Decision {
    Decision {
        weights: weights(&[("cluster-1", 100)]),
        changed_at_ms: NOW - 1,
        reason: "x".into(),
        ..Default::default()
    }
}

#[test]
fn thresholds_classify_and_route() {
    let mut spec = vd(PRIORITY).spec;
    spec.health_policy.latency_p99_threshold_ms = Some(500.0);
    let cases: Vec<Case> = vec![
        (
            "error rate over the spec's threshold, though the model says Healthy",
            ServiceHealth {
                error_rate: Some(0.31),
                ..entry("cluster-1", HealthState::Healthy, 0)
            },
            &[("cluster-2", 100)],
            "cluster-1 web-api Failing (error rate 31% > 5%): shift 100% → cluster-2",
        ),
        (
            "too few healthy endpoints",
            ServiceHealth {
                healthy_endpoint_fraction: Some(0.25),
                ..entry("cluster-1", HealthState::Healthy, 0)
            },
            &[("cluster-2", 100)],
            "cluster-1 web-api Failing (healthy endpoints 25% < 50%): shift 100% → cluster-2",
        ),
        (
            "unknown",
            entry("cluster-1", HealthState::Unknown, NOW),
            &[("cluster-2", 100)],
            "cluster-1 web-api Unknown: shift 100% → cluster-2",
        ),
        (
            "slow is degraded: paced move, not an emergency (cooldown not over: stays)",
            ServiceHealth {
                latency_p99_ms: Some(900.0),
                ..entry("cluster-1", HealthState::Healthy, 0)
            },
            &[("cluster-1", 100)],
            "x",
        ),
        (
            "error rate under the threshold is fine",
            ServiceHealth {
                error_rate: Some(0.01),
                ..entry("cluster-1", HealthState::Healthy, 0)
            },
            &[("cluster-1", 100)],
            "x",
        ),
    ];
    for (what, first, want, reason) in cases {
        let d = decide(&spec, &with(first), &topology(), Some(&from_cluster_1()), NOW);
        assert_eq!(d.weights, weights(want), "{what}: {}", d.reason);
        assert_eq!(d.reason, reason, "{what}");
    }
}

#[test]
fn degraded_moves_after_the_cooldown_by_the_step() {
    let mut spec = vd(PRIORITY).spec;
    spec.health_policy.max_weight_shift_per_step = 30;
    let h = with(entry("cluster-1", HealthState::Degraded, 0));
    let d = decide(&spec, &h, &topology(), Some(&from_cluster_1()), NOW + 60_000);
    assert_eq!(d.weights, weights(&[("cluster-1", 70), ("cluster-2", 30)]));
    assert_eq!(
        d.reason,
        "cluster-1 web-api Degraded: shift 30% cluster-1 → cluster-2 (toward route cluster-2 100%)"
    );
}

#[test]
fn only_degraded_left_is_still_used() {
    let spec = vd(PRIORITY).spec;
    let mut h = healthy();
    h.services[0] = entry("cluster-1", HealthState::Failing, NOW);
    h.services[1] = entry("cluster-2", HealthState::Unknown, NOW);
    h.services[2] = entry("cluster-3", HealthState::Degraded, 0);
    let d = decide(&spec, &h, &topology(), Some(&from_cluster_1()), NOW);
    assert_eq!(d.weights, weights(&[("cluster-3", 100)]));
}

#[test]
fn initial_decisions() {
    let d = decide(&vd(PRIORITY).spec, &healthy(), &topology(), None, NOW);
    assert_eq!(
        (d.weights, d.changed_at_ms),
        (weights(&[("cluster-1", 100)]), NOW)
    );
    assert_eq!(
        d.reason,
        "initial routing: all backends healthy: route cluster-1 100%"
    );
    let d = decide(&vd(LOCALITY).spec, &healthy(), &topology(), None, NOW);
    assert!(d.locality_lb);
    assert_eq!(d.weights, weights(&[("cluster-1", 50), ("cluster-2", 50)]));
}
