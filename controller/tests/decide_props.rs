//! Properties of `decide` under noisy health: it never routes to a failing or unknown cluster while
//! a usable one exists, never makes a routine change faster than the cooldown or larger than the
//! step, only shifts early to leave a bad cluster, and converges to priority order when all are
//! healthy.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::{CLUSTERS, FAILOVER_PRIORITY, NOW, PRIORITY, entry, topology, vd};
use meshfed_controller::duration::parse_ms;
use meshfed_controller::health::{HealthState, HealthView};
use meshfed_controller::spec::VirtualDestinationSpec;
use meshfed_controller::{Decision, decide};
use proptest::prelude::*;

const STATES: [HealthState; 4] = [
    HealthState::Healthy,
    HealthState::Degraded,
    HealthState::Failing,
    HealthState::Unknown,
];

fn is_bad(s: HealthState) -> bool {
    matches!(s, HealthState::Failing | HealthState::Unknown)
}

#[derive(Debug, Clone)]
struct Step {
    dt_ms: i64,
    states: [usize; 3],
    stale: bool,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    // States are sticky (a real health model has hysteresis too): mostly keep the last state.
    let step = (
        0i64..40_000,
        prop::array::uniform3(0usize..12),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(dt_ms, s, stale)| Step {
            dt_ms,
            states: s.map(|x| if x < 4 { x } else { 99 }),
            stale,
        });
    prop::collection::vec(step, 1..80)
}

fn spec(yaml: &str, cooldown_s: u32, hysteresis_s: u32, max_shift: u32) -> VirtualDestinationSpec {
    let mut s = vd(yaml).spec;
    s.health_policy.cooldown = format!("{cooldown_s}s");
    s.health_policy.hysteresis = format!("{hysteresis_s}s");
    s.health_policy.max_weight_shift_per_step = max_shift;
    s
}

/// Runs `steps` through `decide`, checking the per-step properties; returns the last decision,
/// time and health.
fn simulate(spec: &VirtualDestinationSpec, steps: &[Step]) -> (Decision, i64, HealthView) {
    let topo = topology();
    let cooldown = i64::try_from(parse_ms(&spec.health_policy.cooldown).unwrap()).unwrap();
    let max_shift = spec.health_policy.max_weight_shift_per_step;
    let mut now = NOW;
    let mut health = HealthView {
        generated_at_ms: now,
        services: CLUSTERS
            .iter()
            .map(|c| entry(c, HealthState::Healthy, 0))
            .collect(),
    };
    let mut prev: Option<Decision> = None;
    for step in steps {
        now += step.dt_ms;
        for (i, s) in step.states.iter().enumerate() {
            if let Some(state) = STATES
                .get(*s)
                .copied()
                .filter(|st| *st != health.services[i].state)
            {
                health.services[i] = entry(CLUSTERS[i], state, now);
            }
        }
        health.generated_at_ms = if step.stale { now - 3_600_000 } else { now };
        let d = decide(spec, &health, &topo, prev.as_ref(), now);
        let bad = |c: &str| {
            health
                .services
                .iter()
                .find(|h| h.cluster == c)
                .is_none_or(|h| is_bad(h.state))
        };
        assert_eq!(d.weights.values().sum::<u32>(), 100, "{d:?}");
        let any_usable = CLUSTERS.iter().any(|c| !bad(c));
        if !step.stale && any_usable {
            assert!(
                d.weights.keys().all(|c| !bad(c)),
                "routes to a bad cluster while one is usable: {d:?} {health:?}"
            );
        }
        if let Some(p) = &prev {
            let changed = p.weights != d.weights || p.locality_lb != d.locality_lb;
            if step.stale || !any_usable {
                assert!(!changed, "fail-static changed routing: {p:?} -> {d:?}");
            }
            if changed {
                assert_eq!(d.changed_at_ms, now);
                let get = |m: &BTreeMap<String, u32>, c: &str| m.get(c).copied().unwrap_or(0);
                let emergency = CLUSTERS.iter().all(|c| {
                    let (a, b) = (get(&p.weights, c), get(&d.weights, c));
                    (b <= a || !bad(c)) && (b >= a || bad(c))
                });
                let any_left_bad = p.weights.keys().any(|c| bad(c));
                if !(emergency && any_left_bad) {
                    assert!(
                        now - p.changed_at_ms >= cooldown,
                        "routine change inside the cooldown: {p:?} -> {d:?}"
                    );
                    let moved: u32 = d
                        .weights
                        .iter()
                        .map(|(c, w)| w.saturating_sub(get(&p.weights, c)))
                        .sum();
                    assert!(moved <= max_shift, "moved {moved} > {max_shift}: {p:?} -> {d:?}");
                }
                // Never onto a bad cluster (only away from them).
                for c in CLUSTERS {
                    assert!(
                        !(get(&d.weights, c) > get(&p.weights, c) && bad(c)),
                        "shifted onto bad {c}: {p:?} -> {d:?}"
                    );
                }
            } else {
                assert_eq!(d.changed_at_ms, p.changed_at_ms);
            }
        }
        prev = Some(d);
    }
    (prev.unwrap(), now, health)
}

