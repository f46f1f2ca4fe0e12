//! Classifying each candidate cluster from the health view and the spec's thresholds.

use crate::health::{HealthState, HealthView};
use crate::topology::Topology;

use super::Policy;

/// How a candidate may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Class {
    /// Healthy for at least the hysteresis time: may receive traffic.
    Good,
    /// Healthy, but not yet for the hysteresis time: used only when nothing is `Good`.
    Recovering,
    /// Degraded: used only when nothing is `Good`.
    Degraded,
    /// Failing, unknown, missing, or over a failing threshold: traffic leaves it.
    Bad,
}

/// A candidate cluster with its backing service and classification.
#[derive(Clone, Debug)]
pub(crate) struct Candidate {
    pub cluster: String,
    pub service: String,
    pub class: Class,
    /// `Failing (error rate 31% > 5%)`-style explanation.
    pub why: String,
}

impl Candidate {
    /// `cluster-1 web-api Failing (error rate 31% > 5%)`.
    pub fn describe(&self) -> String {
        format!("{} {} {}", self.cluster, self.service, self.why)
    }
}

fn pct(f: f64) -> String {
    format!("{}%", (f * 100.0).round())
}

/// Classifies the backing service of `cluster`.
pub(crate) fn classify(
    cluster: &str,
    namespace: &str,
    service: &str,
    health: &HealthView,
    policy: &Policy,
    now_ms: i64,
) -> Candidate {
    let mk = |class, why: String| Candidate {
        cluster: cluster.to_owned(),
        service: service.to_owned(),
        class,
        why,
    };
    let Some(h) = health.get(cluster, namespace, service) else {
        return mk(Class::Bad, "Unknown (no health data)".into());
    };
    let with = |state: &str, extra: Vec<String>| {
        let all: Vec<String> = h.reasons.iter().cloned().chain(extra).collect();
        if all.is_empty() {
            state.to_owned()
        } else {
            format!("{state} ({})", all.join("; "))
        }
    };
    match h.state {
        HealthState::Unknown => return mk(Class::Bad, with("Unknown", vec![])),
        HealthState::Failing => return mk(Class::Bad, with("Failing", vec![])),
        HealthState::Healthy | HealthState::Degraded => {}
    }
    if let Some(rate) = h.error_rate.filter(|r| *r > policy.error_rate_threshold) {
        let why = format!("error rate {} > {}", pct(rate), pct(policy.error_rate_threshold));
        return mk(Class::Bad, format!("Failing ({why})"));
    }
    if let Some(frac) = h
        .healthy_endpoint_fraction
        .filter(|f| *f < policy.minimum_healthy_fraction)
    {
        let why = format!(
            "healthy endpoints {} < {}",
            pct(frac),
            pct(policy.minimum_healthy_fraction)
        );
        return mk(Class::Bad, format!("Failing ({why})"));
    }
    let slow = match (h.latency_p99_ms, policy.latency_p99_threshold_ms) {
        (Some(p99), Some(max)) if p99 > max => Some(format!("p99 {p99:.0}ms > {max:.0}ms")),
        _ => None,
    };
    if h.state == HealthState::Degraded || slow.is_some() {
        return mk(Class::Degraded, with("Degraded", slow.into_iter().collect()));
    }
    if now_ms.saturating_sub(h.since_ms) < policy.hysteresis_ms {
        return mk(Class::Recovering, with("Healthy (recovering)", vec![]));
    }
    mk(Class::Good, "Healthy".into())
}

/// Backing clusters in decision order: the spec's priority list first, then the rest by name.
pub(crate) fn ordered_backing(
    spec: &crate::spec::VirtualDestinationSpec,
    topology: &Topology,
) -> Vec<(String, String, String)> {
    let selected = crate::topology::select(spec, topology);
    let mut backing: Vec<(String, String, String)> = Vec::new();
    for s in &selected {
        if !backing.iter().any(|(c, _, _)| c == s.cluster) {
            backing.push((
                s.cluster.to_owned(),
                s.service.namespace.clone(),
                s.service.name.clone(),
            ));
        }
    }
    let priority: &[String] = spec.failover.as_ref().map_or(&[], |f| &f.priority);
    let rank = |c: &str| priority.iter().position(|p| p == c).unwrap_or(usize::MAX);
    backing.sort_by(|a, b| rank(&a.0).cmp(&rank(&b.0)).then_with(|| a.0.cmp(&b.0)));
    backing
}
