//! What an Istio series means to the graph: which edge it belongs to, which reporter's view it
//! is, and what it measures.
//!
//! Reporter choice follows Kiali: a call whose source runs in the mesh is counted from the
//! source proxy's report (it also sees calls that never reached the destination: no healthy
//! upstream, connect failures); a call from outside the mesh (`source_workload="unknown"`) only
//! has the destination's report. Series of the other reporter are kept for what only that side
//! knows (`connection_security_policy` is set by the destination only).

use std::sync::Arc;

use meshfed_model::Labels;

/// Interned label value.
pub type Name = Arc<str>;

/// One side of a call at the finest grain Istio reports.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// Cluster (`unknown` for callers outside the mesh).
    pub cluster: Name,
    /// Workload namespace.
    pub namespace: Name,
    /// Workload (`unknown` when the proxy had no peer metadata).
    pub workload: Name,
    /// `app` (canonical service).
    pub app: Name,
    /// `version` (canonical revision).
    pub version: Name,
    /// Service name (destination side only; empty for sources).
    pub service: Name,
    /// Service namespace (destination side only).
    pub service_namespace: Name,
}

/// A source → destination pair with its protocol: the unit the edge table maintains.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FineEdge {
    /// Caller.
    pub source: Endpoint,
    /// Callee.
    pub destination: Endpoint,
    /// `http`, `grpc` or `tcp`.
    pub protocol: Name,
}

/// Which proxy reported a series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reporter {
    /// The caller's proxy.
    Source,
    /// The callee's proxy.
    Destination,
}

/// Response classes an edge breaks its request rate into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeClass {
    /// 1xx and anything unparsable.
    Other = 0,
    /// 2xx.
    Ok2xx = 1,
    /// 3xx.
    Redirect3xx = 2,
    /// 4xx.
    Client4xx = 3,
    /// 5xx.
    Server5xx = 4,
    /// `response_code="0"`: the connection failed before any response.
    NoResponse = 5,
}

impl CodeClass {
    /// Number of classes.
    pub const COUNT: usize = 6;
    /// Names used in the API, indexed by the discriminant.
    pub const NAMES: [&'static str; Self::COUNT] = ["other", "2xx", "3xx", "4xx", "5xx", "no_response"];

    fn of(code: &str) -> Self {
        match code.as_bytes().first() {
            Some(b'2') if code.len() == 3 => Self::Ok2xx,
            Some(b'3') if code.len() == 3 => Self::Redirect3xx,
            Some(b'4') if code.len() == 3 => Self::Client4xx,
            Some(b'5') if code.len() == 3 => Self::Server5xx,
            _ if code == "0" => Self::NoResponse,
            _ => Self::Other,
        }
    }
}

/// What a series measures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Measure {
    /// `istio_requests_total`.
    Requests {
        /// Response class.
        class: CodeClass,
        /// Counts as an error: 5xx, no response, or a non-OK gRPC status.
        error: bool,
    },
    /// `istio_request_duration_milliseconds_bucket` with its upper bound.
    DurationBucket {
        /// `le`.
        le: f64,
    },
    /// `istio_request_duration_milliseconds_sum`.
    DurationSum,
    /// `istio_request_bytes_sum`.
    RequestBytes,
    /// `istio_response_bytes_sum`.
    ResponseBytes,
    /// `istio_tcp_received_bytes_total` (client to server).
    TcpReceived,
    /// `istio_tcp_sent_bytes_total` (server to client).
    TcpSent,
    /// `istio_tcp_connections_opened_total`.
    TcpOpened,
}

/// A classified Istio series.
#[derive(Clone, Debug)]
pub struct IstioSeries {
    /// The edge.
    pub edge: FineEdge,
    /// What it measures.
    pub measure: Measure,
    /// Who reported it.
    pub reporter: Reporter,
    /// Whether the edge's rates are taken from this series (see the module docs).
    pub primary: bool,
    /// For destination-reported requests: whether the connection was mutual TLS.
    pub mtls: Option<bool>,
    /// Envoy response flags other than `-`.
    pub flags: Option<Name>,
}