/// After the noise, everything healthy: within hysteresis + enough cooldowns, routing reaches the
/// policy's target.
fn converge(spec: &VirtualDestinationSpec, last: Decision, mut now: i64, mut health: HealthView) -> Decision {
    let topo = topology();
    for (i, c) in CLUSTERS.iter().enumerate() {
        if health.services[i].state != HealthState::Healthy {
            health.services[i] = entry(c, HealthState::Healthy, now);
        }
    }
    let cooldown = i64::try_from(parse_ms(&spec.health_policy.cooldown).unwrap()).unwrap();
    let hysteresis = i64::try_from(parse_ms(&spec.health_policy.hysteresis).unwrap()).unwrap();
    let mut d = last;
    let rounds = 100 / spec.health_policy.max_weight_shift_per_step + 3;
    now += hysteresis;
    for _ in 0..=rounds {
        now += cooldown;
        health.generated_at_ms = now;
        d = decide(spec, &health, &topo, Some(&d), now);
    }
    d
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn priority_mode_is_safe_paced_and_converges(
        steps in steps(), cooldown in 1u32..120, hysteresis in 0u32..60, max_shift in 1u32..=100,
    ) {
        let spec = spec(PRIORITY, cooldown, hysteresis, max_shift);
        let (last, now, health) = simulate(&spec, &steps);
        let d = converge(&spec, last, now, health);
        prop_assert_eq!(d.weights, BTreeMap::from([("cluster-1".to_owned(), 100)]));
    }

    #[test]
    fn locality_mode_is_safe_paced_and_converges(
        steps in steps(), cooldown in 1u32..120, hysteresis in 0u32..60, max_shift in 1u32..=100,
    ) {
        let spec = spec(FAILOVER_PRIORITY, cooldown, hysteresis, max_shift);
        let (last, now, health) = simulate(&spec, &steps);
        let d = converge(&spec, last, now, health);
        prop_assert!(d.locality_lb, "{:?}", d);
    }
}

#[test]
fn recovery_waits_for_hysteresis_then_steps_back_each_cooldown() {
    let spec = spec(PRIORITY, 60, 30, 50);
    let topo = topology();
    let mut health = HealthView {
        generated_at_ms: NOW,
        services: CLUSTERS
            .iter()
            .map(|c| entry(c, HealthState::Healthy, 0))
            .collect(),
    };
    let d0 = decide(&spec, &health, &topo, None, NOW);
    health.services[0] = entry("cluster-1", HealthState::Failing, NOW + 1_000);
    health.generated_at_ms = NOW + 1_000;
    let d1 = decide(&spec, &health, &topo, Some(&d0), NOW + 1_000);
    assert_eq!(d1.weights, BTreeMap::from([("cluster-2".to_owned(), 100)]));
    // Recovered at +2s: not yet (hysteresis 30s, cooldown 60s from +1s).
    health.services[0] = entry("cluster-1", HealthState::Healthy, NOW + 2_000);
    let at = |t: i64, h: &mut HealthView, prev: &Decision| {
        h.generated_at_ms = NOW + t;
        decide(&spec, h, &topo, Some(prev), NOW + t)
    };
    let d2 = at(40_000, &mut health, &d1);
    assert_eq!(d2.weights, d1.weights, "inside the cooldown");
    let d3 = at(61_000, &mut health, &d2);
    assert_eq!(
        d3.weights,
        BTreeMap::from([("cluster-1".to_owned(), 50), ("cluster-2".to_owned(), 50)]),
        "{}",
        d3.reason
    );
    let d4 = at(100_000, &mut health, &d3);
    assert_eq!(d4.weights, d3.weights);
    let d5 = at(121_000, &mut health, &d4);
    assert_eq!(d5.weights, BTreeMap::from([("cluster-1".to_owned(), 100)]));
    assert_eq!(d5.reason, "all backends healthy: route cluster-1 100%");
}

#[test]
fn stale_data_keeps_previous_routing() {
    let spec = spec(PRIORITY, 60, 30, 50);
    let topo = topology();
    let prev = Decision {
        weights: BTreeMap::from([("cluster-3".to_owned(), 100)]),
        changed_at_ms: NOW - 1,
        reason: "x".into(),
        ..Default::default()
    };
    let mut health = HealthView {
        generated_at_ms: NOW - 3_600_000,
        services: CLUSTERS
            .iter()
            .map(|c| entry(c, HealthState::Failing, 0))
            .collect(),
    };
    let d = decide(&spec, &health, &topo, Some(&prev), NOW);
    assert!(d.fail_static && d.weights == prev.weights, "{d:?}");
    assert!(
        d.reason.starts_with("health data stale (3600s old > 60s)"),
        "{}",
        d.reason
    );
    health.generated_at_ms = NOW;
    let d = decide(&spec, &health, &topo, Some(&prev), NOW);
    assert!(d.fail_static && d.weights == prev.weights, "all failing: {d:?}");
}
