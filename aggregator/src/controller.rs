//! The failover and routing controller, running inside the aggregator.
//!
//! Every `interval_ms` (and at once when a collector's topology report changes) one pass:
//! 1. reads the `VirtualDestination` files in `controller.dir` (a bad file is reported and skipped;
//!    the others are unaffected),
//! 2. takes the topology the collectors reported ([`hub`]), the health model's current states and,
//!    from the service graph, which clusters have clients of each backing service,
//! 3. runs [`meshfed_controller::reconcile`] with the previous decisions,
//! 4. publishes each cluster's snapshot down the relay (a new version only when the objects
//!    changed) and, with `config_out`, writes it to `config_out/<cluster>/`,
//! 5. logs every routing change with its reason and exports `meshfed_controller_*` metrics.
//!
//! Statuses (selection, placement, decision, per-cluster delivery and the agents' apply errors) are
//! served at `/api/v1/virtualdestinations`.

pub mod http;
pub mod hub;
pub mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use meshfed_controller::{
    Clients, Decision, HealthView, Inputs, ServiceHealth, Topology, VirtualDestination,
    VirtualDestinationStatus,
};
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::graph::GraphService;
use crate::health::{self, HealthModel};
use hub::ControlHub;

/// Controller settings (`controller:` in the aggregator config).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControllerConfig {
    /// Directory of `VirtualDestination` YAML files (re-read every pass); no controller when unset.
    pub dir: Option<PathBuf>,
    /// Time between passes.
    pub interval_ms: u64,
    /// Also write every cluster's snapshot as YAML files under `<config_out>/<cluster>/`.
    pub config_out: Option<PathBuf>,
    /// After the aggregator starts, wait this long before the first pass, so every cluster's
    /// collector has reconnected and its health has data. Until then nothing is published and
    /// the agents keep the config they last applied.
    pub warmup_ms: u64,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            dir: None,
            interval_ms: 1_000,
            config_out: None,
            warmup_ms: 15_000,
        }
    }
}

/// A resource's status as served by the API: the controller's status plus delivery per cluster.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    /// `namespace/name`.
    pub key: String,
    /// Hosts it declares.
    pub hosts: Vec<String>,
    /// Selection, placement, decision and validation errors.
    #[serde(flatten)]
    pub status: VirtualDestinationStatus,
    /// Per placed cluster: the version sent and what the cluster's agent reported.
    pub delivery: Vec<Delivery>,
}

/// Config delivery to one cluster.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// Cluster.
    pub cluster: String,
    /// The version last published.
    pub version: u64,
    /// The version the agent last acknowledged, if any.
    pub applied_version: Option<u64>,
    /// Errors the agent reported for that version.
    pub errors: Vec<String>,
}

#[derive(Default)]
struct State {
    decisions: BTreeMap<String, Decision>,
    statuses: BTreeMap<String, VirtualDestinationStatus>,
    hosts: BTreeMap<String, Vec<String>>,
    file_errors: Vec<String>,
}

#[derive(Clone, Default)]
struct Metrics {
    passes: Counter,
    file_errors: Gauge,
    invalid: Gauge,
    weight: Family<Vec<(String, String)>, Gauge>,
    changes: Family<Vec<(String, String)>, Counter>,
    snapshots: Family<Vec<(String, String)>, Counter>,
}

/// The controller: state between passes and the relay hub.
pub struct Controller {
    config: ControllerConfig,
    /// Topology in, snapshots out.
    pub hub: Arc<ControlHub>,
    state: Mutex<State>,
    metrics: Metrics,
    started: std::time::Instant,
}

impl Controller {
    /// A controller with `config`; passes do nothing useful until `config.dir` is set.
    pub fn new(config: ControllerConfig) -> Self {
        Self {
            config,
            hub: Arc::new(ControlHub::default()),
            state: Mutex::default(),
            metrics: Metrics::default(),
            started: std::time::Instant::now(),
        }
    }

    /// Whether resources are configured.
    pub fn enabled(&self) -> bool {
        self.config.dir.is_some()
    }

