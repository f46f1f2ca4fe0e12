//! Graph types, filters and the JSON shape of `/api/v1/graph`.
//!
//! Nodes follow Kiali's graph types: `workload` (one node per workload), `app` (per canonical
//! service), `versionedApp` (per canonical service and revision) and `service` (per Kubernetes
//! service; callers are drawn as the service their workload serves when that is known). A call
//! whose destination workload is unknown (no healthy upstream, `PassthroughCluster`) ends at a
//! service node in every graph type. Callers outside the mesh are the node `unknown`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::graph::istio::{CodeClass, Endpoint, Name};
use crate::graph::stats::EdgeStats;
use crate::graph::table::WindowSnapshot;

/// How nodes are drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum GraphType {
    /// One node per workload.
    #[default]
    Workload,
    /// One node per app.
    App,
    /// One node per app and version.
    VersionedApp,
    /// One node per service.
    Service,
}

impl GraphType {
    /// Parses Kiali's names.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "workload" => Ok(Self::Workload),
            "app" => Ok(Self::App),
            "versionedApp" => Ok(Self::VersionedApp),
            "service" => Ok(Self::Service),
            _ => Err(format!(
                "invalid graph type {s:?}: expected workload, app, versionedApp or service"
            )),
        }
    }
}

/// Request parameters.
#[derive(Clone, Debug, Default)]
pub struct GraphQuery {
    /// Graph type.
    pub graph_type: GraphType,
    /// Only edges touching these clusters (all when empty).
    pub clusters: Vec<String>,
    /// Only edges touching these namespaces (all when empty).
    pub namespaces: Vec<String>,
    /// Keep edges that had no traffic in the window (their series are still tracked).
    pub include_idle: bool,
}

/// A node.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Node {
    /// Stable id: `cluster/namespace/workload` for workloads, with a `app:`, `svc:` prefix on the
    /// last part for the other kinds (and `:version` for versioned apps).
    pub id: String,
    /// `workload`, `app`, `versionedApp`, `service` or `unknown`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Cluster.
    pub cluster: String,
    /// Namespace.
    pub namespace: String,
    /// Workload, app or service name.
    pub name: String,
    /// The workload (workload nodes; `unknown` for callers outside the mesh).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// The version (versioned-app nodes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Requests per second received.
    pub request_rate_in: f64,
    /// Requests per second sent.
    pub request_rate_out: f64,
    /// Error percentage of the requests received.
    pub error_rate_percent_in: f64,
}

/// Latency quantiles in milliseconds.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
}

/// An edge between two nodes.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Edge {
    /// Source node id.
    pub source: String,
    /// Target node id.
    pub target: String,
    /// Protocols seen (`http`, `grpc`, `tcp`), comma-separated.
    pub protocol: String,
    /// Requests per second.
    pub request_rate: f64,
    /// Requests per second by response class (`2xx` … `5xx`, `no_response`, `other`).
    pub request_rate_by_class: BTreeMap<&'static str, f64>,
    /// Failed requests (5xx, no response, non-OK gRPC status) in percent.
    pub error_rate_percent: f64,
    /// This edge's share of its source's outgoing requests, in percent.
    pub share_percent: f64,
    /// Latency quantiles.
    pub latency_ms: Latency,
    /// The 95th percentile again, for clients of the first version of this API.
    pub p95_latency_ms: Option<f64>,
    /// Request body bytes per second.
    pub request_bytes_per_second: f64,
    /// Response body bytes per second.
    pub response_bytes_per_second: f64,
    /// TCP bytes per second from client to server.
    pub tcp_received_bytes_per_second: f64,
    /// TCP bytes per second from server to client.
    pub tcp_sent_bytes_per_second: f64,
    /// TCP connections opened per second.
    pub tcp_connections_per_second: f64,
    /// Share of requests over mutual TLS, in percent (from destination reports).
    pub mtls_percent: Option<f64>,
    /// Requests per second by Envoy response flags.
    pub response_flags: BTreeMap<String, f64>,
    /// Whether source and target are in different clusters.
    pub cross_cluster: bool,
}

/// The graph over one window at one instant.
#[derive(Clone, Debug, Serialize)]
pub struct Graph {
    /// Evaluation time, seconds since the epoch.
    pub timestamp: f64,
    /// The rate window.
    pub window: String,
    /// The graph type.
    pub graph_type: GraphType,
    /// Every cluster in the graph (not `unknown`, which marks callers outside the mesh).
    pub clusters: Vec<String>,
    /// Nodes, sorted by id.
    pub nodes: Vec<Node>,
    /// Edges, sorted by source then target.
    pub edges: Vec<Edge>,
}

/// `(cluster, namespace, workload) → (service namespace, service)` for drawing service graphs.
pub type WorkloadServices = HashMap<(Name, Name, Name), (Name, Name)>;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct NodeKey {
    cluster: Name,
    namespace: Name,
    kind: &'static str,
    name: Name,
    version: Option<Name>,
}

impl NodeKey {
    fn id(&self) -> String {
        let last = match (self.kind, &self.version) {
            ("workload" | "unknown", _) => self.name.to_string(),
            ("service", _) => format!("svc:{}", self.name),
            (_, Some(v)) => format!("app:{}:{v}", self.name),
            _ => format!("app:{}", self.name),
        };
        format!("{}/{}/{last}", self.cluster, self.namespace)
    }
}

