//! The routing decision: a pure function of the spec, the health view, the topology, the previous
//! decision and the time. No clock, no I/O; the reconcile loop calls it and applies the result.
//!
//! Rules, in the order they are applied:
//! 1. **Stale data or nothing usable → fail-static.** When the health view is older than
//!    `healthPolicy.staleAfter`, or every candidate cluster is failing/unknown, the previous routing
//!    stays exactly as it is (the data plane keeps its last config too).
//! 2. **Leave bad clusters at once.** Weight on a failing, unknown or vanished cluster moves in one
//!    step onto the preferred usable clusters, regardless of cooldown and step size: Envoy's outlier
//!    detection has already done the same per endpoint, and waiting would keep routing to a failure.
//! 3. **Everything else is paced.** Moving toward the target (all weight on the first healthy
//!    cluster in priority order, or the whole healthy set under Envoy's locality balancing) happens
//!    at most once per `cooldown`, by at most `maxWeightShiftPerStep` points, and only onto clusters
//!    that have been healthy for `hysteresis`.

mod classify;
mod shift;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::parse_ms;
use crate::health::HealthView;
use crate::spec::{FailoverMode, HealthPolicy, VirtualDestinationSpec};
use crate::topology::Topology;
use classify::{Candidate, Class, classify, ordered_backing};
use shift::{Weights, add, distance, even, step};

/// Desired routing for one `VirtualDestination`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// Percent of traffic per cluster (non-zero entries only; they add up to 100 when any exist).
    #[serde(default)]
    pub weights: BTreeMap<String, u32>,
    /// Route to the whole host and let Envoy's locality load balancing choose (the converged state
    /// of the locality and `failoverPriority` modes); `weights` then only describes the set.
    #[serde(default)]
    pub locality_lb: bool,
    /// Why the routing is what it is.
    pub reason: String,
    /// When `weights` or `locality_lb` last changed (ms since the epoch).
    pub changed_at_ms: i64,
    /// True when the routing was kept because the data was stale or nothing was usable.
    #[serde(default)]
    pub fail_static: bool,
}

/// The health policy with durations parsed; invalid values fall back to the defaults (validation
/// reports them, decide must still be total).
#[derive(Clone, Debug)]
pub(crate) struct Policy {
    pub error_rate_threshold: f64,
    pub latency_p99_threshold_ms: Option<f64>,
    pub minimum_healthy_fraction: f64,
    pub hysteresis_ms: i64,
    pub cooldown_ms: i64,
    pub max_shift: u32,
    pub stale_ms: i64,
}

impl Policy {
    fn from_spec(p: &HealthPolicy) -> Self {
        let d = HealthPolicy::default();
        let ms = |s: &str, def: &str| {
            let v = parse_ms(s).or_else(|| parse_ms(def)).unwrap_or(0);
            i64::try_from(v).unwrap_or(i64::MAX)
        };
        Self {
            error_rate_threshold: p.error_rate_threshold,
            latency_p99_threshold_ms: p.latency_p99_threshold_ms,
            minimum_healthy_fraction: p.minimum_healthy_fraction,
            hysteresis_ms: ms(&p.hysteresis, &d.hysteresis),
            cooldown_ms: ms(&p.cooldown, &d.cooldown),
            max_shift: p.max_weight_shift_per_step.clamp(1, 100),
            stale_ms: ms(&p.stale_after, &d.stale_after),
        }
    }
}