    /// Registers `meshfed_controller_*`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("meshfed_controller");
        let m = &self.metrics;
        r.register("passes", "Reconcile passes run", m.passes.clone());
        r.register(
            "file_errors",
            "VirtualDestination files that could not be read in the last pass",
            m.file_errors.clone(),
        );
        r.register(
            "invalid_resources",
            "VirtualDestinations with validation errors in the last pass",
            m.invalid.clone(),
        );
        r.register(
            "weight_percent",
            "Decided share of a host's traffic per cluster",
            m.weight.clone(),
        );
        r.register(
            "routing_changes",
            "Routing decisions that changed, per host",
            m.changes.clone(),
        );
        r.register(
            "snapshots_published",
            "Config snapshot versions published, per cluster",
            m.snapshots.clone(),
        );
    }

    /// One pass at `now_ms`.
    pub fn pass(&self, health: &HealthModel, graph: &GraphService, now_ms: i64) {
        let Some(dir) = &self.config.dir else { return };
        if self.started.elapsed() < Duration::from_millis(self.config.warmup_ms) {
            return;
        }
        self.metrics.passes.inc();
        let (vds, file_errors) = load(dir);
        let topology = self.hub.topology();
        let view = health_view(health, now_ms);
        let clients = clients(&vds, &topology, graph);
        let inputs = Inputs {
            topology: &topology,
            health: &view,
            clients: &clients,
            now_ms,
        };
        let mut state = self.state.lock();
        let outcome = meshfed_controller::reconcile(&vds, &inputs, &state.decisions);
        self.report_changes(&vds, &state.decisions, &outcome.decisions);
        for (cluster, objects) in outcome.snapshots {
            if let Some(version) = self.hub.publish(&cluster, objects.clone(), now_ms) {
                info!(%cluster, version, objects = objects.len(), "Published config snapshot.");
                self.metrics
                    .snapshots
                    .get_or_create(&vec![("cluster".into(), cluster.clone())])
                    .inc();
                if let Some(out) = &self.config.config_out {
                    let dir = out.join(&cluster);
                    if let Err(e) = meshfed_controller::gitops::write_snapshot(&dir, &objects) {
                        warn!(%cluster, error = %e, "Could not write the cluster's config.");
                    }
                }
            }
        }
        self.metrics.file_errors.set(file_errors.len() as i64);
        self.metrics
            .invalid
            .set(outcome.statuses.values().filter(|s| !s.errors.is_empty()).count() as i64);
        state.decisions = outcome.decisions;
        state.statuses = outcome.statuses;
        state.hosts = vds
            .iter()
            .map(|vd| (meshfed_controller::validate::key_of(vd), vd.spec.hosts.clone()))
            .collect();
        state.file_errors = file_errors;
    }

    fn report_changes(
        &self,
        vds: &[VirtualDestination],
        before: &BTreeMap<String, Decision>,
        after: &BTreeMap<String, Decision>,
    ) {
        for vd in vds {
            let key = meshfed_controller::validate::key_of(vd);
            let Some(d) = after.get(&key) else { continue };
            let host = vd.spec.hosts.first().cloned().unwrap_or_default();
            for cluster in vd_clusters(d, before.get(&key)) {
                let w = d.weights.get(&cluster).copied().unwrap_or(0);
                self.metrics
                    .weight
                    .get_or_create(&vec![("host".into(), host.clone()), ("cluster".into(), cluster)])
                    .set(i64::from(w));
            }
            let old = before.get(&key);
            if old.is_some_and(|o| o.weights == d.weights && o.locality_lb == d.locality_lb) {
                continue;
            }
            self.metrics
                .changes
                .get_or_create(&vec![("host".into(), host.clone())])
                .inc();
            let from = old
                .map(|o| weights_text(&o.weights))
                .unwrap_or_else(|| "none".into());
            info!(
                virtual_destination = %key,
                %host,
                from = %from,
                to = %weights_text(&d.weights),
                reason = %d.reason,
                fail_static = d.fail_static,
                "Routing changed."
            );
        }
    }

    /// Every resource's status with delivery per placed cluster, and file errors.
    pub fn statuses(&self) -> (Vec<ResourceStatus>, Vec<String>) {
        let state = self.state.lock();
        let published = self.hub.published();
        let acks = self.hub.acks();
        let rows = state
            .statuses
            .iter()
            .map(|(key, status)| ResourceStatus {
                key: key.clone(),
                hosts: state.hosts.get(key).cloned().unwrap_or_default(),
                status: status.clone(),
                delivery: status
                    .placement
                    .iter()
                    .map(|c| {
                        let ack = acks.get(c);
                        Delivery {
                            cluster: c.clone(),
                            version: published.get(c).map_or(0, |(v, _)| *v),
                            applied_version: ack.map(|a| a.ack.version),
                            errors: ack
                                .map(|a| {
                                    a.ack
                                        .errors
                                        .iter()
                                        .map(|e| format!("{}: {}", e.object, e.message))
                                        .collect()
                                })
                                .unwrap_or_default(),
                        }
                    })
                    .collect(),
            })
            .collect();
        (rows, state.file_errors.clone())
    }

    /// The decision in force for a resource key (`namespace.name`).
    pub fn decision(&self, key: &str) -> Option<Decision> {
        self.state.lock().decisions.get(key).cloned()
    }

    /// Every decision in force, by resource key.
    pub fn decisions(&self) -> BTreeMap<String, Decision> {
        self.state.lock().decisions.clone()
    }
}

