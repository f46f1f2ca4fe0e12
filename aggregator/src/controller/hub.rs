//! Where the relay sessions and the controller loop meet: collectors' topology reports and config
//! acks come in, each cluster's config snapshot goes out on a watch channel that every session of
//! that cluster forwards.
//!
//! Versions increase per cluster and only when the cluster's objects change (byte-identical
//! output keeps its version). They start from the wall clock, so they keep increasing across
//! aggregator restarts and a collector never mistakes a new snapshot for an old one.

use std::collections::BTreeMap;
use std::sync::Arc;

use meshfed_controller::{ClusterTopology, IstioObject, Topology};
use meshfed_relay::proto::{self, ConfigAck, ConfigSnapshot};
use meshfed_relay::server::ConfigFeed;
use parking_lot::Mutex;
use tokio::sync::{Notify, watch};

use super::wire;

/// The last config ack of a cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct AppliedConfig {
    /// The collector that sent it.
    pub collector_id: String,
    /// The version and the errors met applying it.
    pub ack: ConfigAck,
}

/// The controller's side of the relay.
#[derive(Default)]
pub struct ControlHub {
    reports: Mutex<BTreeMap<(String, String), ClusterTopology>>,
    acks: Mutex<BTreeMap<String, AppliedConfig>>,
    feeds: Mutex<BTreeMap<String, watch::Sender<Option<Arc<ConfigSnapshot>>>>>,
    published: Mutex<BTreeMap<String, (u64, Vec<IstioObject>)>>,
    /// Fires when a topology report changed something.
    pub changed: Notify,
}

impl ControlHub {
    /// A collector's topology report; wakes the controller when it differs from its last one.
    pub fn report_topology(&self, cluster: &str, collector_id: &str, topology: proto::ClusterTopology) {
        let topology = wire::topology_from_wire(topology);
        let key = (cluster.to_owned(), collector_id.to_owned());
        let mut reports = self.reports.lock();
        if reports.get(&key) == Some(&topology) {
            return;
        }
        reports.insert(key, topology);
        drop(reports);
        self.changed.notify_one();
    }

    /// Every cluster's topology: the union of its collectors' reports.
    pub fn topology(&self) -> Topology {
        let mut out = Topology::default();
        for ((cluster, _), report) in self.reports.lock().iter() {
            let merged = out.clusters.entry(cluster.clone()).or_default();
            if merged.network.is_none() {
                merged.network = report.network.clone();
            }
            for g in &report.gateways {
                if !merged.gateways.contains(g) {
                    merged.gateways.push(g.clone());
                }
            }
            for s in &report.services {
                match merged
                    .services
                    .iter_mut()
                    .find(|m| m.name == s.name && m.namespace == s.namespace)
                {
                    Some(m) => {
                        for e in &s.endpoints {
                            if !m.endpoints.contains(e) {
                                m.endpoints.push(e.clone());
                            }
                        }
                    }
                    None => merged.services.push(s.clone()),
                }
            }
        }
        out
    }

    /// A collector's ack.
    pub fn record_ack(&self, cluster: &str, collector_id: &str, ack: ConfigAck) {
        self.acks.lock().insert(
            cluster.to_owned(),
            AppliedConfig {
                collector_id: collector_id.to_owned(),
                ack,
            },
        );
    }

    /// The last ack per cluster.
    pub fn acks(&self) -> BTreeMap<String, AppliedConfig> {
        self.acks.lock().clone()
    }

    /// The feed a session of `cluster` forwards.
    pub fn feed(&self, cluster: &str) -> ConfigFeed {
        self.feeds
            .lock()
            .entry(cluster.to_owned())
            .or_insert_with(|| watch::Sender::new(None))
            .subscribe()
    }

    /// Publishes `cluster`'s objects. Returns the new version when they changed, `None` when the
    /// cluster already has exactly these objects.
    pub fn publish(&self, cluster: &str, objects: Vec<IstioObject>, now_ms: i64) -> Option<u64> {
        let mut published = self.published.lock();
        let previous = published.get(cluster);
        if previous.is_some_and(|(_, o)| *o == objects) {
            return None;
        }
        let version = previous.map_or(0, |(v, _)| v + 1).max(now_ms.max(0) as u64);
        let snapshot = Arc::new(ConfigSnapshot {
            version,
            objects: objects.iter().map(wire::object_to_wire).collect(),
        });
        published.insert(cluster.to_owned(), (version, objects));
        drop(published);
        self.feeds
            .lock()
            .entry(cluster.to_owned())
            .or_insert_with(|| watch::Sender::new(None))
            .send_replace(Some(snapshot));
        Some(version)
    }

    /// The version and objects last published per cluster.
    pub fn published(&self) -> BTreeMap<String, (u64, Vec<IstioObject>)> {
        self.published.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshfed_controller::Kind;

    fn object(name: &str) -> IstioObject {
        IstioObject {
            kind: Kind::ServiceEntry,
            name: name.into(),
            namespace: "istio-system".into(),
            manifest: serde_json::json!({"kind": "ServiceEntry", "metadata": {"name": name}}),
        }
    }

    #[test]
    fn versions_change_only_with_content_and_never_go_back() {
        let hub = ControlHub::default();
        let feed = hub.feed("c1");
        let v1 = hub.publish("c1", vec![object("a")], 1_000).unwrap_or_default();
        assert_eq!(v1, 1_000);
        assert_eq!(hub.publish("c1", vec![object("a")], 2_000), None);
        let v2 = hub.publish("c1", vec![object("b")], 500).unwrap_or_default();
        assert_eq!(v2, 1_001, "a clock that went back still gives a newer version");
        assert_eq!(feed.borrow().as_ref().map(|s| s.version), Some(v2));
        assert_eq!(
            feed.borrow().as_ref().map(|s| s.objects[0].name.clone()),
            Some("b".into())
        );
    }

    #[test]
    fn collectors_of_one_cluster_are_merged() {
        let hub = ControlHub::default();
        let svc = |ip: &str| proto::ServiceTopology {
            name: "web-api".into(),
            namespace: "web".into(),
            ports: vec![8080],
            endpoints: vec![proto::Endpoint {
                address: ip.into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let report = |ip: &str| proto::ClusterTopology {
            network: "n1".into(),
            gateways: vec!["10.0.0.1".into()],
            services: vec![svc(ip)],
        };
        hub.report_topology("c1", "a", report("10.1.0.1"));
        hub.report_topology("c1", "b", report("10.1.0.2"));
        let t = hub.topology();
        let c1 = &t.clusters["c1"];
        assert_eq!(c1.gateways.len(), 1);
        assert_eq!(c1.services.len(), 1);
        assert_eq!(c1.services[0].endpoints.len(), 2);
        assert_eq!(c1.network.as_deref(), Some("n1"));
    }
}
