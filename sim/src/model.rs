//! The rate model: for one combination of active faults and routing, the per-second rate of every
//! series on every pod. Counters integrate these over piecewise-constant segments of time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::dist::BucketFracs;
use crate::faults::Effects;
use crate::routing::RoutingTable;
use crate::topology::{ClusterId, EdgeKind, EdgeSource, PodId, ServiceId, Topology, WorkloadId};

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

/// Identity of one series family member on one pod (the histogram families share the HTTP key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum SeriesKey {
    Http {
        reporter: Reporter,
        src: Option<WorkloadId>,
        dst: WorkloadId,
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
    pub dst: WorkloadId,
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

/// Added client-side latency of a call within one cluster, and across clusters, in ms.
const LOCAL_NET_MS: f64 = 0.4;
const REMOTE_NET_MS: f64 = 3.0;

#[derive(Default)]
struct DistCache(HashMap<(u8, ServiceId, u64), Arc<BucketFracs>>);

impl DistCache {
    fn get(
        &mut self,
        kind: u8,
        svc: ServiceId,
        shift: f64,
        f: impl FnOnce() -> BucketFracs,
    ) -> Arc<BucketFracs> {
        self.0
            .entry((kind, svc, shift.to_bits()))
            .or_insert_with(|| Arc::new(f()))
            .clone()
    }
}

fn add(map: &mut BTreeMap<SeriesKey, SeriesRate>, key: SeriesKey, rate: SeriesRate) {
    match (map.get_mut(&key), rate) {
        (Some(SeriesRate::Http(a)), SeriesRate::Http(b)) => a.rps += b.rps,
        (Some(SeriesRate::Count(a)), SeriesRate::Count(b)) => *a += b,
        (Some(SeriesRate::Tcp(a)), SeriesRate::Tcp(b)) => {
            a.opened_per_sec += b.opened_per_sec;
            a.request_bytes_per_sec += b.request_bytes_per_sec;
            a.response_bytes_per_sec += b.response_bytes_per_sec;
        }
        (_, rate) => {
            map.insert(key, rate);
        }
    }
}

/// Shares of the edge's traffic per destination cluster.
fn cluster_shares(
    topo: &Topology,
    routing: &RoutingTable,
    source_cluster: ClusterId,
    source: EdgeSource,
    service: ServiceId,
    avail: &[u32],
) -> Vec<(ClusterId, f64)> {
    let total: u32 = avail.iter().sum();
    if total == 0 {
        return Vec::new();
    }
    if let EdgeSource::Unknown(c) = source {
        return if avail[c] > 0 { vec![(c, 1.0)] } else { Vec::new() };
    }
    let src = match source {
        EdgeSource::Workload(w) => Some(&topo.workloads[w]),
        EdgeSource::Unknown(_) => None,
    };
    if let Some(weights) = routing.lookup(topo, source_cluster, src, &topo.services[service]) {
        let kept: Vec<(ClusterId, f64)> = weights
            .into_iter()
            .filter(|&(c, w)| w > 0.0 && avail[c] > 0)
            .collect();
        let sum: f64 = kept.iter().map(|(_, w)| w).sum();
        if sum > 0.0 {
            return kept.into_iter().map(|(c, w)| (c, w / sum)).collect();
        }
    }
    (0..avail.len())
        .filter(|&c| avail[c] > 0)
        .map(|c| (c, f64::from(avail[c]) / f64::from(total)))
        .collect()
}

/// Builds the rates of every series for the given routing and fault effects.
pub(crate) fn build(topo: &Topology, routing: &RoutingTable, fx: &Effects) -> RateModel {
    let mut per_pod: Vec<BTreeMap<SeriesKey, SeriesRate>> = vec![BTreeMap::new(); topo.pods.len()];
    let mut flows = Vec::new();
    let mut dists = DistCache::default();
    // Endpoints receiving traffic: not ejected, unless every endpoint of the service is (panic mode).
    let avail_pods: Vec<Vec<PodId>> = topo
        .workloads
        .iter()
        .map(|w| w.pods.iter().copied().filter(|&p| !fx.ejected[p]).collect())
        .collect();
    for edge in &topo.edges {
        let svc = &topo.services[edge.service];
        let mut avail: Vec<Vec<(WorkloadId, &[PodId])>> = topo.backends[edge.service]
            .iter()
            .map(|ws| ws.iter().map(|&w| (w, avail_pods[w].as_slice())).collect())
            .collect();
        if avail.iter().flatten().all(|(_, p)| p.is_empty()) {
            avail = topo.backends[edge.service]
                .iter()
                .map(|ws| {
                    ws.iter()
                        .map(|&w| (w, topo.workloads[w].pods.as_slice()))
                        .collect()
                })
                .collect();
        }
        let counts: Vec<u32> = avail
            .iter()
            .map(|ws| ws.iter().map(|(_, p)| p.len() as u32).sum())
            .collect();
        let (src_cluster, src_wl) = match edge.source {
            EdgeSource::Workload(w) => (topo.workloads[w].cluster, Some(w)),
            EdgeSource::Unknown(c) => (c, None),
        };
        let src_pods: &[PodId] = src_wl.map_or(&[], |w| topo.workloads[w].pods.as_slice());
        for (d, share) in cluster_shares(topo, routing, src_cluster, edge.source, edge.service, &counts) {
            let partitioned = d != src_cluster && (fx.dark[d] || fx.dark[src_cluster]);
            for &(w, pods) in &avail[d] {
                if pods.is_empty() {
                    continue;
                }
                let frac = share * pods.len() as f64 / f64::from(counts[d]);
                match edge.kind {
                    EdgeKind::Tcp {
                        connections_per_sec,
                        request_bytes_per_sec,
                        response_bytes_per_sec,
                    } => {
                        if partitioned {
                            continue;
                        }
                        let rate = |n: usize| {
                            SeriesRate::Tcp(TcpRate {
                                opened_per_sec: connections_per_sec * frac / n as f64,
                                request_bytes_per_sec: request_bytes_per_sec * frac / n as f64,
                                response_bytes_per_sec: response_bytes_per_sec * frac / n as f64,
                            })
                        };
                        let Some(s) = src_wl else { continue };
                        for &p in src_pods {
                            add(
                                &mut per_pod[p],
                                SeriesKey::Tcp {
                                    reporter: Reporter::Source,
                                    src: s,
                                    dst: w,
                                },
                                rate(src_pods.len()),
                            );
                        }
                        for &p in pods {
                            add(
                                &mut per_pod[p],
                                SeriesKey::Tcp {
                                    reporter: Reporter::Destination,
                                    src: s,
                                    dst: w,
                                },
                                rate(pods.len()),
                            );
                        }
                    }
                    EdgeKind::Requests { rate_rps } => {
                        let rps = rate_rps * frac;
                        let outcomes: Vec<(u16, Flags, f64)> = if partitioned {
                            vec![(503, Flags::UpstreamFailure, 1.0)]
                        } else {
                            let (f, code) = fx.error.get(&w).copied().unwrap_or((0.0, 503));
                            vec![(200, Flags::None, 1.0 - f), (code, Flags::None, f)]
                        };
                        let shift = fx.latency.get(&w).copied().unwrap_or(0.0);
                        let net = if d == src_cluster {
                            LOCAL_NET_MS
                        } else {
                            REMOTE_NET_MS
                        };
                        let p = svc.profile;
                        for (code, flags, phi) in outcomes {
                            if phi <= 0.0 || rps <= 0.0 {
                                continue;
                            }
                            let r = rps * phi;
                            flows.push(Flow {
                                source: edge.source,
                                dst: w,
                                code,
                                flags,
                                rps: r,
                            });
                            let failed = flags == Flags::UpstreamFailure;
                            let req = dists.get(0, edge.service, 0.0, || {
                                BucketFracs::lognormal(p.request_bytes_median, 0.3, 0.0)
                            });
                            let resp = if code < 400 {
                                dists.get(1, edge.service, 0.0, || {
                                    BucketFracs::lognormal(p.response_bytes_median, 0.5, 0.0)
                                })
                            } else {
                                dists.get(2, 0, 0.0, || BucketFracs::lognormal(95.0, 0.1, 0.0))
                            };
                            let dst_lat = dists.get(3, edge.service, shift, || {
                                BucketFracs::lognormal(p.latency_median_ms, p.latency_sigma, shift)
                            });
                            let src_lat = if failed {
                                dists.get(4, 0, 0.0, || BucketFracs::lognormal(1000.0, 0.3, 0.0))
                            } else {
                                dists.get(5, edge.service, shift + net, || {
                                    BucketFracs::lognormal(p.latency_median_ms, p.latency_sigma, shift + net)
                                })
                            };
                            let class = code / 100 * 100;
                            if let Some(s) = src_wl {
                                let n = src_pods.len() as f64;
                                let key = SeriesKey::Http {
                                    reporter: Reporter::Source,
                                    src: Some(s),
                                    dst: w,
                                    code,
                                    flags,
                                };
                                let rate = HttpRate {
                                    rps: r / n,
                                    latency: src_lat,
                                    request_bytes: req.clone(),
                                    response_bytes: resp.clone(),
                                };
                                let up = SeriesKey::UpstreamRq {
                                    service: edge.service,
                                    inbound: false,
                                    class,
                                };
                                for &sp in src_pods {
                                    add(&mut per_pod[sp], key, SeriesRate::Http(rate.clone()));
                                    add(&mut per_pod[sp], up, SeriesRate::Count(r / n));
                                }
                            }
                            if failed {
                                continue;
                            }
                            let n = pods.len() as f64;
                            let key = SeriesKey::Http {
                                reporter: Reporter::Destination,
                                src: src_wl,
                                dst: w,
                                code,
                                flags,
                            };
                            let rate = HttpRate {
                                rps: r / n,
                                latency: dst_lat,
                                request_bytes: req,
                                response_bytes: resp,
                            };
                            let up = SeriesKey::UpstreamRq {
                                service: edge.service,
                                inbound: true,
                                class,
                            };
                            for &dp in pods {
                                add(&mut per_pod[dp], key, SeriesRate::Http(rate.clone()));
                                add(&mut per_pod[dp], up, SeriesRate::Count(r / n));
                            }
                        }
                    }
                }
            }
        }
    }
    let gauges = topo
        .workloads
        .iter()
        .enumerate()
        .map(|(w, wl)| {
            let mut rows: Vec<GaugeRow> = topo.calls[w]
                .iter()
                .map(|&s| {
                    let (total, ejected) = topo
                        .service_pods(s)
                        .fold((0, 0), |(t, e), p| (t + 1, e + u32::from(fx.ejected[p])));
                    GaugeRow {
                        service: s,
                        inbound: false,
                        total,
                        healthy: total - ejected,
                        ejected,
                    }
                })
                .collect();
            if let Some(s) = wl.service {
                rows.push(GaugeRow {
                    service: s,
                    inbound: true,
                    total: 1,
                    healthy: 1,
                    ejected: 0,
                });
            }
            rows
        })
        .collect();
    RateModel {
        pods: per_pod.into_iter().map(|m| m.into_iter().collect()).collect(),
        gauges,
        flows,
    }
}
