//! Thresholds and hysteresis of the health model, with per-service overrides.

use serde::{Deserialize, Serialize};

/// When a service is Degraded or Failing, and how quickly its state may change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthPolicy {
    /// Error percentage (5xx, no response, gRPC errors) at which a service is Degraded.
    pub error_rate_degraded_percent: f64,
    /// Error percentage at which a service is Failing.
    pub error_rate_failing_percent: f64,
    /// p99 latency (ms) at which a service is Degraded; none by default.
    pub latency_p99_degraded_ms: Option<f64>,
    /// p99 latency (ms) at which a service is Failing; none by default.
    pub latency_p99_failing_ms: Option<f64>,
    /// Healthy-endpoint fraction below which a service is Failing (below 1.0 it is Degraded).
    pub min_healthy_endpoint_fraction: f64,
    /// Requests an observation needs before its error rate counts; smaller increments are
    /// pooled with the next ones.
    pub min_requests: f64,
    /// Consecutive observations that must agree before the state gets worse.
    pub raise_after_observations: u32,
    /// How long (data time) observations must stay better before the state improves.
    pub clear_after_secs: f64,
    /// A cluster whose collectors sent nothing for this long makes its services Unknown.
    pub stale_after_secs: f64,
    /// Per-service thresholds.
    pub overrides: Vec<ServiceOverride>,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self {
            error_rate_degraded_percent: 1.0,
            error_rate_failing_percent: 5.0,
            latency_p99_degraded_ms: None,
            latency_p99_failing_ms: None,
            min_healthy_endpoint_fraction: 0.5,
            min_requests: 5.0,
            raise_after_observations: 2,
            clear_after_secs: 15.0,
            stale_after_secs: 30.0,
            overrides: Vec::new(),
        }
    }
}

/// Thresholds for the services whose name (or `namespace/name`) matches `service`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceOverride {
    /// `name` or `namespace/name`.
    pub service: String,
    /// Replaces [`HealthPolicy::error_rate_degraded_percent`].
    pub error_rate_degraded_percent: Option<f64>,
    /// Replaces [`HealthPolicy::error_rate_failing_percent`].
    pub error_rate_failing_percent: Option<f64>,
    /// Replaces [`HealthPolicy::latency_p99_degraded_ms`].
    pub latency_p99_degraded_ms: Option<f64>,
    /// Replaces [`HealthPolicy::latency_p99_failing_ms`].
    pub latency_p99_failing_ms: Option<f64>,
}

/// The thresholds in force for one service.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// Degraded at this error percentage.
    pub error_degraded: f64,
    /// Failing at this error percentage.
    pub error_failing: f64,
    /// Degraded at this p99.
    pub p99_degraded: Option<f64>,
    /// Failing at this p99.
    pub p99_failing: Option<f64>,
}

impl HealthPolicy {
    /// Checks ranges; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        let pct = |name: &str, v: f64| {
            if (0.0..=100.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("health.{name}: {v} is not a percentage in [0, 100]"))
            }
        };
        pct("error_rate_degraded_percent", self.error_rate_degraded_percent)?;
        pct("error_rate_failing_percent", self.error_rate_failing_percent)?;
        if self.error_rate_degraded_percent > self.error_rate_failing_percent {
            return Err(
                "health.error_rate_degraded_percent must not exceed error_rate_failing_percent".into(),
            );
        }
        if !(0.0..=1.0).contains(&self.min_healthy_endpoint_fraction) {
            return Err("health.min_healthy_endpoint_fraction must be in [0, 1]".into());
        }
        if self.raise_after_observations == 0 {
            return Err("health.raise_after_observations must be at least 1".into());
        }
        if !(self.clear_after_secs >= 0.0 && self.stale_after_secs > 0.0 && self.min_requests >= 0.0) {
            return Err(
                "health: clear_after_secs, stale_after_secs and min_requests must be positive".into(),
            );
        }
        for o in &self.overrides {
            if o.service.is_empty() {
                return Err("health.overrides: service must not be empty".into());
            }
        }
        Ok(())
    }

    /// Thresholds for `namespace/service`.
    pub fn thresholds(&self, namespace: &str, service: &str) -> Thresholds {
        let mut t = Thresholds {
            error_degraded: self.error_rate_degraded_percent,
            error_failing: self.error_rate_failing_percent,
            p99_degraded: self.latency_p99_degraded_ms,
            p99_failing: self.latency_p99_failing_ms,
        };
        let matches = |o: &ServiceOverride| match o.service.split_once('/') {
            Some((ns, name)) => ns == namespace && name == service,
            None => o.service == service,
        };
        for o in self.overrides.iter().filter(|o| matches(o)) {
            t.error_degraded = o.error_rate_degraded_percent.unwrap_or(t.error_degraded);
            t.error_failing = o.error_rate_failing_percent.unwrap_or(t.error_failing);
            t.p99_degraded = o.latency_p99_degraded_ms.or(t.p99_degraded);
            t.p99_failing = o.latency_p99_failing_ms.or(t.p99_failing);
        }
        t
    }
}
