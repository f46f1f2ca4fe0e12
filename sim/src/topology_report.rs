//! One cluster's topology as a collector reports it to the failover controller: its services with
//! labels, ports and ready endpoints (pod IPs with locality), and its east-west gateway address.
//!
//! The simulator has no Kubernetes API, so this stands in for discovery: `GET
//! /topology/clusters/{cluster}` on the control API serves it in the controller's JSON shape
//! (`network`, `gateways`, `services[{name, namespace, labels, ports, endpoints[{address,
//! locality{region, zone, subzone}}]}]`). Localities are synthetic but stable: cluster `c` is
//! region `sim-c`, and its pods alternate between zones `c-a` and `c-b`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::topology::{ClusterId, Topology};

/// A cluster's report.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct ClusterReport {
    /// Istio network name (one network per simulated cluster).
    pub network: String,
    /// East-west gateway addresses.
    pub gateways: Vec<String>,
    /// Services with at least one workload in the cluster.
    pub services: Vec<ServiceReport>,
}

/// One service in the cluster.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct ServiceReport {
    /// Service name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Service labels (`app`).
    pub labels: BTreeMap<String, String>,
    /// Service ports.
    pub ports: Vec<u32>,
    /// Ready endpoints.
    pub endpoints: Vec<EndpointReport>,
}

/// A pod behind a service.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct EndpointReport {
    /// Pod IP.
    pub address: String,
    /// Where the pod runs.
    pub locality: LocalityReport,
}

/// Kubernetes region/zone/subzone.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct LocalityReport {
    /// Region.
    pub region: String,
    /// Zone.
    pub zone: String,
    /// Subzone (unused by the simulator).
    pub subzone: String,
}

/// Builds `cluster`'s report.
pub fn cluster_report(topo: &Topology, cluster: ClusterId) -> ClusterReport {
    let name = &topo.clusters[cluster];
    let mut services: BTreeMap<usize, ServiceReport> = BTreeMap::new();
    for w in topo.workloads.iter().filter(|w| w.cluster == cluster) {
        let Some(sid) = w.service else { continue };
        let svc = &topo.services[sid];
        let entry = services.entry(sid).or_insert_with(|| ServiceReport {
            name: svc.name.clone(),
            namespace: svc.namespace.clone(),
            labels: BTreeMap::from([("app".to_owned(), svc.name.clone())]),
            ports: vec![u32::from(svc.port)],
            endpoints: Vec::new(),
        });
        for (i, &pod) in w.pods.iter().enumerate() {
            entry.endpoints.push(EndpointReport {
                address: topo.pods[pod].ip.clone(),
                locality: LocalityReport {
                    region: format!("sim-{name}"),
                    zone: format!("{name}-{}", if i % 2 == 0 { 'a' } else { 'b' }),
                    subzone: String::new(),
                },
            });
        }
    }
    ClusterReport {
        network: format!("network-{name}"),
        gateways: vec![gateway_address(cluster)],
        services: services.into_values().collect(),
    }
}

/// The simulated east-west gateway's address of a cluster: `10.<n>.255.254`.
pub fn gateway_address(cluster: ClusterId) -> String {
    format!("10.{}.255.254", (cluster + 1) % 256)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SimConfig;

    #[test]
    fn reports_only_the_clusters_own_services_and_pods() {
        let topo = Topology::build(&SimConfig::default());
        let c1 = topo.cluster_id("cluster-1").unwrap_or_default();
        let report = cluster_report(&topo, c1);
        let web_api = report.services.iter().find(|s| s.name == "web-api");
        let web_api = web_api.map(|s| s.endpoints.len());
        assert_eq!(web_api, Some(2), "2 pods per workload by default");
        assert!(
            report.services.iter().all(|s| s.name != "ratings"),
            "ratings runs in clusters 2 and 3"
        );
        let c3 = topo.cluster_id("cluster-3").unwrap_or_default();
        assert!(
            cluster_report(&topo, c3)
                .services
                .iter()
                .all(|s| s.name != "web-api")
        );
        assert_eq!(report.gateways, vec!["10.1.255.254".to_owned()]);
    }
}
