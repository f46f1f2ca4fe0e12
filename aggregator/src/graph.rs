//! The cross-cluster service graph: workloads per cluster and namespace as nodes, request edges
//! with rate, error percentage and p95 latency over a window.
//!
//! This version evaluates PromQL over the stored Istio series on each request, with the same
//! queries Kiali issues. Edges come from destination-reported series; source-reported series add
//! only the edges no destination reported (calls leaving the mesh). Istio reports
//! `destination_cluster="unknown"` when the peer's metadata is missing; such calls are attributed
//! to the source's cluster.

use std::collections::{BTreeMap, BTreeSet};

use meshfed_model::Labels;
use meshfed_query::{Engine, Value};
use serde::Serialize;

/// Request parameters.
#[derive(Clone, Debug)]
pub struct GraphQuery {
    /// Evaluation time.
    pub at_ms: i64,
    /// Rate window as a PromQL duration, e.g. `1m`.
    pub window: String,
    /// Only edges touching these clusters (all when empty).
    pub clusters: Vec<String>,
    /// Only edges touching these namespaces (all when empty).
    pub namespaces: Vec<String>,
}

/// A workload in one cluster and namespace.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Node {
    /// `cluster/namespace/workload`.
    pub id: String,
    /// Cluster name.
    pub cluster: String,
    /// Namespace.
    pub namespace: String,
    /// Workload name (`unknown` for callers outside the mesh).
    pub workload: String,
}

/// Traffic from one workload to another.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Edge {
    /// Source node id.
    pub source: String,
    /// Target node id.
    pub target: String,
    /// Requests per second.
    pub request_rate: f64,
    /// Share of requests answered 5xx, in percent.
    pub error_rate_percent: f64,
    /// 95th percentile request duration in milliseconds (`null` without histogram data).
    pub p95_latency_ms: Option<f64>,
    /// Whether source and target are in different clusters.
    pub cross_cluster: bool,
}

/// The graph at one instant.
#[derive(Clone, Debug, Serialize)]
pub struct Graph {
    /// Evaluation time, seconds since the epoch.
    pub timestamp: f64,
    /// The rate window used.
    pub window: String,
    /// Every cluster appearing in the graph (not `unknown`, which marks callers outside the mesh).
    pub clusters: Vec<String>,
    /// Nodes, sorted by id.
    pub nodes: Vec<Node>,
    /// Edges, sorted by source then target.
    pub edges: Vec<Edge>,
}

const EDGE_LABELS: &str = "source_cluster, source_workload_namespace, source_workload, \
                           destination_cluster, destination_workload_namespace, destination_workload";

#[derive(Default)]
struct EdgeAcc {
    total: f64,
    errors: f64,
    p95: Option<f64>,
}

/// Builds the graph. Query errors (a malformed window) are returned as the engine reports them.
pub fn build(engine: &Engine, q: &GraphQuery) -> Result<Graph, meshfed_query::QueryError> {
    let mut edges: BTreeMap<(Node, Node), EdgeAcc> = BTreeMap::new();
    for reporter in ["destination", "source"] {
        let query = format!(
            "sum by ({EDGE_LABELS}, response_code) (rate(istio_requests_total{{reporter=\"{reporter}\"}}[{}]))",
            q.window
        );
        let mut seen_here = BTreeSet::new();
        for (labels, rate) in vector(engine.query_instant(&query, q.at_ms)?) {
            let key = edge_key(&labels);
            if reporter == "source" && edges.contains_key(&key) && !seen_here.contains(&key) {
                continue; // Already reported by the destination.
            }
            seen_here.insert(key.clone());
            let acc = edges.entry(key).or_default();
            acc.total += rate;
            if labels.get("response_code").is_some_and(|c| c.starts_with('5')) {
                acc.errors += rate;
            }
        }
    }
    let p95 = format!(
        "histogram_quantile(0.95, sum by ({EDGE_LABELS}, le) \
         (rate(istio_request_duration_milliseconds_bucket{{reporter=\"destination\"}}[{}])))",
        q.window
    );
    for (labels, v) in vector(engine.query_instant(&p95, q.at_ms)?) {
        if let Some(acc) = edges.get_mut(&edge_key(&labels)) {
            acc.p95 = v.is_finite().then_some(v);
        }
    }
    let keep = |n: &Node| {
        (q.clusters.is_empty() || q.clusters.contains(&n.cluster))
            && (q.namespaces.is_empty() || q.namespaces.contains(&n.namespace))
    };
    let mut nodes = BTreeSet::new();
    let mut out = Vec::new();
    for ((src, dst), acc) in edges {
        if !(keep(&src) || keep(&dst)) || acc.total <= 0.0 {
            continue;
        }
        out.push(Edge {
            source: src.id.clone(),
            target: dst.id.clone(),
            request_rate: acc.total,
            error_rate_percent: 100.0 * acc.errors / acc.total,
            p95_latency_ms: acc.p95,
            cross_cluster: src.cluster != dst.cluster,
        });
        nodes.insert(src);
        nodes.insert(dst);
    }
    // Callers from outside the mesh carry `source_cluster="unknown"`: a node, not a cluster.
    let clusters: BTreeSet<String> = nodes
        .iter()
        .filter(|n| n.cluster != "unknown")
        .map(|n| n.cluster.clone())
        .collect();
    Ok(Graph {
        timestamp: q.at_ms as f64 / 1000.0,
        window: q.window.clone(),
        clusters: clusters.into_iter().collect(),
        nodes: nodes.into_iter().collect(),
        edges: out,
    })
}

fn vector(v: Value) -> Vec<(Labels, f64)> {
    match v {
        Value::Vector { samples, .. } => samples,
        _ => Vec::new(),
    }
}

fn node(cluster: &str, namespace: &str, workload: &str) -> Node {
    Node {
        id: format!("{cluster}/{namespace}/{workload}"),
        cluster: cluster.to_owned(),
        namespace: namespace.to_owned(),
        workload: workload.to_owned(),
    }
}

fn edge_key(l: &Labels) -> (Node, Node) {
    let get = |k: &str| l.get(k).unwrap_or("unknown");
    let src_cluster = get("source_cluster");
    let mut dst_cluster = get("destination_cluster");
    if dst_cluster == "unknown" {
        dst_cluster = src_cluster;
    }
    (
        node(
            src_cluster,
            get("source_workload_namespace"),
            get("source_workload"),
        ),
        node(
            dst_cluster,
            get("destination_workload_namespace"),
            get("destination_workload"),
        ),
    )
}