/// Decides the routing for `spec` at `now_ms`. Pure and total: a spec that failed validation still
/// gets an answer, but callers should not render it.
pub fn decide(
    spec: &VirtualDestinationSpec,
    health: &HealthView,
    topology: &Topology,
    previous: Option<&Decision>,
    now_ms: i64,
) -> Decision {
    let policy = Policy::from_spec(&spec.health_policy);
    let mode = spec.failover_mode();
    let candidates: Vec<Candidate> = ordered_backing(spec, topology)
        .iter()
        .map(|(c, ns, svc)| classify(c, ns, svc, health, &policy, now_ms))
        .collect();
    let order: Vec<&str> = candidates.iter().map(|c| c.cluster.as_str()).collect();
    let nominal = || target(mode, &order, order.len());

    if candidates.is_empty() {
        return keep_or(previous, nominal(), now_ms, "no backing services selected".into());
    }
    let age = now_ms.saturating_sub(health.generated_at_ms);
    if age > policy.stale_ms {
        let why = format!(
            "health data stale ({}s old > {}s)",
            age / 1000,
            policy.stale_ms / 1000
        );
        return keep_or(previous, nominal(), now_ms, why);
    }
    let good: Vec<&Candidate> = candidates.iter().filter(|c| c.class == Class::Good).collect();
    let usable: Vec<&Candidate> = if good.is_empty() {
        candidates.iter().filter(|c| c.class != Class::Bad).collect()
    } else {
        good
    };
    if usable.is_empty() {
        let causes: Vec<String> = candidates.iter().map(Candidate::describe).collect();
        let why = format!("every backend unusable ({})", causes.join("; "));
        return keep_or(previous, nominal(), now_ms, why);
    }
    let usable_order: Vec<&str> = usable.iter().map(|c| c.cluster.as_str()).collect();
    let tgt = target(mode, &usable_order, candidates.len());

    let Some(prev) = previous else {
        let why = format!("initial routing: {}", summary(&candidates));
        return Decision {
            reason: format!("{why}: {}", describe_weights(&tgt)),
            ..tgt_at(tgt, now_ms)
        };
    };

    // Rule 2: weight on clusters that are bad (or gone) leaves at once.
    let is_bad = |c: &str| {
        candidates
            .iter()
            .find(|k| k.cluster == c)
            .is_none_or(|k| k.class == Class::Bad)
    };
    let stranded: u32 = prev
        .weights
        .iter()
        .filter(|(c, _)| is_bad(c))
        .map(|(_, w)| *w)
        .sum();
    if stranded > 0 {
        let mut weights: Weights = prev
            .weights
            .iter()
            .filter(|(c, _)| !is_bad(c))
            .map(|(c, w)| (c.clone(), *w))
            .collect();
        let onto = match mode {
            FailoverMode::Priority => even(&usable_order[..1], stranded),
            _ => even(&usable_order, stranded),
        };
        add(&mut weights, &onto);
        let causes: Vec<String> = prev
            .weights
            .keys()
            .filter(|c| is_bad(c))
            .map(|c| {
                candidates
                    .iter()
                    .find(|k| k.cluster == *c)
                    .map_or(format!("{c} gone from topology"), Candidate::describe)
            })
            .collect();
        let dests: Vec<&str> = onto.keys().map(String::as_str).collect();
        let reason = format!("{}: shift {stranded}% → {}", causes.join("; "), dests.join(", "));
        return Decision {
            weights,
            locality_lb: false,
            reason,
            changed_at_ms: now_ms,
            fail_static: false,
        };
    }

    // Rule 3: paced moves toward the target.
    let unchanged = || {
        let mut d = prev.clone();
        if d.fail_static {
            // Data is usable again: say why the (unchanged) routing stands now.
            d.reason = format!("{}: {}", summary(&candidates), describe_weights(&d));
            d.fail_static = false;
        }
        d
    };
    if prev.weights == tgt.weights && prev.locality_lb == tgt.locality_lb {
        return unchanged();
    }
    if now_ms.saturating_sub(prev.changed_at_ms) < policy.cooldown_ms {
        return unchanged();
    }
    if distance(&prev.weights, &tgt.weights) <= policy.max_shift {
        let reason = format!("{}: {}", summary(&candidates), describe_weights(&tgt));
        return Decision {
            reason,
            ..tgt_at(tgt, now_ms)
        };
    }
    let (weights, moves) = step(&prev.weights, &tgt.weights, &order, policy.max_shift);
    let moved: Vec<String> = moves.iter().map(|(f, t, n)| format!("{n}% {f} → {t}")).collect();
    let reason = format!(
        "{}: shift {} (toward {})",
        summary(&candidates),
        moved.join(", "),
        describe_weights(&tgt)
    );
    Decision {
        weights,
        locality_lb: false,
        reason,
        changed_at_ms: now_ms,
        fail_static: false,
    }
}

/// The converged routing over `usable` (in preference order) when `total` clusters back the host.
fn target(mode: FailoverMode, usable: &[&str], total: usize) -> Decision {
    match mode {
        FailoverMode::Priority => Decision {
            weights: even(&usable[..usable.len().min(1)], 100),
            ..Decision::default()
        },
        FailoverMode::Locality | FailoverMode::FailoverPriority => Decision {
            weights: even(usable, 100),
            locality_lb: !usable.is_empty() && usable.len() == total,
            ..Decision::default()
        },
    }
}

fn tgt_at(d: Decision, now_ms: i64) -> Decision {
    Decision {
        changed_at_ms: now_ms,
        fail_static: false,
        ..d
    }
}

/// Fail-static: the previous routing unchanged (only the reason says why), else `nominal`.
fn keep_or(previous: Option<&Decision>, nominal: Decision, now_ms: i64, why: String) -> Decision {
    match previous {
        Some(p) => Decision {
            reason: format!("{why}: keeping previous routing"),
            fail_static: true,
            ..p.clone()
        },
        None => {
            let reason = format!("{why}: {}", describe_weights(&nominal));
            Decision {
                reason,
                fail_static: true,
                ..tgt_at(nominal, now_ms)
            }
        }
    }
}

fn summary(candidates: &[Candidate]) -> String {
    if candidates.iter().all(|c| c.class == Class::Good) {
        return "all backends healthy".into();
    }
    let notes: Vec<String> = candidates
        .iter()
        .filter(|c| c.class != Class::Good)
        .map(Candidate::describe)
        .collect();
    notes.join("; ")
}

fn describe_weights(d: &Decision) -> String {
    let parts: Vec<String> = d.weights.iter().map(|(c, w)| format!("{c} {w}%")).collect();
    let lb = if d.locality_lb {
        " (locality load balancing)"
    } else {
        ""
    };
    format!("route {}{lb}", parts.join(", "))
}