fn vd_clusters(d: &Decision, old: Option<&Decision>) -> BTreeSet<String> {
    let mut s: BTreeSet<String> = d.weights.keys().cloned().collect();
    if let Some(o) = old {
        s.extend(o.weights.keys().cloned());
    }
    s
}

/// `cluster-1=0% cluster-2=100%`.
pub fn weights_text(w: &BTreeMap<String, u32>) -> String {
    if w.is_empty() {
        return "none".into();
    }
    w.iter()
        .map(|(c, p)| format!("{c}={p}%"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn load(dir: &std::path::Path) -> (Vec<VirtualDestination>, Vec<String>) {
    let files = match meshfed_controller::load_dir(dir) {
        Ok(f) => f,
        Err(e) => return (Vec::new(), vec![e.to_string()]),
    };
    let (mut vds, mut errors) = (Vec::new(), Vec::new());
    for (_, parsed) in files {
        match parsed {
            Ok(v) => vds.extend(v),
            Err(e) => errors.push(e.to_string()),
        }
    }
    (vds, errors)
}

/// The aggregator's health rows in the controller's terms.
pub fn health_view(health: &HealthModel, now_ms: i64) -> HealthView {
    use meshfed_controller::HealthState as C;
    let services = health
        .rows()
        .into_iter()
        .map(|row| {
            let h = row.health;
            let endpoints = h.last.endpoints.filter(|e| e.total > 0.0);
            ServiceHealth {
                cluster: row.cluster,
                namespace: row.namespace,
                service: row.service,
                state: match h.state {
                    health::HealthState::Healthy => C::Healthy,
                    health::HealthState::Degraded => C::Degraded,
                    health::HealthState::Failing => C::Failing,
                    health::HealthState::Unknown => C::Unknown,
                },
                since_ms: h.since_ms,
                reasons: h.reasons,
                error_rate: h.last.error_percent.map(|p| p / 100.0),
                latency_p99_ms: h.last.p99_ms,
                healthy_endpoint_fraction: endpoints.map(|e| e.healthy / e.total),
            }
        })
        .collect();
    HealthView {
        generated_at_ms: now_ms,
        services,
    }
}

/// Clusters with callers of each host's backing services in any graph window: the shortest is
/// refreshed most often (new callers appear quickly), the longest keeps a caller that paused
/// (placement does not flap).
pub fn clients(vds: &[VirtualDestination], topology: &Topology, graph: &GraphService) -> Clients {
    let snapshots: Vec<_> = graph
        .windows()
        .values()
        .map(|w| graph.snapshot(*w, None))
        .collect();
    let mut callers: BTreeMap<(&str, &str), BTreeSet<String>> = BTreeMap::new();
    for (edge, _) in snapshots.iter().flat_map(|s| s.edges()) {
        let (src, dst) = (&edge.source, &edge.destination);
        if &*src.cluster == "unknown" || dst.service.is_empty() {
            continue;
        }
        callers
            .entry((&dst.service_namespace, &dst.service))
            .or_default()
            .insert(src.cluster.to_string());
    }
    let mut out = Clients::new();
    for vd in vds {
        let mut set = BTreeSet::new();
        for s in meshfed_controller::topology::select(&vd.spec, topology) {
            let b = s.backing();
            if let Some(c) = callers.get(&(b.namespace.as_str(), b.name.as_str())) {
                set.extend(c.iter().cloned());
            }
        }
        for host in &vd.spec.hosts {
            out.entry(host.clone()).or_default().extend(set.iter().cloned());
        }
    }
    out
}

/// Runs passes every `interval_ms` and whenever a topology report changes, until `shutdown`.
pub fn spawn(
    controller: Arc<Controller>,
    health: Arc<HealthModel>,
    graph: Arc<GraphService>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let mut tick = tokio::time::interval(Duration::from_millis(controller.config.interval_ms.max(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
                _ = controller.hub.changed.notified() => {}
            }
            let (c, h, g) = (Arc::clone(&controller), Arc::clone(&health), Arc::clone(&graph));
            let now = crate::http::now_ms();
            if let Err(e) = tokio::task::spawn_blocking(move || c.pass(&h, &g, now)).await {
                warn!(error = %e, "Controller pass panicked.");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshfed_relay::proto;

    fn topology(cluster: &str) -> proto::ClusterTopology {
        proto::ClusterTopology {
            network: String::new(),
            gateways: vec![format!("gw.{cluster}")],
            services: vec![proto::ServiceTopology {
                name: "web-api".into(),
                namespace: "web".into(),
                labels: Vec::new(),
                ports: vec![8080],
                endpoints: vec![proto::Endpoint {
                    address: format!("10.0.0.{}", cluster.len()),
                    ..Default::default()
                }],
            }],
        }
    }

    #[test]
    fn a_bad_file_is_reported_and_the_good_resource_still_publishes() {
        let dir = std::env::temp_dir().join(format!("meshfed-controller-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let good = include_str!("../../deploy/examples/virtualdestination-web-api.yaml");
        std::fs::write(dir.join("a-good.yaml"), good).unwrap_or_default();
        std::fs::write(
            dir.join("b-bad.yaml"),
            "kind: VirtualDestination\nspec: [not, a, map]\n",
        )
        .unwrap_or_default();
        let controller = Controller::new(ControllerConfig {
            dir: Some(dir.clone()),
            warmup_ms: 0,
            ..ControllerConfig::default()
        });
        controller
            .hub
            .report_topology("cluster-1", "c1", topology("cluster-1"));
        controller
            .hub
            .report_topology("cluster-2", "c2", topology("cluster-2"));
        let feed = controller.hub.feed("cluster-1");
        let health = HealthModel::new(Default::default());
        let graph = GraphService::new(&["1m".to_owned()]).unwrap_or_else(|e| panic!("{e}"));
        controller.pass(&health, &graph, 1_000_000);

        let (resources, file_errors) = controller.statuses();
        assert_eq!(file_errors.len(), 1, "{file_errors:?}");
        assert!(file_errors[0].contains("b-bad.yaml"), "{}", file_errors[0]);
        assert_eq!(resources.len(), 1);
        assert!(
            resources[0].status.errors.is_empty(),
            "{:?}",
            resources[0].status.errors
        );
        assert_eq!(resources[0].hosts, vec!["web-api.global".to_owned()]);
        let decision = controller
            .decision("web.web-api")
            .unwrap_or_else(|| panic!("no decision"));
        assert!(
            decision.fail_static,
            "no health data yet: keep/priority, marked fail-static"
        );
        let snapshot = feed
            .borrow()
            .clone()
            .unwrap_or_else(|| panic!("nothing published"));
        assert!(snapshot.objects.iter().any(|o| o.kind == "VirtualService"));
        // Same inputs, same objects: no new version.
        controller.pass(&health, &graph, 1_001_000);
        assert_eq!(feed.borrow().as_ref().map(|s| s.version), Some(snapshot.version));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
