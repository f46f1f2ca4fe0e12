//! Istio-shaped label sets for tests and benches: `istio_requests_total` with the labels Istio's
//! stats filter emits (see `istio-stats-filter-expected/client_request_total.yaml.tmpl` in the
//! shared fixtures) plus the target labels a scrape adds: 28 labels per series.

use meshfed_model::Labels;

const SERVICES: [&str; 8] = [
    "productpage",
    "reviews",
    "ratings",
    "details",
    "cart",
    "checkout",
    "search",
    "auth",
];
const CODES: [&str; 6] = ["200", "201", "304", "404", "500", "503"];

/// The `i`th series of a mesh of 5 clusters; consecutive `i` vary the response code and peer
/// first, then the pod, as a real scrape's series do.
pub fn istio_series(i: usize) -> Labels {
    let code = CODES[i % CODES.len()];
    let dst = SERVICES[(i / CODES.len()) % SERVICES.len()];
    let pod_n = i / (CODES.len() * SERVICES.len());
    let src = SERVICES[pod_n % SERVICES.len()];
    let cluster = format!("cluster-{}", pod_n % 5);
    let ns = format!("ns-{}", pod_n % 3);
    let pod = format!("{src}-v1-7d9f8c6b5-{pod_n:05x}");
    let instance = format!(
        "10.{}.{}.{}:15020",
        pod_n >> 16 & 255,
        pod_n >> 8 & 255,
        pod_n & 255
    );
    let dst_service = format!("{dst}.{ns}.svc.cluster.local");
    let pairs: [(&str, &str); 28] = [
        ("__name__", "istio_requests_total"),
        ("cluster", &cluster),
        ("namespace", &ns),
        ("pod", &pod),
        ("instance", &instance),
        ("job", "envoy-stats"),
        (
            "reporter",
            if i.is_multiple_of(2) {
                "source"
            } else {
                "destination"
            },
        ),
        ("source_workload", &format!("{src}-v1")),
        ("source_canonical_service", src),
        ("source_canonical_revision", "v1"),
        ("source_workload_namespace", &ns),
        (
            "source_principal",
            &format!("spiffe://cluster.local/ns/{ns}/sa/{src}"),
        ),
        ("source_app", src),
        ("source_version", "v1"),
        ("source_cluster", &cluster),
        ("destination_workload", &format!("{dst}-v1")),
        ("destination_workload_namespace", &ns),
        (
            "destination_principal",
            &format!("spiffe://cluster.local/ns/{ns}/sa/{dst}"),
        ),
        ("destination_app", dst),
        ("destination_version", "v1"),
        ("destination_service", &dst_service),
        ("destination_canonical_service", dst),
        ("destination_canonical_revision", "v1"),
        ("destination_service_name", dst),
        ("destination_service_namespace", &ns),
        ("destination_cluster", &cluster),
        ("request_protocol", "http"),
        ("response_code", code),
    ];
    let mut b = meshfed_model::LabelsBuilder::with_capacity(31);
    for (n, v) in pairs {
        b.set(n, v);
    }
    b.set("response_flags", "-");
    b.set("connection_security_policy", "mutual_tls");
    b.build()
}
