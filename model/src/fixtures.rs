//! Locating the shared real-data fixtures (`../shared/fixtures`) for tests.
//!
//! Tests call [`fixture_dir`]; where the fixtures are absent it prints why and returns `None` so the
//! test can skip, unless `MESHFED_REQUIRE_FIXTURES=1` (set by `scripts/test`), where a missing
//! fixture is a failure.

use std::path::PathBuf;

/// Environment variable pointing at the fixtures root, overriding the default location.
pub const FIXTURES_ENV: &str = "MESHFED_FIXTURES";
/// Environment variable that turns a missing fixture into a panic instead of a skip.
pub const REQUIRE_ENV: &str = "MESHFED_REQUIRE_FIXTURES";

/// The fixtures root: `$MESHFED_FIXTURES`, else `shared/fixtures` beside the workspace checkout.
pub fn fixtures_root() -> PathBuf {
    match std::env::var_os(FIXTURES_ENV) {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"),
    }
}

/// The directory `sub` under the fixtures root, or `None` (with a message on stderr) when it is
/// absent and fixtures are not required.
///
/// # Panics
/// When the directory is absent and `MESHFED_REQUIRE_FIXTURES=1`.
pub fn fixture_dir(sub: &str) -> Option<PathBuf> {
    let dir = fixtures_root().join(sub);
    if dir.exists() {
        return Some(dir);
    }
    let required = std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1");
    assert!(
        !required,
        "fixture {} is missing and {REQUIRE_ENV}=1",
        dir.display()
    );
    eprintln!(
        "skipping: fixture {} is absent (set {FIXTURES_ENV} to point at shared/fixtures)",
        dir.display()
    );
    None
}

/// Duration bucket bounds in milliseconds, as Istio's `istio_request_duration_milliseconds` uses
/// (20 finite bounds, then `+Inf`).
const DURATION_BUCKETS_MS: [&str; 20] = [
    "0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000", "30000",
    "60000", "300000", "600000", "1800000", "3600000", "7200000",
];

/// Generates a synthetic Istio sidecar scrape (Prometheus text 0.0.4) of at least `min_bytes`, for
/// benchmarks: 25-label `istio_requests_total` counters and `istio_request_duration_milliseconds`
/// histograms (20 buckets, in Istio's label order and value shapes) and `envoy_cluster_*` counters
/// and gauges per `outbound|9080||reviews.bookinfo.svc.cluster.local`-style cluster. Families are
/// contiguous, as Envoy emits them. Deterministic.
///
/// With `commas`, failed requests carry `response_flags="UF,URX"` as real sidecars expose them;
/// without, they carry `"UF"` (the same series count and almost the same size), which naive parsers
/// that split label sets on `,` can read.
pub fn istio_scrape(min_bytes: usize, commas: bool) -> String {
    // Each round of workloads adds roughly 160 KB; pick the count that reaches `min_bytes`.
    let mut workloads = 1;
    loop {
        let body = istio_scrape_with(workloads, commas);
        if body.len() >= min_bytes {
            return body;
        }
        let per = body.len() / workloads;
        workloads = (min_bytes / per.max(1) + 1).max(workloads + 1);
    }
}

fn istio_scrape_with(workloads: usize, commas: bool) -> String {
    use std::fmt::Write;
    const SERVICES: [&str; 4] = ["reviews", "ratings", "details", "productpage"];
    const CODES: [(&str, &str); 4] = [("200", "-"), ("404", "-"), ("503", "UF,URX"), ("504", "UT")];
    let mut out = String::new();
    let series = |out: &mut String, w: usize, svc: &str, code: &str, flags: &str| {
        let flags = if commas {
            flags
        } else {
            flags.split(',').next().unwrap_or(flags)
        };
        let _ = write!(
            out,
            "response_code=\"{code}\",reporter=\"destination\",source_workload=\"productpage-v{w}\",\
             source_workload_namespace=\"bookinfo\",\
             source_principal=\"spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage\",\
             source_app=\"productpage\",source_version=\"v{w}\",source_cluster=\"cluster-east-1\",\
             destination_workload=\"{svc}-v1\",destination_workload_namespace=\"bookinfo\",\
             destination_principal=\"spiffe://cluster.local/ns/bookinfo/sa/bookinfo-{svc}\",\
             destination_app=\"{svc}\",destination_version=\"v1\",\
             destination_service=\"{svc}.bookinfo.svc.cluster.local\",destination_service_name=\"{svc}\",\
             destination_service_namespace=\"bookinfo\",destination_cluster=\"cluster-east-1\",\
             request_protocol=\"http\",response_flags=\"{flags}\",grpc_response_status=\"\",\
             connection_security_policy=\"mutual_tls\",source_canonical_service=\"productpage\",\
             destination_canonical_service=\"{svc}\",source_canonical_revision=\"v{w}\",\
             destination_canonical_revision=\"v1\""
        );
    };
    out.push_str("# HELP istio_requests_total \n# TYPE istio_requests_total counter\n");
    for w in 0..workloads {
        for svc in SERVICES {
            for (i, (code, flags)) in CODES.iter().enumerate() {
                out.push_str("istio_requests_total{");
                series(&mut out, w, svc, code, flags);
                let _ = writeln!(out, "}} {}", 1 + w * 7919 + i * 104_729);
            }
        }
    }
    let hist = "istio_request_duration_milliseconds";
    let _ = writeln!(out, "# HELP {hist} \n# TYPE {hist} histogram");
    for w in 0..workloads {
        for svc in SERVICES {
            for (code, flags) in CODES {
                let count = 1000 + w * 31;
                for (b, le) in DURATION_BUCKETS_MS.iter().chain(&["+Inf"]).enumerate() {
                    let _ = write!(out, "{hist}_bucket{{");
                    series(&mut out, w, svc, code, flags);
                    let _ = writeln!(out, ",le=\"{le}\"}} {}", (count * (b + 1) / 21).min(count));
                }
                for (part, v) in [("sum", format!("{}.5", count * 12)), ("count", count.to_string())] {
                    let _ = write!(out, "{hist}_{part}{{");
                    series(&mut out, w, svc, code, flags);
                    let _ = writeln!(out, "}} {v}");
                }
            }
        }
    }
    for (stat, kind) in [
        ("upstream_rq_total", "counter"),
        ("upstream_cx_total", "counter"),
        ("upstream_rq_retry", "counter"),
        ("upstream_cx_active", "gauge"),
        ("membership_healthy", "gauge"),
    ] {
        let _ = writeln!(out, "# TYPE envoy_cluster_{stat} {kind}");
        for w in 0..workloads {
            for svc in SERVICES {
                let _ = writeln!(
                    out,
                    "envoy_cluster_{stat}{{cluster_name=\"outbound|9080|v{w}|{svc}.bookinfo.svc.cluster.local\"}} {}",
                    w * 3 + svc.len()
                );
            }
        }
    }
    out
}
