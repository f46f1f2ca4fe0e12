//! Shared fixtures for the controller's integration tests: the demo-like three-cluster topology,
//! health views and resources, built fluently.
#![allow(dead_code, clippy::unwrap_used)]

pub mod schema;

use std::collections::{BTreeMap, BTreeSet};

use meshfed_controller::health::{HealthState, HealthView, ServiceHealth};
use meshfed_controller::spec::VirtualDestination;
use meshfed_controller::topology::{Clients, ClusterTopology, Endpoint, Locality, ServiceTopology, Topology};

pub const CLUSTERS: [&str; 3] = ["cluster-1", "cluster-2", "cluster-3"];
pub const NOW: i64 = 1_800_000_000_000;

/// Three clusters in three regions; `web-api` in namespace `web` on port 8080 everywhere, two
/// endpoints per cluster in two zones; one east-west gateway each; a `db` service as a distractor.
pub fn topology() -> Topology {
    let mut clusters = BTreeMap::new();
    for (i, name) in CLUSTERS.iter().enumerate() {
        let n = i + 1;
        let region = ["us-east-1", "us-west-2", "eu-west-1"][i];
        let endpoints = (0..2)
            .map(|e| Endpoint {
                address: format!("10.{n}.0.{}", 10 + e),
                locality: Locality {
                    region: region.into(),
                    zone: format!("{region}{}", ['a', 'b'][e]),
                    subzone: String::new(),
                },
            })
            .collect();
        let web = ServiceTopology {
            name: "web-api".into(),
            namespace: "web".into(),
            labels: BTreeMap::from([("app".into(), "web-api".into())]),
            ports: vec![8080, 9090],
            endpoints,
        };
        let db = ServiceTopology {
            name: "db".into(),
            namespace: "web".into(),
            labels: BTreeMap::from([("app".into(), "db".into())]),
            ports: vec![5432],
            endpoints: vec![],
        };
        clusters.insert(
            (*name).to_owned(),
            ClusterTopology {
                network: Some(format!("net-{n}")),
                gateways: vec![format!("192.0.2.{n}")],
                services: vec![web, db],
            },
        );
    }
    Topology { clusters }
}

/// Clients of `web-api.global`: a frontend in cluster-1 and cluster-3, plus a fourth cluster
/// `cluster-4` that has no backing service.
pub fn clients() -> Clients {
    let set: BTreeSet<String> = ["cluster-1", "cluster-3", "cluster-4"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    BTreeMap::from([("web-api.global".to_owned(), set)])
}

/// Everything healthy since long ago.
pub fn healthy() -> HealthView {
    HealthView {
        generated_at_ms: NOW,
        services: CLUSTERS
            .iter()
            .map(|c| entry(c, HealthState::Healthy, 0))
            .collect(),
    }
}

pub fn entry(cluster: &str, state: HealthState, since_ms: i64) -> ServiceHealth {
    ServiceHealth {
        cluster: cluster.into(),
        namespace: "web".into(),
        service: "web-api".into(),
        state,
        since_ms,
        ..Default::default()
    }
}

/// Parses one resource from YAML.
pub fn vd(yaml: &str) -> VirtualDestination {
    serde_norway::from_str(yaml).unwrap()
}

pub const PRIORITY: &str = r#"
apiVersion: meshfed.io/v1alpha1
kind: VirtualDestination
metadata: { name: web-api, namespace: web }
spec:
  hosts: [web-api.global]
  ports:
    - { number: 80, protocol: HTTP, targetPort: 8080 }
    - { number: 9090, protocol: GRPC, name: grpc }
  services:
    - { namespace: web, labels: { app: web-api } }
  failover:
    priority: [cluster-1, cluster-2, cluster-3]
"#;

pub const LOCALITY: &str = r#"
apiVersion: meshfed.io/v1alpha1
kind: VirtualDestination
metadata: { name: web-api, namespace: web }
spec:
  hosts: [web-api.global]
  ports: [{ number: 8080, protocol: HTTP }]
  services:
    - { namespace: web, name: web-api, clusters: [cluster-1, cluster-2] }
  failover:
    locality:
      - { from: us-east-1, to: us-west-2 }
      - { from: us-west-2, to: us-east-1 }
  outlierDetection: { consecutive5xxErrors: 3, interval: 5s, baseEjectionTime: 1m }
"#;

pub const FAILOVER_PRIORITY: &str = r#"
apiVersion: meshfed.io/v1alpha1
kind: VirtualDestination
metadata: { name: web-api, namespace: web }
spec:
  hosts: [web-api.global, web-api.mesh.internal]
  ports: [{ number: 8080, protocol: HTTP }, { number: 8443, protocol: TLS, targetPort: 9090 }]
  services:
    - { namespace: web, name: web-api }
  failover:
    failoverPriority: [topology.istio.io/network, topology.kubernetes.io/region]
  healthPolicy: { cooldown: 2m, maxWeightShiftPerStep: 25 }
"#;

/// Compares `actual` with the committed file at `path` (relative to the crate), or rewrites the
/// file when `UPDATE_GOLDEN=1`.
pub fn golden(path: &str, actual: &str) {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "{} differs from the generated output; rerun with UPDATE_GOLDEN=1 and review the diff\n{actual}",
        path.display()
    );
}