/// Classifies a series, or `None` when the graph does not use it.
pub fn classify(labels: &Labels, intern: &mut impl FnMut(&str) -> Name) -> Option<IstioSeries> {
    let name = labels.metric_name()?;
    let measure = match name {
        "istio_requests_total" => {
            let code = labels.get("response_code").unwrap_or("");
            let class = CodeClass::of(code);
            let grpc = labels.get("grpc_response_status").unwrap_or("");
            let grpc_error = !grpc.is_empty() && grpc != "0";
            let error = matches!(class, CodeClass::Server5xx | CodeClass::NoResponse) || grpc_error;
            Measure::Requests { class, error }
        }
        "istio_request_duration_milliseconds_bucket" => Measure::DurationBucket {
            le: parse_le(labels.get("le")?)?,
        },
        "istio_request_duration_milliseconds_sum" => Measure::DurationSum,
        "istio_request_bytes_sum" => Measure::RequestBytes,
        "istio_response_bytes_sum" => Measure::ResponseBytes,
        "istio_tcp_received_bytes_total" => Measure::TcpReceived,
        "istio_tcp_sent_bytes_total" => Measure::TcpSent,
        "istio_tcp_connections_opened_total" => Measure::TcpOpened,
        _ => return None,
    };
    let reporter = match labels.get("reporter")? {
        "source" => Reporter::Source,
        "destination" => Reporter::Destination,
        _ => return None, // waypoint reports would double count the source's
    };
    let get = |k: &str| labels.get(k).filter(|v| !v.is_empty()).unwrap_or("unknown");
    let source_workload = get("source_workload");
    let source_cluster = get("source_cluster");
    let mut destination_cluster = get("destination_cluster");
    if destination_cluster == "unknown" {
        // Istio leaves it unknown when the peer sent no metadata; the call stayed in the cluster.
        destination_cluster = source_cluster;
    }
    let tcp = name.starts_with("istio_tcp_");
    let protocol = if tcp { "tcp" } else { get("request_protocol") };
    let edge = FineEdge {
        source: Endpoint {
            cluster: intern(source_cluster),
            namespace: intern(get("source_workload_namespace")),
            workload: intern(source_workload),
            app: intern(app_of(labels, "source")),
            version: intern(version_of(labels, "source")),
            service: intern(""),
            service_namespace: intern(""),
        },
        destination: Endpoint {
            cluster: intern(destination_cluster),
            namespace: intern(get("destination_workload_namespace")),
            workload: intern(get("destination_workload")),
            app: intern(app_of(labels, "destination")),
            version: intern(version_of(labels, "destination")),
            service: intern(service_name(labels)),
            service_namespace: intern(get("destination_service_namespace")),
        },
        protocol: intern(protocol),
    };
    let primary = match reporter {
        Reporter::Source => source_workload != "unknown",
        Reporter::Destination => source_workload == "unknown",
    };
    let mtls = (reporter == Reporter::Destination && matches!(measure, Measure::Requests { .. }))
        .then(|| labels.get("connection_security_policy") == Some("mutual_tls"));
    let flags = labels
        .get("response_flags")
        .filter(|f| !f.is_empty() && *f != "-")
        .map(&mut *intern);
    Some(IstioSeries {
        edge,
        measure,
        reporter,
        primary,
        mtls,
        flags,
    })
}

fn app_of<'l>(labels: &'l Labels, side: &str) -> &'l str {
    let pick = |k: String| labels.get(&k).filter(|v| !v.is_empty() && *v != "unknown");
    pick(format!("{side}_canonical_service"))
        .or_else(|| pick(format!("{side}_app")))
        .or_else(|| pick(format!("{side}_workload")))
        .unwrap_or("unknown")
}

fn version_of<'l>(labels: &'l Labels, side: &str) -> &'l str {
    let pick = |k: String| labels.get(&k).filter(|v| !v.is_empty() && *v != "unknown");
    pick(format!("{side}_canonical_revision"))
        .or_else(|| pick(format!("{side}_version")))
        .unwrap_or("unknown")
}

/// `destination_service_name`, falling back to the first label of `destination_service`.
fn service_name(labels: &Labels) -> &str {
    match labels.get("destination_service_name").filter(|v| !v.is_empty()) {
        Some(n) => n,
        None => labels
            .get("destination_service")
            .and_then(|s| s.split('.').next())
            .filter(|v| !v.is_empty())
            .unwrap_or("unknown"),
    }
}

fn parse_le(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        // `NaN`, `-Inf`: no bucket bound.
        _ => s.parse().ok().filter(|le: &f64| le.is_finite()),
    }
}

/// A service in one cluster, as health is kept.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    /// Cluster.
    pub cluster: Name,
    /// Namespace.
    pub namespace: Name,
    /// Service name.
    pub service: Name,
}

/// Envoy cluster gauges health reads, keyed by the service they describe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointGauge {
    /// `envoy_cluster_membership_healthy`.
    Healthy,
    /// `envoy_cluster_membership_total`.
    Total,
    /// `envoy_cluster_outlier_detection_ejections_active`.
    Ejected,
}

/// Classifies an Envoy outbound-cluster gauge: which service (as seen from the reporting proxy's
/// cluster, the `cluster` target label) it counts endpoints of. Subset clusters are skipped: their
/// endpoints are also in the subset-less cluster.
pub fn classify_endpoint_gauge(
    labels: &Labels,
    intern: &mut impl FnMut(&str) -> Name,
) -> Option<(ServiceKey, EndpointGauge)> {
    let gauge = match labels.metric_name()? {
        "envoy_cluster_membership_healthy" => EndpointGauge::Healthy,
        "envoy_cluster_membership_total" => EndpointGauge::Total,
        "envoy_cluster_outlier_detection_ejections_active" => EndpointGauge::Ejected,
        _ => return None,
    };
    let cluster = labels.get("cluster")?;
    let mut parts = labels.get("cluster_name")?.split('|');
    let (direction, _port, subset, host) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if direction != "outbound" || !subset.is_empty() {
        return None;
    }
    let mut host_parts = host.split('.');
    let (service, namespace) = (host_parts.next()?, host_parts.next()?);
    Some((
        ServiceKey {
            cluster: intern(cluster),
            namespace: intern(namespace),
            service: intern(service),
        },
        gauge,
    ))
}
