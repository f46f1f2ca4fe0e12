//! The health view the aggregator's health model hands the controller: one entry per backing
//! service per cluster, with its state, since when, and why. Plain data.

use serde::{Deserialize, Serialize};

/// Health state of a service in one cluster, as the health model classifies it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum HealthState {
    /// Within every threshold.
    Healthy,
    /// Worse than normal but serving (e.g. slow); used only when nothing is healthy.
    Degraded,
    /// Failing: traffic should leave.
    Failing,
    /// No recent data: treated like failing for routing.
    #[default]
    Unknown,
}

/// Health of one service in one cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceHealth {
    /// Cluster name.
    pub cluster: String,
    /// Namespace.
    pub namespace: String,
    /// Service name.
    pub service: String,
    /// Classified state.
    pub state: HealthState,
    /// When the service entered `state` (ms since the epoch).
    pub since_ms: i64,
    /// Human-readable causes, e.g. `error rate 31% > 5%`.
    #[serde(default)]
    pub reasons: Vec<String>,
    /// Error-rate fraction over the health window, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// p99 latency in ms, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p99_ms: Option<f64>,
    /// Fraction of endpoints that are not ejected or failing, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_endpoint_fraction: Option<f64>,
}

/// All health entries, and when they were computed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HealthView {
    /// When the view was computed (ms since the epoch); an old view is stale.
    pub generated_at_ms: i64,
    /// One entry per (cluster, namespace, service).
    #[serde(default)]
    pub services: Vec<ServiceHealth>,
}

impl HealthView {
    /// The entry for a service, if the health model has one.
    pub fn get(&self, cluster: &str, namespace: &str, service: &str) -> Option<&ServiceHealth> {
        self.services
            .iter()
            .find(|h| h.cluster == cluster && h.namespace == namespace && h.service == service)
    }
}
