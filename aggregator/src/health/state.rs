//! One service's health as a small state machine: an observation is judged against the
//! thresholds, and the state follows with hysteresis: worse only after
//! `raise_after_observations` consecutive worse observations, better only after observations
//! stayed better for `clear_after_secs`. Unknown (no data from the cluster) is a fact and applies at
//! once; the first observation after it sets the state directly.

use serde::Serialize;

use crate::graph::table::EndpointCounts;
use crate::health::policy::{HealthPolicy, Thresholds};

/// Health of a service in one cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    /// Within every threshold.
    Healthy,
    /// Over a warning threshold.
    Degraded,
    /// Over a failure threshold.
    Failing,
    /// No recent data from the service's cluster.
    Unknown,
}

impl HealthState {
    /// Every state, in severity order (Unknown last).
    pub const ALL: [HealthState; 4] = [Self::Healthy, Self::Degraded, Self::Failing, Self::Unknown];

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Failing => "failing",
            Self::Unknown => "unknown",
        }
    }

    fn severity(self) -> u8 {
        match self {
            Self::Healthy => 0,
            Self::Degraded => 1,
            Self::Failing => 2,
            Self::Unknown => 3,
        }
    }
}

/// What one evaluation saw for a service.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Observation {
    /// Data time of the newest sample in it, ms.
    pub at_ms: i64,
    /// Requests counted.
    pub requests: f64,
    /// Error percentage (when there were enough requests).
    pub error_percent: Option<f64>,
    /// p99 latency in ms (when the histogram had data).
    pub p99_ms: Option<f64>,
    /// Endpoint gauges (when reported).
    pub endpoints: Option<EndpointCounts>,
}

/// Judges an observation: the state it calls for and why.
pub fn judge(o: &Observation, t: &Thresholds, policy: &HealthPolicy) -> (HealthState, Vec<String>) {
    let mut state = HealthState::Healthy;
    let mut reasons = Vec::new();
    let mut raise = |s: HealthState, why: String| {
        if s.severity() > state.severity() {
            state = s;
        }
        reasons.push(why);
    };
    if let Some(e) = o.error_percent {
        if e >= t.error_failing {
            raise(
                HealthState::Failing,
                format!("error rate {e:.1}% >= {}%", t.error_failing),
            );
        } else if e >= t.error_degraded {
            raise(
                HealthState::Degraded,
                format!("error rate {e:.1}% >= {}%", t.error_degraded),
            );
        }
    }
    if let Some(p99) = o.p99_ms {
        if let Some(limit) = t.p99_failing.filter(|l| p99 >= *l) {
            raise(
                HealthState::Failing,
                format!("p99 latency {p99:.0} ms >= {limit} ms"),
            );
        } else if let Some(limit) = t.p99_degraded.filter(|l| p99 >= *l) {
            raise(
                HealthState::Degraded,
                format!("p99 latency {p99:.0} ms >= {limit} ms"),
            );
        }
    }
    if let Some(ep) = o.endpoints.filter(|e| e.total > 0.0) {
        let fraction = ep.healthy / ep.total;
        if fraction < policy.min_healthy_endpoint_fraction {
            raise(
                HealthState::Failing,
                format!("{}/{} endpoints healthy", ep.healthy, ep.total),
            );
        } else if fraction < 1.0 {
            raise(
                HealthState::Degraded,
                format!("{}/{} endpoints healthy", ep.healthy, ep.total),
            );
        }
        if ep.ejected > 0.0 {
            raise(
                HealthState::Degraded,
                format!("{} endpoints ejected by outlier detection", ep.ejected),
            );
        }
    }
    (state, reasons)
}

/// A state change.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    /// Previous state.
    pub from: HealthState,
    /// New state.
    pub to: HealthState,
    /// Why.
    pub reasons: Vec<String>,
}

/// The state of one service with its hysteresis bookkeeping.
#[derive(Clone, Debug, Serialize)]
pub struct ServiceHealth {
    /// Current state.
    pub state: HealthState,
    /// When it was entered (data time, ms).
    pub since_ms: i64,
    /// Why it is in this state.
    pub reasons: Vec<String>,
    /// The last observation.
    pub last: Observation,
    #[serde(skip)]
    streak: Option<Streak>,
}

#[derive(Clone, Debug)]
struct Streak {
    target: HealthState,
    count: u32,
    first_ms: i64,
    reasons: Vec<String>,
}

impl ServiceHealth {
    /// A service first seen in `state`.
    pub fn new(state: HealthState, at_ms: i64, reasons: Vec<String>) -> Self {
        Self {
            state,
            since_ms: at_ms,
            reasons,
            last: Observation::default(),
            streak: None,
        }
    }

    /// Applies an observation judged as `(candidate, reasons)`.
    pub fn observe(
        &mut self,
        o: Observation,
        candidate: HealthState,
        reasons: Vec<String>,
        policy: &HealthPolicy,
    ) -> Option<Change> {
        let at = o.at_ms;
        self.last = o;
        if self.state == HealthState::Unknown || candidate == self.state {
            self.streak = None;
            if candidate == self.state {
                self.reasons = reasons;
                return None;
            }
            return Some(self.enter(candidate, at, reasons));
        }
        let worse = candidate.severity() > self.state.severity();
        let streak = match self.streak.take() {
            Some(mut s) if (s.target.severity() > self.state.severity()) == worse => {
                // Worse streaks settle on their mildest state, better ones on their worst.
                if (worse && candidate.severity() < s.target.severity())
                    || (!worse && candidate.severity() > s.target.severity())
                {
                    s.target = candidate;
                }
                s.count += 1;
                s.reasons = reasons;
                s
            }
            _ => Streak {
                target: candidate,
                count: 1,
                first_ms: at,
                reasons,
            },
        };
        let due = if worse {
            streak.count >= policy.raise_after_observations
        } else {
            streak.count >= 2 && (at - streak.first_ms) as f64 >= policy.clear_after_secs * 1000.0
        };
        if due {
            return Some(self.enter(streak.target, at, streak.reasons));
        }
        self.streak = Some(streak);
        None
    }

    /// Marks the service Unknown (its cluster went silent).
    pub fn set_unknown(&mut self, at_ms: i64, reason: String) -> Option<Change> {
        if self.state == HealthState::Unknown {
            return None;
        }
        self.streak = None;
        Some(self.enter(HealthState::Unknown, at_ms, vec![reason]))
    }

    fn enter(&mut self, to: HealthState, at_ms: i64, reasons: Vec<String>) -> Change {
        let from = self.state;
        self.state = to;
        self.since_ms = at_ms;
        self.reasons = reasons.clone();
        self.streak = None;
        Change { from, to, reasons }
    }
}
