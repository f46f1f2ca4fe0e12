//! Translation of a decision into Istio objects for each cluster that needs them.
//!
//! Per placed cluster: one `ServiceEntry` (all hosts, a stable VIP, `MESH_INTERNAL`, `STATIC`,
//! selecting the `WorkloadEntry`s by owner label), `WorkloadEntry`s for the cluster's own backing
//! endpoints and for every other backing cluster's endpoints behind its east-west gateway, and per
//! host a `DestinationRule` (mTLS, outlier detection, locality failover, one subset per backing
//! cluster) and a `VirtualService` carrying the decided weights.
//!
//! Placement: clusters with clients of a host, clusters the spec names, and backing clusters (their
//! east-west gateway needs the host to route the SNI it receives). Nothing else gets anything.

mod entries;
mod names;
mod traffic;
mod yaml;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::decide::Decision;
use crate::spec::VirtualDestination;
use crate::topology::{Clients, Topology, select};
use crate::validate::key_of;

pub use names::{CLUSTER_LABEL, MANAGED_BY, OWNER_LABEL, object_name, slug, subset_name, vip};
pub use yaml::to_yaml;

/// API version of every generated object.
pub const ISTIO_API_VERSION: &str = "networking.istio.io/v1";

/// Kinds of generated objects, in the order they are listed (and applied).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `ServiceEntry`.
    ServiceEntry,
    /// `WorkloadEntry`.
    WorkloadEntry,
    /// `DestinationRule`.
    DestinationRule,
    /// `VirtualService`.
    VirtualService,
}

impl Kind {
    /// The Kubernetes kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ServiceEntry => "ServiceEntry",
            Kind::WorkloadEntry => "WorkloadEntry",
            Kind::DestinationRule => "DestinationRule",
            Kind::VirtualService => "VirtualService",
        }
    }
    /// The kind named `s` (as [`Kind::as_str`] writes it).
    pub fn parse(s: &str) -> Option<Kind> {
        [
            Kind::ServiceEntry,
            Kind::WorkloadEntry,
            Kind::DestinationRule,
            Kind::VirtualService,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One generated Istio object.
#[derive(Clone, Debug, PartialEq)]
pub struct IstioObject {
    /// Its kind.
    pub kind: Kind,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// The full manifest (`apiVersion`, `kind`, `metadata`, `spec`).
    pub manifest: Value,
}

impl IstioObject {
    /// Canonical YAML (sorted keys): identical input gives identical bytes.
    pub fn to_yaml(&self) -> String {
        to_yaml(&self.manifest)
    }

    /// Stable file name for GitOps output: `<namespace>.<kind>.<name>.yaml`, kind in lower case.
    pub fn file_name(&self) -> String {
        format!(
            "{}.{}.{}.yaml",
            self.namespace,
            self.kind.as_str().to_ascii_lowercase(),
            self.name
        )
    }

    fn sort_key(&self) -> (&str, Kind, &str) {
        (&self.namespace, self.kind, &self.name)
    }
}

/// Sorts objects into their canonical order (namespace, kind, name).
pub fn sort_objects(objects: &mut [IstioObject]) {
    objects.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
}

/// The clusters that receive config for `vd`: clients of any of its hosts, clusters named in the
/// spec, and clusters with a backing service.
pub fn placement(vd: &VirtualDestination, topology: &Topology, clients: &Clients) -> BTreeSet<String> {
    let spec = &vd.spec;
    let mut out: BTreeSet<String> = BTreeSet::new();
    for h in &spec.hosts {
        out.extend(clients.get(h).into_iter().flatten().cloned());
    }
    out.extend(spec.services.iter().flat_map(|s| s.clusters.iter().cloned()));
    out.extend(spec.failover.iter().flat_map(|f| f.priority.iter().cloned()));
    out.extend(select(spec, topology).iter().map(|s| s.cluster.to_owned()));
    out
}

/// Renders `vd` under `decision` for every placed cluster. Assumes `vd` passed validation.
pub fn render(
    vd: &VirtualDestination,
    decision: &Decision,
    topology: &Topology,
    clients: &Clients,
) -> BTreeMap<String, Vec<IstioObject>> {
    let ctx = entries::Context::new(vd, topology);
    let mut out = BTreeMap::new();
    for cluster in placement(vd, topology, clients) {
        let mut objects = vec![ctx.service_entry()];
        objects.extend(ctx.workload_entries(&cluster));
        for host in &vd.spec.hosts {
            objects.push(traffic::destination_rule(&ctx, host));
            objects.push(traffic::virtual_service(&ctx, host, decision));
        }
        sort_objects(&mut objects);
        out.insert(cluster, objects);
    }
    out
}

/// The `namespace.name` owner key of `vd` (as in its labels).
pub(crate) fn owner_key(vd: &VirtualDestination) -> String {
    key_of(vd)
}
