//! Health per service per cluster: Healthy, Degraded, Failing or Unknown, with the reasons.
//!
//! Fed by the edge table: each evaluation takes the request, error and latency-bucket
//! increments that arrived since the previous one (the same primary-reporter series as the
//! graph) and the Envoy endpoint gauges (`envoy_cluster_membership_healthy`/`_total`,
//! `envoy_cluster_outlier_detection_ejections_active`), judges them against the
//! [`policy::HealthPolicy`] and moves each service's [`state::ServiceHealth`] with hysteresis.
//! A cluster whose collectors sent nothing for `stale_after_secs` (wall time) makes its services
//! Unknown. Transitions go to a broadcast channel (the SSE stream) and the log; the current states
//! are written to the store as `meshfed_service_health{cluster,namespace,service,state}` (1 for the
//! current state, 0 for the others).

pub mod policy;
pub mod state;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use meshfed_model::Labels;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::graph::EdgeTable;
use crate::graph::health_input::ServiceIncrements;
use crate::graph::istio::{Name, ServiceKey};
pub use policy::HealthPolicy;
pub use state::{HealthState, Observation, ServiceHealth};

/// A health transition, as streamed and logged.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Transition {
    /// When (data time of the observation, or wall time for Unknown), ms.
    pub at_ms: i64,
    /// Cluster.
    pub cluster: String,
    /// Namespace.
    pub namespace: String,
    /// Service.
    pub service: String,
    /// Previous state.
    pub from: HealthState,
    /// New state.
    pub to: HealthState,
    /// Why.
    pub reasons: Vec<String>,
}

/// One row of `/api/v1/health`.
#[derive(Clone, Debug, Serialize)]
pub struct HealthRow {
    /// Cluster.
    pub cluster: String,
    /// Namespace.
    pub namespace: String,
    /// Service.
    pub service: String,
    /// Current state, since when and why, and the last observation.
    #[serde(flatten)]
    pub health: ServiceHealth,
}

#[derive(Default)]
struct Inner {
    services: BTreeMap<ServiceKey, ServiceHealth>,
    /// Increments too small to judge yet, pooled per service.
    pooled: HashMap<ServiceKey, ServiceIncrements>,
    /// Newest endpoint-gauge timestamp already judged per service.
    gauges_seen: HashMap<ServiceKey, i64>,
}

/// The health of every service seen.
pub struct HealthModel {
    policy: HealthPolicy,
    inner: Mutex<Inner>,
    events: broadcast::Sender<Transition>,
}

/// Services that are not workloads anyone can fail over: skipped.
const NOT_SERVICES: [&str; 4] = ["unknown", "PassthroughCluster", "BlackHoleCluster", ""];

