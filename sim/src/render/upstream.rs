//! Envoy's per-upstream-cluster stats (`envoy_cluster_upstream_cx_total{cluster_name="outbound|…"}`
//! and ~60 siblings), which a sidecar without `Sidecar` scoping exposes for every cluster in the
//! mesh: this is where the thousands of series of a real `/stats/prometheus` come from. Off by
//! default ([`crate::SimConfig::envoy_upstream_series`] = 0).
//!
//! Values are pure functions of (pod, cluster, stat, time since the pod started): counters grow
//! at a per-series rate (errors at a hundredth of it) and restart with the pod, gauges wander
//! through a small range. Nothing is stored per series.

use std::sync::Arc;

use crate::topology::Topology;

use super::Family;

/// Counters Envoy keeps per upstream cluster (`cluster.<name>.<stat>`), tag-extracted to
/// `envoy_cluster_<stat>`; the bool marks error-like stats that rarely move.
const COUNTERS: [(&str, bool); 44] = [
    ("assignment_stale", true),
    ("assignment_timeout_received", true),
    ("bind_errors", true),
    ("default_total_match_count", false),
    ("lb_healthy_panic", true),
    ("lb_local_cluster_not_ok", true),
    ("lb_recalculate_zone_structures", true),
    ("lb_zone_cluster_too_small", true),
    ("lb_zone_no_capacity_left", true),
    ("lb_zone_routing_all_directly", true),
    ("membership_change", true),
    ("original_dst_host_invalid", true),
    ("retry_or_shadow_abandoned", true),
    ("update_attempt", false),
    ("update_empty", true),
    ("update_failure", true),
    ("update_no_rebuild", false),
    ("update_success", false),
    ("upstream_cx_close_notify", true),
    ("upstream_cx_connect_attempts_exceeded", true),
    ("upstream_cx_connect_fail", true),
    ("upstream_cx_connect_timeout", true),
    ("upstream_cx_destroy", false),
    ("upstream_cx_destroy_local", false),
    ("upstream_cx_destroy_remote", false),
    ("upstream_cx_http1_total", false),
    ("upstream_cx_http2_total", false),
    ("upstream_cx_idle_timeout", false),
    ("upstream_cx_overflow", true),
    ("upstream_cx_protocol_error", true),
    ("upstream_cx_rx_bytes_total", false),
    ("upstream_cx_total", false),
    ("upstream_cx_tx_bytes_total", false),
    ("upstream_flow_control_paused_reading_total", true),
    ("upstream_flow_control_resumed_reading_total", true),
    ("upstream_rq_cancelled", true),
    ("upstream_rq_completed", false),
    ("upstream_rq_pending_overflow", true),
    ("upstream_rq_pending_total", false),
    ("upstream_rq_per_try_timeout", true),
    ("upstream_rq_retry", true),
    ("upstream_rq_retry_success", true),
    ("upstream_rq_timeout", true),
    ("upstream_rq_total", false),
];

/// Gauges per upstream cluster, with the largest value each wanders up to.
const GAUGES: [(&str, u64); 16] = [
    ("circuit_breakers_default_cx_open", 1),
    ("circuit_breakers_default_cx_pool_open", 1),
    ("circuit_breakers_default_rq_open", 1),
    ("circuit_breakers_default_rq_pending_open", 1),
    ("circuit_breakers_default_rq_retry_open", 1),
    ("circuit_breakers_high_cx_open", 1),
    ("circuit_breakers_high_rq_open", 1),
    ("lb_subsets_active", 3),
    ("max_host_weight", 1),
    ("membership_degraded", 1),
    ("membership_excluded", 1),
    ("upstream_cx_active", 8),
    ("upstream_cx_rx_bytes_buffered", 4096),
    ("upstream_cx_tx_bytes_buffered", 4096),
    ("upstream_rq_active", 6),
    ("upstream_rq_pending_active", 2),
];

/// Stats per upstream cluster.
pub(crate) const STATS_PER_CLUSTER: usize = COUNTERS.len() + GAUGES.len();

