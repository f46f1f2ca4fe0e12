//! Grafana Node Graph frames: the field names the Node Graph panel documents (`id`, `title`,
//! `subtitle`, `mainstat`, `secondarystat`, `arc__*`, `detail__*` for nodes; `id`, `source`,
//! `target`, `mainstat`, `secondarystat` for edges), with a field list per frame so a JSON
//! datasource (or the Node Graph API plugin, which reads `…/api/graph/fields` and
//! `…/api/graph/data`) can build the frames.

use serde::Serialize;
use serde_json::{Value, json};

use crate::graph::view::Graph;

/// A field of a frame: its name, type and how Grafana shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Field {
    /// Field name.
    pub field_name: &'static str,
    /// `string` or `number`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Label shown in Grafana.
    #[serde(rename = "displayName", skip_serializing_if = "Option::is_none")]
    pub display_name: Option<&'static str>,
    /// Arc colour for `arc__*` fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<&'static str>,
}

const fn field(name: &'static str, kind: &'static str, display: Option<&'static str>) -> Field {
    Field {
        field_name: name,
        kind,
        display_name: display,
        color: None,
    }
}

/// The node frame's fields.
pub fn node_fields() -> Vec<Field> {
    vec![
        field("id", "string", None),
        field("title", "string", None),
        field("subtitle", "string", None),
        field("mainstat", "number", Some("req/s in")),
        field("secondarystat", "number", Some("% errors in")),
        Field {
            color: Some("green"),
            ..field("arc__success", "number", Some("Success"))
        },
        Field {
            color: Some("red"),
            ..field("arc__failed", "number", Some("Failed"))
        },
        field("detail__cluster", "string", Some("Cluster")),
        field("detail__namespace", "string", Some("Namespace")),
        field("detail__type", "string", Some("Type")),
        field("detail__request_rate_out", "number", Some("req/s out")),
    ]
}

/// The edge frame's fields.
pub fn edge_fields() -> Vec<Field> {
    vec![
        field("id", "string", None),
        field("source", "string", None),
        field("target", "string", None),
        field("mainstat", "number", Some("req/s")),
        field("secondarystat", "number", Some("% errors")),
        field("detail__p95_latency_ms", "number", Some("p95 ms")),
        field("detail__mtls_percent", "number", Some("mTLS %")),
        field("detail__protocol", "string", Some("Protocol")),
        field("detail__cross_cluster", "string", Some("Cross-cluster")),
    ]
}

/// Node rows.
pub fn nodes(g: &Graph) -> Vec<Value> {
    g.nodes
        .iter()
        .map(|n| {
            let failed = n.error_rate_percent_in / 100.0;
            json!({
                "id": n.id,
                "title": n.name,
                "subtitle": format!("{} · {}", n.cluster, n.namespace),
                "mainstat": n.request_rate_in,
                "secondarystat": n.error_rate_percent_in,
                "arc__success": 1.0 - failed,
                "arc__failed": failed,
                "detail__cluster": n.cluster,
                "detail__namespace": n.namespace,
                "detail__type": n.kind,
                "detail__request_rate_out": n.request_rate_out,
            })
        })
        .collect()
}

/// Edge rows.
pub fn edges(g: &Graph) -> Vec<Value> {
    g.edges
        .iter()
        .map(|e| {
            json!({
                "id": format!("{}->{}", e.source, e.target),
                "source": e.source,
                "target": e.target,
                "mainstat": e.request_rate,
                "secondarystat": e.error_rate_percent,
                "detail__p95_latency_ms": e.p95_latency_ms,
                "detail__mtls_percent": e.mtls_percent,
                "detail__protocol": e.protocol,
                "detail__cross_cluster": if e.cross_cluster { "yes" } else { "no" },
            })
        })
        .collect()
}

/// Both frames with their field lists, in one document.
pub fn frames(g: &Graph) -> Value {
    json!({
        "nodes_fields": node_fields(),
        "edges_fields": edge_fields(),
        "nodes": nodes(g),
        "edges": edges(g),
    })
}
