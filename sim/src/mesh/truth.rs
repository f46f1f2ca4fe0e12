//! Ground truth for tests: the configured request rates in effect at a given time, as the
//! telemetry should show them.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Mesh;
use crate::model::{Dst, Flags};
use crate::topology::EdgeSource;

/// Ground truth: requests per second on one (source, destination workload, code) path right now.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EdgeRate {
    /// Source cluster (`unknown` for callers outside the mesh, as Istio labels them).
    pub source_cluster: String,
    /// Source namespace (`unknown` outside the mesh).
    pub source_namespace: String,
    /// Source workload (`unknown` outside the mesh).
    pub source_workload: String,
    /// Destination cluster (`unknown` for hosts outside the mesh).
    pub destination_cluster: String,
    /// Destination namespace (`unknown` outside the mesh).
    pub destination_namespace: String,
    /// Destination workload (`unknown` outside the mesh).
    pub destination_workload: String,
    /// Destination service FQDN (the host for external calls).
    pub destination_service: String,
    /// HTTP status.
    pub response_code: u16,
    /// Envoy response flags (`-` or `UF,URX`).
    pub response_flags: String,
    /// Requests per second (summed over pods).
    pub rate_rps: f64,
}

impl Mesh {
    /// Ground truth: every request path's rate now (HTTP and gRPC; TCP edges are not requests).
    pub fn edge_rates(&self) -> Vec<EdgeRate> {
        self.edge_rates_at(self.clock.now_ms())
    }

    /// Ground truth: every request path's rate at simulated time `at_ms`.
    pub fn edge_rates_at(&self, at_ms: u64) -> Vec<EdgeRate> {
        let model = self.read().model_at(at_ms as f64 / 1000.0).clone();
        let t = &self.topo;
        let mut out: Vec<EdgeRate> = model
            .flows
            .iter()
            .map(|f| {
                let (dc, dn, dw, ds) = match f.dst {
                    Dst::Workload(w) => {
                        let d = &t.workloads[w];
                        let svc = d.service.map_or_else(String::new, |s| t.services[s].fqdn.clone());
                        (d.cluster_name.clone(), d.namespace.clone(), d.name.clone(), svc)
                    }
                    Dst::External(s) => (
                        "unknown".into(),
                        "unknown".into(),
                        "unknown".into(),
                        t.services[s].fqdn.clone(),
                    ),
                };
                let (sc, sn, sw) = match f.source {
                    EdgeSource::Workload(w) => {
                        let s = &t.workloads[w];
                        (s.cluster_name.clone(), s.namespace.clone(), s.name.clone())
                    }
                    EdgeSource::Unknown(_) => ("unknown".into(), "unknown".into(), "unknown".into()),
                };
                EdgeRate {
                    source_cluster: sc,
                    source_namespace: sn,
                    source_workload: sw,
                    destination_cluster: dc,
                    destination_namespace: dn,
                    destination_workload: dw,
                    destination_service: ds,
                    response_code: f.code,
                    response_flags: if f.flags == Flags::UpstreamFailure {
                        "UF,URX"
                    } else {
                        "-"
                    }
                    .into(),
                    rate_rps: f.rps,
                }
            })
            .collect();
        out.sort_by(|a, b| {
            (
                &a.source_cluster,
                &a.source_workload,
                &a.destination_cluster,
                &a.destination_workload,
                a.response_code,
            )
                .cmp(&(
                    &b.source_cluster,
                    &b.source_workload,
                    &b.destination_cluster,
                    &b.destination_workload,
                    b.response_code,
                ))
        });
        out
    }

    /// Ground truth: requests per second from each source cluster to each destination cluster now.
    pub fn cluster_pair_rates(&self) -> BTreeMap<(String, String), f64> {
        let mut m = BTreeMap::new();
        for e in self.edge_rates() {
            *m.entry((e.source_cluster, e.destination_cluster)).or_insert(0.0) += e.rate_rps;
        }
        m
    }

    /// Ground truth: the request rate now from `source_cluster` to `destination_cluster`.
    pub fn cluster_pair_rate(&self, source_cluster: &str, destination_cluster: &str) -> f64 {
        self.edge_rates()
            .iter()
            .filter(|e| e.source_cluster == source_cluster && e.destination_cluster == destination_cluster)
            .map(|e| e.rate_rps)
            .sum()
    }

    /// Ground truth: the request rate now matching a filter over [`EdgeRate`]s.
    pub fn configured_rate(&self, filter: impl Fn(&EdgeRate) -> bool) -> f64 {
        self.edge_rates()
            .iter()
            .filter(|e| filter(e))
            .map(|e| e.rate_rps)
            .sum()
    }
}
