//! What the collectors report about each cluster: services, their endpoints with locality, and the
//! cluster's east-west gateway addresses. Plain data; the aggregator fills it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::spec::{BackingService, ServiceSelector, VirtualDestinationSpec};

/// The port remote clusters reach a cluster's east-west gateway on (Istio's mTLS
/// `AUTO_PASSTHROUGH` port).
pub const EAST_WEST_PORT: u32 = 15443;

/// Clusters that have clients of each host: host → cluster names (from the service graph).
pub type Clients = BTreeMap<String, BTreeSet<String>>;

/// Every cluster's reported topology, by cluster name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Topology {
    /// Cluster name → what it reported.
    #[serde(default)]
    pub clusters: BTreeMap<String, ClusterTopology>,
}

/// One cluster's services and gateways.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ClusterTopology {
    /// Istio network name of the cluster; absent means the cluster name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Addresses (IP or DNS name) of the cluster's east-west gateway.
    #[serde(default)]
    pub gateways: Vec<String>,
    /// Services in the cluster.
    #[serde(default)]
    pub services: Vec<ServiceTopology>,
}

impl ClusterTopology {
    /// The Istio network name, defaulting to the cluster name.
    pub fn network_name<'a>(&'a self, cluster: &'a str) -> &'a str {
        self.network.as_deref().unwrap_or(cluster)
    }
}

/// A Kubernetes service in one cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct ServiceTopology {
    /// Service name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Service labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Ports the service's workloads listen on.
    #[serde(default)]
    pub ports: Vec<u32>,
    /// Ready endpoints.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
}

/// One endpoint (pod) of a service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Endpoint {
    /// Pod IP.
    pub address: String,
    /// Where it runs.
    #[serde(default)]
    pub locality: Locality,
}

/// Kubernetes/Istio locality of an endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Locality {
    /// `topology.kubernetes.io/region`.
    #[serde(default)]
    pub region: String,
    /// `topology.kubernetes.io/zone`.
    #[serde(default)]
    pub zone: String,
    /// `topology.istio.io/subzone`.
    #[serde(default)]
    pub subzone: String,
}

impl Locality {
    /// Istio's `region/zone/subzone` form, without trailing empty parts; empty when unknown.
    pub fn istio_string(&self) -> String {
        let parts = [&self.region, &self.zone, &self.subzone];
        let n = parts.iter().rposition(|p| !p.is_empty()).map_or(0, |i| i + 1);
        parts[..n]
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join("/")
    }
}

impl ServiceSelector {
    /// Whether `svc` in `cluster` matches this selector.
    pub fn matches(&self, cluster: &str, svc: &ServiceTopology) -> bool {
        (self.clusters.is_empty() || self.clusters.iter().any(|c| c == cluster))
            && svc.namespace == self.namespace
            && self.name.as_ref().is_none_or(|n| *n == svc.name)
            && self.labels.iter().all(|(k, v)| svc.labels.get(k) == Some(v))
    }
}

/// A service chosen by one of the spec's selectors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selected<'a> {
    /// Index of the selector in `spec.services`.
    pub selector: usize,
    /// Cluster the service lives in.
    pub cluster: &'a str,
    /// The service.
    pub service: &'a ServiceTopology,
}

impl Selected<'_> {
    /// The status form.
    pub fn backing(&self) -> BackingService {
        BackingService {
            cluster: self.cluster.to_owned(),
            namespace: self.service.namespace.clone(),
            name: self.service.name.clone(),
        }
    }
}

/// Every (selector, cluster, service) match, ordered by cluster, then selector, then service.
/// Validation rejects more than one match per cluster; after that this is the backing set.
pub fn select<'a>(spec: &VirtualDestinationSpec, topology: &'a Topology) -> Vec<Selected<'a>> {
    let mut out = Vec::new();
    for (cluster, ct) in &topology.clusters {
        for (i, sel) in spec.services.iter().enumerate() {
            for svc in &ct.services {
                if sel.matches(cluster, svc) {
                    out.push(Selected {
                        selector: i,
                        cluster,
                        service: svc,
                    });
                }
            }
        }
    }
    out
}
