//! The series the bench's mesh exposes, in one of two mixes (`--mix`):
//!
//! - `graph` (the default): per edge only what the graph reads, as the source proxy reports it:
//!   `istio_requests_total` for 200 and 503 and the 20-bucket duration histogram. Every ingested
//!   sample is then one the edge table keeps: the worst case for the graph's share of ingest.
//! - `istio`: what an Istio sidecar exposes. Per edge and response code, both proxies report
//!   (source and destination reporter) `istio_requests_total` and the three histograms
//!   (`istio_request_duration_milliseconds`, `istio_request_bytes`, `istio_response_bytes`, each
//!   20 buckets, `_sum` and `_count`): 67 series per reporter and code, 24 of which the graph
//!   keeps. Per pod, the proxy's own series in the proportions of the real Istio sidecar scrape
//!   in `../shared/fixtures/istio-sidecar` (`istio-1.5-fixture_istio-merged.txt`: 203
//!   `envoy_cluster_*`, 99 other `envoy_*`, 91 `istio_agent_*`, `istio_build`; their names
//!   here are generic, and most of them stay constant, as a proxy's stats do).

use meshfed_model::{Labels, LabelsBuilder};

use crate::{LE, node};

/// Which series the mesh exposes (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mix {
    Graph,
    Istio,
}

impl Mix {
    /// `--mix graph|istio` (default `graph`).
    pub(crate) fn from_args() -> Self {
        let args: Vec<String> = std::env::args().collect();
        match args
            .iter()
            .position(|a| a == "--mix")
            .and_then(|i| args.get(i + 1))
        {
            None => Self::Graph,
            Some(m) if m == "graph" => Self::Graph,
            Some(m) if m == "istio" => Self::Istio,
            Some(m) => panic!("--mix {m}: expected graph or istio"),
        }
    }
}

/// Responses per code: share of the edge's requests.
const CODES: [(&str, f64); 2] = [("200", 0.98), ("503", 0.02)];

/// Per-pod proxy series of the `istio` mix, by kind, as counted in the real sidecar scrape:
/// `envoy_cluster_*` (of which 2 histograms), other `envoy_*` (3 histograms), `istio_agent_*`.
const POD_FAMILIES: [(&str, usize, usize); 3] = [
    ("envoy_cluster", 203, 2),
    ("envoy", 99, 3),
    ("istio_agent", 92, 0),
];

/// The series one edge contributes, with each one's share of the edge's request rate (the rate
/// its value grows at, relative to the edge's).
pub(crate) fn edge_series(src: usize, dst: usize, mix: Mix) -> Vec<(Labels, f64)> {
    let mut out = Vec::new();
    let reporters: &[&str] = match mix {
        Mix::Graph => &["source"],
        Mix::Istio => &["source", "destination"],
    };
    for &reporter in reporters {
        for (code, share) in CODES {
            let base = |name: &str| base_labels(src, dst, reporter, code, name);
            out.push((base("istio_requests_total").build(), share));
            let histograms: &[&str] = match (mix, code) {
                (Mix::Graph, "200") => &["istio_request_duration_milliseconds"],
                (Mix::Graph, _) => &[],
                (Mix::Istio, _) => &[
                    "istio_request_duration_milliseconds",
                    "istio_request_bytes",
                    "istio_response_bytes",
                ],
            };
            for &name in histograms {
                for (i, le) in LE.iter().enumerate() {
                    let mut b = base(&format!("{name}_bucket"));
                    b.set("le", *le);
                    out.push((b.build(), share * ((i + 1) as f64 / LE.len() as f64).min(1.0)));
                }
                if mix == Mix::Istio {
                    // ~2 KB per request or response body, 40 ms per request.
                    let per_request = if name.ends_with("bytes") { 2_000.0 } else { 40.0 };
                    out.push((base(&format!("{name}_sum")).build(), share * per_request));
                    out.push((base(&format!("{name}_count")).build(), share));
                }
            }
        }
    }
    out
}

/// Istio's labels for one edge as `reporter`'s proxy reports it.
fn base_labels(src: usize, dst: usize, reporter: &str, code: &str, name: &str) -> LabelsBuilder {
    let (sc, sns, sw) = node(src);
    let (dc, dns, dw) = node(dst);
    // The proxy that reports: the series are in its cluster's and pod's scrape.
    let (cluster, namespace, pod) = match reporter {
        "source" => (&sc, &sns, format!("{sw}-0")),
        _ => (&dc, &dns, format!("{dw}-0")),
    };
    let mtls = if reporter == "source" {
        "unknown"
    } else {
        "mutual_tls"
    };
    let mut b = Labels::from_pairs([
        ("__name__", name),
        ("cluster", cluster.as_str()),
        ("namespace", namespace.as_str()),
        ("pod", &pod),
        ("reporter", reporter),
        ("source_cluster", sc.as_str()),
        ("source_workload", sw.as_str()),
        ("source_workload_namespace", sns.as_str()),
        ("source_canonical_service", sw.as_str()),
        ("source_canonical_revision", "v1"),
        (
            "source_principal",
            &format!("spiffe://cluster.local/ns/{sns}/sa/{sw}"),
        ),
        ("destination_cluster", dc.as_str()),
        ("destination_workload", dw.as_str()),
        ("destination_workload_namespace", dns.as_str()),
        ("destination_canonical_service", dw.as_str()),
        ("destination_canonical_revision", "v1"),
        ("destination_service", &format!("{dw}.{dns}.svc.cluster.local")),
        ("destination_service_name", dw.as_str()),
        ("destination_service_namespace", dns.as_str()),
        ("request_protocol", "http"),
        ("connection_security_policy", mtls),
    ])
    .to_builder();
    b.set("response_flags", "-");
    b.set("response_code", code);
    b
}

/// The proxy's own series of workload `i`'s pod (none in the `graph` mix), with the rate each
/// grows at (0: constant, as most of a proxy's stats are between two scrapes).
pub(crate) fn pod_series(i: usize, mix: Mix) -> Vec<(Labels, f64)> {
    if mix == Mix::Graph {
        return Vec::new();
    }
    let (cluster, namespace, workload) = node(i);
    let pod = format!("{workload}-0");
    let mut out = Vec::new();
    for (prefix, count, histograms) in POD_FAMILIES {
        let labels = |name: &str, le: Option<&str>| {
            let mut b = Labels::from_pairs([
                ("__name__", name),
                ("cluster", cluster.as_str()),
                ("namespace", namespace.as_str()),
                ("pod", pod.as_str()),
            ])
            .to_builder();
            if prefix == "envoy_cluster" {
                b.set("cluster_name", "xds-grpc");
            }
            if let Some(le) = le {
                b.set("le", le);
            }
            b.build()
        };
        let mut left = count;
        for h in 0..histograms {
            let name = format!("{prefix}_histogram_{h}");
            for le in LE {
                out.push((labels(&format!("{name}_bucket"), Some(le)), 0.01));
            }
            out.push((labels(&format!("{name}_sum"), None), 0.5));
            out.push((labels(&format!("{name}_count"), None), 0.01));
            left -= LE.len() + 2;
        }
        for k in 0..left {
            // One in four moves (requests, bytes, updates); the rest stay put.
            let rate = if k % 4 == 0 { 0.1 * (1 + k % 5) as f64 } else { 0.0 };
            out.push((labels(&format!("{prefix}_stat_{k}"), None), rate));
        }
    }
    out
}