impl HealthModel {
    /// A model with `policy` (validated by the caller).
    pub fn new(policy: HealthPolicy) -> Self {
        Self {
            policy,
            inner: Mutex::new(Inner::default()),
            events: broadcast::channel(1024).0,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &HealthPolicy {
        &self.policy
    }

    /// Subscribes to transitions.
    pub fn subscribe(&self) -> broadcast::Receiver<Transition> {
        self.events.subscribe()
    }

    /// One evaluation: consumes the table's new increments and gauges. `now_ms` is wall time;
    /// `cluster_age_ms` gives how long ago each cluster last sent data.
    pub fn evaluate(
        &self,
        table: &EdgeTable,
        now_ms: i64,
        cluster_age_ms: &HashMap<Name, i64>,
    ) -> Vec<Transition> {
        let increments = table.take_health_inputs();
        let stale_ms = (self.policy.stale_after_secs * 1000.0) as i64;
        let gauges = table.endpoint_gauges_with_time(stale_ms);
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        for (key, inc) in increments.services {
            if NOT_SERVICES.contains(&&*key.service) {
                continue;
            }
            let pooled = inner.pooled.entry(key).or_default();
            pooled.stats.merge(&inc.stats);
            pooled.newest_ms = pooled.newest_ms.max(inc.newest_ms);
        }
        let mut changes = Vec::new();
        let mut keys: Vec<ServiceKey> = inner.pooled.keys().cloned().collect();
        for (key, (_, newest)) in &gauges {
            if inner.gauges_seen.get(key) != Some(newest) && !NOT_SERVICES.contains(&&*key.service) {
                keys.push(key.clone());
            }
        }
        keys.sort();
        keys.dedup();
        for key in keys {
            let endpoint = gauges.get(&key);
            let pooled = inner.pooled.get(&key);
            let enough =
                pooled.is_some_and(|p| p.stats.requests >= self.policy.min_requests.max(f64::MIN_POSITIVE));
            let new_gauges = endpoint.is_some_and(|(_, t)| inner.gauges_seen.get(&key) != Some(t));
            if !enough && !new_gauges {
                continue;
            }
            let mut o = Observation {
                endpoints: endpoint.map(|(c, _)| *c),
                ..Observation::default()
            };
            if let Some((_, t)) = endpoint {
                inner.gauges_seen.insert(key.clone(), *t);
                o.at_ms = *t;
            }
            if enough && let Some(p) = inner.pooled.remove(&key) {
                o.at_ms = o.at_ms.max(p.newest_ms);
                o.requests = p.stats.requests;
                o.error_percent = Some(p.stats.error_percent());
                o.p99_ms = p.stats.latency_quantile(0.99);
            }
            let thresholds = self.policy.thresholds(&key.namespace, &key.service);
            let (candidate, reasons) = state::judge(&o, &thresholds, &self.policy);
            let at = o.at_ms;
            let change = match inner.services.get_mut(&key) {
                Some(h) => h.observe(o, candidate, reasons, &self.policy),
                None => {
                    let mut h = ServiceHealth::new(candidate, at, reasons.clone());
                    h.last = o;
                    inner.services.insert(key.clone(), h);
                    None
                }
            };
            if let Some(c) = change {
                changes.push(transition(&key, at, c));
            }
        }
        for (key, h) in inner.services.iter_mut() {
            let age = cluster_age_ms.get(&key.cluster).copied().unwrap_or(i64::MAX);
            if age > stale_ms
                && let Some(c) = h.set_unknown(
                    now_ms,
                    format!("no data from cluster {} for {}s", key.cluster, stale_ms / 1000),
                )
            {
                changes.push(transition(key, now_ms, c));
            }
        }
        for t in &changes {
            tracing::info!(
                cluster = %t.cluster, namespace = %t.namespace, service = %t.service,
                from = t.from.as_str(), to = t.to.as_str(), reasons = ?t.reasons,
                "Service health changed."
            );
            let _ = self.events.send(t.clone());
        }
        changes
    }

    /// Current health of every service, sorted by cluster, namespace, service.
    pub fn rows(&self) -> Vec<HealthRow> {
        self.inner
            .lock()
            .services
            .iter()
            .map(|(k, h)| HealthRow {
                cluster: k.cluster.to_string(),
                namespace: k.namespace.to_string(),
                service: k.service.to_string(),
                health: h.clone(),
            })
            .collect()
    }

    /// The state of one service, if seen.
    pub fn state_of(&self, cluster: &str, namespace: &str, service: &str) -> Option<HealthState> {
        let key = ServiceKey {
            cluster: Arc::from(cluster),
            namespace: Arc::from(namespace),
            service: Arc::from(service),
        };
        self.inner.lock().services.get(&key).map(|h| h.state)
    }

    /// `meshfed_service_health` samples for the current states.
    pub fn series(&self) -> Vec<(Labels, f64)> {
        let inner = self.inner.lock();
        let mut out = Vec::with_capacity(inner.services.len() * HealthState::ALL.len());
        for (k, h) in &inner.services {
            for s in HealthState::ALL {
                let labels = Labels::from_pairs([
                    ("__name__", "meshfed_service_health"),
                    ("cluster", &*k.cluster),
                    ("namespace", &*k.namespace),
                    ("service", &*k.service),
                    ("state", s.as_str()),
                ]);
                out.push((labels, if h.state == s { 1.0 } else { 0.0 }));
            }
        }
        out
    }
}

fn transition(key: &ServiceKey, at_ms: i64, c: state::Change) -> Transition {
    Transition {
        at_ms,
        cluster: key.cluster.to_string(),
        namespace: key.namespace.to_string(),
        service: key.service.to_string(),
        from: c.from,
        to: c.to,
        reasons: c.reasons,
    }
}

#[cfg(test)]
mod tests;
