//! The built-in applications: bookinfo, a `web` app (frontend → web-api → accounts/inventory/db)
//! and the per-cluster Istio ingress gateway. Placement decides which clusters run what, so that
//! calls cross clusters.

use crate::topology::Protocol;

/// A service template.
pub(crate) struct ServiceSpec {
    pub name: &'static str,
    pub port: u16,
    pub protocol: Protocol,
    pub latency_ms: f64,
    pub sigma: f64,
    pub request_bytes: f64,
    pub response_bytes: f64,
    /// A host outside the mesh (no workloads), reached through `PassthroughCluster`.
    pub external: bool,
}

/// A workload template; `placement` lists 1-based clusters (taken modulo K), empty = every cluster.
pub(crate) struct WorkloadSpec {
    pub name: &'static str,
    pub app: &'static str,
    pub version: Option<&'static str>,
    pub service_account: &'static str,
    pub service: Option<&'static str>,
    pub placement: &'static [usize],
}

/// Default rates of an edge, per source workload instance.
#[derive(Clone, Copy, Debug)]
pub(crate) enum EdgeSpecKind {
    Requests(f64),
    Tcp {
        connections_per_sec: f64,
        request_bytes_per_sec: f64,
        response_bytes_per_sec: f64,
    },
}

/// An edge template: `from` is a workload name or `unknown` (outside the mesh, every cluster).
pub(crate) struct EdgeSpec {
    pub from: &'static str,
    pub to: &'static str,
    pub kind: EdgeSpecKind,
}

/// An application in one namespace; `entry` is the service the ingress gateway calls, and its rate.
pub(crate) struct AppSpec {
    pub namespace: String,
    pub services: Vec<ServiceSpec>,
    pub workloads: Vec<WorkloadSpec>,
    pub edges: Vec<EdgeSpec>,
    pub entry: Option<(&'static str, f64)>,
}

const fn svc(
    name: &'static str,
    port: u16,
    protocol: Protocol,
    latency_ms: f64,
    request_bytes: f64,
    response_bytes: f64,
) -> ServiceSpec {
    ServiceSpec {
        name,
        port,
        protocol,
        latency_ms,
        sigma: 0.6,
        request_bytes,
        response_bytes,
        external: false,
    }
}

const fn wl(
    name: &'static str,
    app: &'static str,
    version: &'static str,
    service_account: &'static str,
    placement: &'static [usize],
) -> WorkloadSpec {
    WorkloadSpec {
        name,
        app,
        version: Some(version),
        service_account,
        service: Some(app),
        placement,
    }
}

const fn req(from: &'static str, to: &'static str, rps: f64) -> EdgeSpec {
    EdgeSpec {
        from,
        to,
        kind: EdgeSpecKind::Requests(rps),
    }
}

/// Istio's bookinfo: productpage in clusters 1–2, reviews v1/v2/v3 spread over clusters 1/2/3,
/// ratings in clusters 2–3, so productpage in cluster-1 calls reviews in cluster-2 and so on.
pub(crate) fn bookinfo() -> AppSpec {
    AppSpec {
        namespace: "bookinfo".to_string(),
        services: vec![
            svc("productpage", 9080, Protocol::Http, 35.0, 700.0, 5200.0),
            svc("details", 9080, Protocol::Http, 4.0, 450.0, 360.0),
            svc("reviews", 9080, Protocol::Http, 12.0, 480.0, 440.0),
            svc("ratings", 9080, Protocol::Http, 3.0, 430.0, 80.0),
        ],
        workloads: vec![
            wl(
                "productpage-v1",
                "productpage",
                "v1",
                "bookinfo-productpage",
                &[1, 2],
            ),
            wl("details-v1", "details", "v1", "bookinfo-details", &[]),
            wl("reviews-v1", "reviews", "v1", "bookinfo-reviews", &[1]),
            wl("reviews-v2", "reviews", "v2", "bookinfo-reviews", &[2]),
            wl("reviews-v3", "reviews", "v3", "bookinfo-reviews", &[3]),
            wl("ratings-v1", "ratings", "v1", "bookinfo-ratings", &[2, 3]),
        ],
        edges: vec![
            req("productpage-v1", "details", 10.0),
            req("productpage-v1", "reviews", 10.0),
            req("reviews-v2", "ratings", 6.0),
            req("reviews-v3", "ratings", 6.0),
        ],
        entry: Some(("productpage", 10.0)),
    }
}

/// A web app: `frontend` everywhere calls `web-api` (clusters 1 and 2), which calls `accounts`
/// (everywhere), `inventory` (gRPC, clusters 2–3) and an external payments API (through
/// `PassthroughCluster`); `accounts` holds TCP connections to `accounts-db` (cluster 1 only).
/// Clients outside the mesh call `frontend` directly.
pub(crate) fn web(namespace: &str) -> AppSpec {
    AppSpec {
        namespace: namespace.to_string(),
        services: vec![
            svc("frontend", 8080, Protocol::Http, 25.0, 620.0, 12000.0),
            svc("web-api", 8080, Protocol::Http, 18.0, 900.0, 1600.0),
            svc("accounts", 8080, Protocol::Http, 6.0, 520.0, 640.0),
            svc("inventory", 9090, Protocol::Grpc, 8.0, 180.0, 320.0),
            svc("accounts-db", 5432, Protocol::Tcp, 1.0, 0.0, 0.0),
            ServiceSpec {
                external: true,
                ..svc(
                    "api.payments.example.com",
                    80,
                    Protocol::Http,
                    85.0,
                    760.0,
                    1100.0,
                )
            },
        ],
        workloads: vec![
            wl("frontend", "frontend", "v1", "frontend", &[]),
            wl("web-api", "web-api", "v1", "web-api", &[1, 2]),
            wl("accounts", "accounts", "v1", "accounts", &[]),
            wl("inventory", "inventory", "v1", "inventory", &[2, 3]),
            wl("accounts-db", "accounts-db", "v1", "accounts-db", &[1]),
        ],
        edges: vec![
            req("unknown", "frontend", 2.0),
            req("frontend", "web-api", 20.0),
            req("web-api", "accounts", 15.0),
            req("web-api", "inventory", 10.0),
            req("web-api", "api.payments.example.com", 2.0),
            EdgeSpec {
                from: "accounts",
                to: "accounts-db",
                kind: EdgeSpecKind::Tcp {
                    connections_per_sec: 0.5,
                    request_bytes_per_sec: 2048.0,
                    response_bytes_per_sec: 16384.0,
                },
            },
        ],
        entry: Some(("frontend", 20.0)),
    }
}

/// The ingress gateway (no version label, so Istio reports `unknown` / `latest`).
pub(crate) fn ingress_gateway() -> WorkloadSpec {
    WorkloadSpec {
        name: "istio-ingressgateway",
        app: "istio-ingressgateway",
        version: None,
        service_account: "istio-ingressgateway-service-account",
        service: None,
        placement: &[],
    }
}