fn node_key(e: &Endpoint, destination: bool, t: GraphType, services: &WorkloadServices) -> NodeKey {
    let key = |kind, namespace: &Name, name: &Name, version: Option<Name>| NodeKey {
        cluster: e.cluster.clone(),
        namespace: namespace.clone(),
        kind,
        name: name.clone(),
        version,
    };
    if &*e.workload == "unknown" {
        return if destination && &*e.service != "unknown" {
            key("service", &e.service_namespace, &e.service, None)
        } else {
            key("unknown", &e.namespace, &e.workload, None)
        };
    }
    match t {
        GraphType::Workload => key("workload", &e.namespace, &e.workload, None),
        GraphType::App => key("app", &e.namespace, &e.app, None),
        GraphType::VersionedApp => key("versionedApp", &e.namespace, &e.app, Some(e.version.clone())),
        GraphType::Service if destination => key("service", &e.service_namespace, &e.service, None),
        GraphType::Service => {
            match services.get(&(e.cluster.clone(), e.namespace.clone(), e.workload.clone())) {
                Some((ns, svc)) => key("service", ns, svc, None),
                None => key("workload", &e.namespace, &e.workload, None),
            }
        }
    }
}

/// The id and namespace of an endpoint's node in the workload graph (`destination`: the callee
/// side, where a call to a workload outside the mesh ends at its service node).
pub(crate) fn workload_node(e: &Endpoint, destination: bool) -> (String, Name) {
    let key = node_key(e, destination, GraphType::Workload, &WorkloadServices::new());
    (key.id(), key.namespace)
}

/// Builds the graph from a window snapshot.
pub fn build(snap: &WindowSnapshot, window: &str, q: &GraphQuery, services: &WorkloadServices) -> Graph {
    let mut merged: BTreeMap<(NodeKey, NodeKey), (EdgeStats, BTreeSet<Name>)> = BTreeMap::new();
    for (fine, stats) in snap.edges() {
        let src = node_key(&fine.source, false, q.graph_type, services);
        let dst = node_key(&fine.destination, true, q.graph_type, services);
        let keep = |n: &NodeKey| {
            (q.clusters.is_empty() || q.clusters.iter().any(|c| **c == *n.cluster))
                && (q.namespaces.is_empty() || q.namespaces.iter().any(|ns| **ns == *n.namespace))
        };
        if !(keep(&src) || keep(&dst)) || !(q.include_idle || stats.is_active()) {
            continue;
        }
        let entry = merged.entry((src, dst)).or_default();
        entry.0.merge(stats);
        entry.1.insert(fine.protocol.clone());
    }
    let mut out_rate: HashMap<&NodeKey, f64> = HashMap::new();
    let mut in_stats: HashMap<&NodeKey, (f64, f64)> = HashMap::new();
    for ((src, dst), (s, _)) in &merged {
        *out_rate.entry(src).or_default() += s.requests;
        let e = in_stats.entry(dst).or_default();
        e.0 += s.requests;
        e.1 += s.errors;
    }
    let edges = merged
        .iter()
        .map(|((src, dst), (s, protocols))| {
            let total_out = out_rate.get(src).copied().unwrap_or(0.0);
            to_edge(src, dst, s, protocols, total_out)
        })
        .collect();
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    for (src, dst) in merged.keys() {
        for n in [src, dst] {
            nodes.entry(n.id()).or_insert_with(|| {
                let (rin, ein) = in_stats.get(n).copied().unwrap_or_default();
                Node {
                    id: n.id(),
                    kind: n.kind,
                    cluster: n.cluster.to_string(),
                    namespace: n.namespace.to_string(),
                    name: n.name.to_string(),
                    workload: matches!(n.kind, "workload" | "unknown").then(|| n.name.to_string()),
                    version: n.version.as_ref().map(|v| v.to_string()),
                    request_rate_in: rin,
                    request_rate_out: out_rate.get(n).copied().unwrap_or(0.0),
                    error_rate_percent_in: if rin > 0.0 { 100.0 * ein / rin } else { 0.0 },
                }
            });
        }
    }
    let clusters: BTreeSet<String> = nodes
        .values()
        .filter(|n| n.cluster != "unknown")
        .map(|n| n.cluster.clone())
        .collect();
    Graph {
        timestamp: snap.at_ms as f64 / 1000.0,
        window: window.to_owned(),
        graph_type: q.graph_type,
        clusters: clusters.into_iter().collect(),
        nodes: nodes.into_values().collect(),
        edges,
    }
}

fn to_edge(src: &NodeKey, dst: &NodeKey, s: &EdgeStats, protocols: &BTreeSet<Name>, total_out: f64) -> Edge {
    let p95 = s.latency_quantile(0.95);
    Edge {
        source: src.id(),
        target: dst.id(),
        protocol: protocols.iter().map(|p| &**p).collect::<Vec<_>>().join(","),
        request_rate: s.requests,
        request_rate_by_class: CodeClass::NAMES
            .iter()
            .zip(s.by_class)
            .filter(|(_, r)| *r > 0.0)
            .map(|(n, r)| (*n, r))
            .collect(),
        error_rate_percent: s.error_percent(),
        share_percent: if total_out > 0.0 {
            100.0 * s.requests / total_out
        } else {
            0.0
        },
        latency_ms: Latency {
            p50: s.latency_quantile(0.5),
            p95,
            p99: s.latency_quantile(0.99),
        },
        p95_latency_ms: p95,
        request_bytes_per_second: s.request_bytes,
        response_bytes_per_second: s.response_bytes,
        tcp_received_bytes_per_second: s.tcp_received_bytes,
        tcp_sent_bytes_per_second: s.tcp_sent_bytes,
        tcp_connections_per_second: s.tcp_opened,
        mtls_percent: s.mtls_percent(),
        response_flags: s.flags.iter().map(|(f, r)| (f.to_string(), *r)).collect(),
        cross_cluster: src.cluster != dst.cluster,
    }
}
