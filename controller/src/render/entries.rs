//! `ServiceEntry` and `WorkloadEntry` generation.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::names::{CLUSTER_LABEL, metadata, object_name, owner_labels, vip};
use super::{ISTIO_API_VERSION, IstioObject, Kind, owner_key};
use crate::spec::{PortSpec, VirtualDestination};
use crate::topology::{EAST_WEST_PORT, Locality, Selected, Topology, select};

/// What every generator needs: the resource, its key and labels, its backing services.
pub(crate) struct Context<'a> {
    pub vd: &'a VirtualDestination,
    pub name: &'a str,
    pub namespace: &'a str,
    pub labels: BTreeMap<String, String>,
    pub topology: &'a Topology,
    /// One backing service per cluster (validation guarantees uniqueness), by cluster.
    pub backing: BTreeMap<&'a str, Selected<'a>>,
}

impl<'a> Context<'a> {
    pub fn new(vd: &'a VirtualDestination, topology: &'a Topology) -> Self {
        let mut backing = BTreeMap::new();
        for s in select(&vd.spec, topology) {
            backing.entry(s.cluster).or_insert(s);
        }
        Self {
            vd,
            name: vd.metadata.name.as_deref().unwrap_or(""),
            namespace: vd.metadata.namespace.as_deref().unwrap_or("default"),
            labels: owner_labels(&owner_key(vd)),
            topology,
            backing,
        }
    }

    pub fn object(
        &self,
        kind: Kind,
        name: String,
        labels: &BTreeMap<String, String>,
        spec: Value,
    ) -> IstioObject {
        let manifest = json!({
            "apiVersion": ISTIO_API_VERSION,
            "kind": kind.as_str(),
            "metadata": metadata(&name, self.namespace, labels),
            "spec": spec,
        });
        IstioObject {
            kind,
            name,
            namespace: self.namespace.to_owned(),
            manifest,
        }
    }

    /// The single `ServiceEntry` for all hosts; its VIP comes from the smallest host name so it
    /// does not move when hosts are reordered.
    pub fn service_entry(&self) -> IstioObject {
        let spec = &self.vd.spec;
        let first = spec.hosts.iter().min().map_or("", String::as_str);
        let ports: Vec<Value> = spec
            .ports
            .iter()
            .map(|p| json!({ "number": p.number, "protocol": p.protocol.as_str(), "name": p.port_name() }))
            .collect();
        let body = json!({
            "hosts": spec.hosts,
            "addresses": [vip(first)],
            "ports": ports,
            "location": "MESH_INTERNAL",
            "resolution": "STATIC",
            "workloadSelector": { "labels": { super::OWNER_LABEL: owner_key(self.vd) } },
        });
        self.object(Kind::ServiceEntry, object_name(&[self.name]), &self.labels, body)
    }

    /// The `WorkloadEntry` port map: every spec port name → the port `target` picks.
    fn ports(&self, target: impl Fn(&PortSpec) -> u32) -> BTreeMap<String, u32> {
        self.vd
            .spec
            .ports
            .iter()
            .map(|p| (p.port_name(), target(p)))
            .collect()
    }

    /// `WorkloadEntry`s seen from `cluster`: its own backing endpoints directly, every other backing
    /// cluster's endpoints through that cluster's east-west gateways (one entry per gateway address
    /// and locality, weighted by the endpoints there).
    pub fn workload_entries(&self, cluster: &str) -> Vec<IstioObject> {
        let mut out = Vec::new();
        for (backing_cluster, sel) in &self.backing {
            let Some(ct) = self.topology.clusters.get(*backing_cluster) else {
                continue;
            };
            let network = ct.network_name(backing_cluster);
            let mut labels = self.labels.clone();
            labels.insert(CLUSTER_LABEL.to_owned(), (*backing_cluster).to_owned());
            if *backing_cluster == cluster {
                let ports = self.ports(|p| p.effective_target_port());
                for ep in &sel.service.endpoints {
                    let body = entry_body(&ep.address, &ports, &labels, network, &ep.locality, None);
                    let name = object_name(&[self.name, backing_cluster, &ep.address]);
                    out.push(self.object(Kind::WorkloadEntry, name, &labels, body));
                }
                continue;
            }
            let mut by_locality: BTreeMap<&Locality, u32> = BTreeMap::new();
            for ep in &sel.service.endpoints {
                *by_locality.entry(&ep.locality).or_default() += 1;
            }
            let ports = self.ports(|_| EAST_WEST_PORT);
            for gw in &ct.gateways {
                for (loc, count) in &by_locality {
                    let body = entry_body(gw, &ports, &labels, network, loc, Some(*count));
                    let loc_s = loc.istio_string();
                    let name = object_name(&[self.name, backing_cluster, "gw", gw, &loc_s]);
                    out.push(self.object(Kind::WorkloadEntry, name, &labels, body));
                }
            }
        }
        out
    }
}

fn entry_body(
    address: &str,
    ports: &BTreeMap<String, u32>,
    labels: &BTreeMap<String, String>,
    network: &str,
    locality: &Locality,
    weight: Option<u32>,
) -> Value {
    let mut body = json!({ "address": address, "ports": ports, "labels": labels, "network": network });
    let loc = locality.istio_string();
    if let Some(obj) = body.as_object_mut() {
        if !loc.is_empty() {
            obj.insert("locality".into(), Value::from(loc));
        }
        if let Some(w) = weight {
            obj.insert("weight".into(), Value::from(w));
        }
    }
    body
}
