//! The rate model: for one combination of active faults and routing, the per-second rate of every
//! series on every pod. Counters integrate these over piecewise-constant segments of time.

mod builder;

use std::sync::Arc;

use crate::dist::BucketFracs;
use crate::faults::Effects;
use crate::routing::RoutingTable;
use crate::topology::{EdgeKind, EdgeSource, ServiceId, Topology, WorkloadId};

/// Which side of a call reports a series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Reporter {
    Source,
    Destination,
}

/// Envoy response flags we produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Flags {
    /// `-`
    None,
    /// `UF,URX`: upstream connection failure, retry limit exceeded.
    UpstreamFailure,
}

/// Where a request goes: a workload instance, or an external host through `PassthroughCluster`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Dst {
    Workload(WorkloadId),
    External(ServiceId),
}

/// Identity of one series family member on one pod (the histogram families share the HTTP key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum SeriesKey {
    Http {
        reporter: Reporter,
        src: Option<WorkloadId>,
        dst: Dst,
        code: u16,
        flags: Flags,
    },
    Tcp {
        reporter: Reporter,
        src: WorkloadId,
        dst: WorkloadId,
    },
    UpstreamRq {
        service: ServiceId,
        inbound: bool,
        class: u16,
    },
}

/// Rates of an HTTP series and the distributions of what it observes.
#[derive(Clone, Debug)]
pub(crate) struct HttpRate {
    pub rps: f64,
    pub latency: Arc<BucketFracs>,
    pub request_bytes: Arc<BucketFracs>,
    pub response_bytes: Arc<BucketFracs>,
}

/// Rates of a TCP series.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TcpRate {
    pub opened_per_sec: f64,
    pub request_bytes_per_sec: f64,
    pub response_bytes_per_sec: f64,
}

/// The rate of one series.
#[derive(Clone, Debug)]
pub(crate) enum SeriesRate {
    Http(HttpRate),
    Tcp(TcpRate),
    Count(f64),
}

/// One Envoy cluster's membership as a client (or server, for `inbound|…`) sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GaugeRow {
    pub service: ServiceId,
    pub inbound: bool,
    pub total: u32,
    pub healthy: u32,
    pub ejected: u32,
}

/// A ground-truth flow: HTTP/gRPC requests per second from a source to a destination workload.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Flow {
    pub source: EdgeSource,
    pub dst: Dst,
    pub code: u16,
    pub flags: Flags,
    pub rps: f64,
}

/// Rates for every pod during one segment.
#[derive(Debug, Default)]
pub(crate) struct RateModel {
    /// Per pod, series sorted by key.
    pub pods: Vec<Vec<(SeriesKey, SeriesRate)>>,
    /// Per workload instance, the membership gauges its pods expose.
    pub gauges: Vec<Vec<GaugeRow>>,
    /// Request flows (ground truth).
    pub flows: Vec<Flow>,
}

/// Builds the rates of every series for the given routing and fault effects.
pub(crate) fn build(topo: &Topology, routing: &RoutingTable, fx: &Effects) -> RateModel {
    let mut b = builder::Builder::new(topo, fx);
    for edge in &topo.edges {
        if topo.services[edge.service].external {
            b.external(edge);
            continue;
        }
        let (src_cluster, src_wl) = match edge.source {
            EdgeSource::Workload(w) => (topo.workloads[w].cluster, Some(w)),
            EdgeSource::Unknown(c) => (c, None),
        };
        let avail = b.endpoints(edge.service);
        let counts: Vec<u32> = avail
            .iter()
            .map(|ws| ws.iter().map(|(_, p)| p.len() as u32).sum())
            .collect();
        for (d, share) in routing.cluster_shares(topo, src_cluster, edge.source, edge.service, &counts) {
            // A dark cluster is cut off from the others; traffic inside it carries on.
            let partitioned = d != src_cluster && (fx.dark[d] || fx.dark[src_cluster]);
            for (w, pods) in &avail[d] {
                if pods.is_empty() {
                    continue;
                }
                let frac = share * pods.len() as f64 / f64::from(counts[d]);
                let call = builder::Call {
                    edge,
                    src_cluster,
                    src: src_wl,
                    dst_cluster: d,
                    dst: *w,
                    dst_pods: pods,
                };
                match edge.kind {
                    EdgeKind::Tcp { .. } if partitioned => {}
                    EdgeKind::Tcp { .. } => b.tcp(&call, frac),
                    EdgeKind::Requests { rate_rps } => b.requests(&call, rate_rps * frac, partitioned),
                }
            }
        }
    }
    b.finish()
}