/// Envoy's own clusters, present in every sidecar.
const STATIC_CLUSTERS: [&str; 7] = [
    "BlackHoleCluster",
    "InboundPassthroughCluster",
    "PassthroughCluster",
    "agent",
    "prometheus_stats",
    "sds-grpc",
    "xds-grpc",
];

/// Enough upstream cluster names for `series` series per pod: the static clusters, then
/// `outbound|<port>||<fqdn>` for every service in the mesh, then DestinationRule subsets
/// (`outbound|<port>|v1|<fqdn>`, `v2`, …) as far as needed. Sorted, as Envoy prints them.
pub(crate) fn cluster_names(topo: &Topology, series: usize) -> Arc<[Arc<str>]> {
    let wanted = series.div_ceil(STATS_PER_CLUSTER);
    let mut names: Vec<String> = STATIC_CLUSTERS.iter().map(|s| s.to_string()).collect();
    let mut seen = std::collections::HashSet::new();
    let services: Vec<_> = topo
        .services
        .iter()
        .filter(|s| !s.external && seen.insert(s.fqdn.clone()))
        .collect();
    names.extend(services.iter().map(|s| s.outbound_cluster()));
    let mut subset = 1;
    while names.len() < wanted && !services.is_empty() {
        for s in &services {
            names.push(format!("outbound|{}|v{subset}|{}", s.port, s.fqdn));
        }
        subset += 1;
    }
    // Past the mesh's services only synthetic names are left (a tiny mesh and a large count).
    let mut i = 0;
    while names.len() < wanted {
        names.push(format!("outbound|8080||upstream-{i}.external.svc.cluster.local"));
        i += 1;
    }
    names.truncate(wanted);
    names.sort();
    names.into_iter().map(Arc::from).collect()
}

/// A stable 64-bit mix of the identifying numbers (splitmix64 finaliser).
fn mix(pod: usize, cluster: usize, stat: usize) -> u64 {
    let mut z = (pod as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((cluster as u64) << 20)
        .wrapping_add(stat as u64);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The counter and gauge families for `pod` at `t` seconds, `uptime` seconds after it (re)started:
/// exactly `series` series, cluster-major (every stat of the first cluster, then the next), the
/// last cluster possibly partial.
pub(crate) fn families(clusters: &[Arc<str>], series: usize, pod: usize, t: f64, uptime: f64) -> Vec<Family> {
    let included = |c: usize, s: usize| c * STATS_PER_CLUSTER + s < series;
    let labels: Vec<_> = clusters
        .iter()
        .map(|c| Arc::new(vec![("cluster_name", c.to_string())]))
        .collect();
    let mut out = Vec::with_capacity(STATS_PER_CLUSTER);
    for (s, (stat, rare)) in COUNTERS.iter().enumerate() {
        let mut f = Family::new_owned(format!("envoy_cluster_{stat}"), "counter");
        for (c, l) in labels.iter().enumerate().filter(|(c, _)| included(*c, s)) {
            let h = mix(pod, c, s);
            // 0–10 per second; bytes a thousand times that; errors a hundredth.
            let mut rate = (h % 1000) as f64 / 100.0;
            if stat.ends_with("bytes_total") {
                rate *= 1000.0;
            }
            if *rare {
                rate /= 100.0;
            }
            f.push(l.clone(), (rate * uptime.max(0.0)).floor());
        }
        out.push(f);
    }
    for (g, (stat, max)) in GAUGES.iter().enumerate() {
        let s = COUNTERS.len() + g;
        let mut f = Family::new_owned(format!("envoy_cluster_{stat}"), "gauge");
        for (c, l) in labels.iter().enumerate().filter(|(c, _)| included(*c, s)) {
            let h = mix(pod, c, s);
            // A step every 10–40 s through 0..=max, phase per series.
            let period = 10.0 + (h % 31) as f64;
            let step = ((t / period).floor() as u64).wrapping_add(h >> 32);
            f.push(l.clone(), (step % (max + 1)) as f64);
        }
        out.push(f);
    }
    out.retain(|f| !f.lines.is_empty());
    out
}

#[cfg(test)]
mod tests;
