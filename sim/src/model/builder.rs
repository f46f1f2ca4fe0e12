//! Accumulates per-pod series rates while the model walks the edges.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::{Dst, Flags, Flow, GaugeRow, HttpRate, RateModel, Reporter, SeriesKey, SeriesRate, TcpRate};
use crate::dist::BucketFracs;
use crate::faults::Effects;
use crate::topology::{ClusterId, Edge, EdgeKind, EdgeSource, PodId, ServiceId, Topology, WorkloadId};

/// Added client-side latency of a call within one cluster, and across clusters, in ms.
const LOCAL_NET_MS: f64 = 0.4;
const REMOTE_NET_MS: f64 = 3.0;

/// Median time to a failed upstream connection (connect timeout, then retries), in ms.
const CONNECT_FAILURE_MS: f64 = 1000.0;

/// Size of Envoy's local reply to a failed request, in bytes.
const ERROR_BODY_BYTES: f64 = 95.0;

/// Which distribution a cached [`BucketFracs`] describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum DistKind {
    RequestBytes,
    ResponseBytes,
    ErrorBytes,
    ServerLatency,
    ClientLatency,
    FailedLatency,
}

/// One destination workload's share of an edge.
pub(crate) struct Call<'a> {
    pub edge: &'a Edge,
    pub src_cluster: ClusterId,
    pub src: Option<WorkloadId>,
    pub dst_cluster: ClusterId,
    pub dst: WorkloadId,
    /// Endpoints of `dst` receiving traffic.
    pub dst_pods: &'a [PodId],
}

pub(crate) struct Builder<'a> {
    topo: &'a Topology,
    fx: &'a Effects,
    per_pod: Vec<BTreeMap<SeriesKey, SeriesRate>>,
    flows: Vec<Flow>,
    dists: HashMap<(DistKind, ServiceId, u64), Arc<BucketFracs>>,
    /// Per workload, its endpoints not ejected by outlier detection.
    avail_pods: Vec<Vec<PodId>>,
}

impl<'a> Builder<'a> {
    pub(crate) fn new(topo: &'a Topology, fx: &'a Effects) -> Self {
        let avail_pods = topo
            .workloads
            .iter()
            .map(|w| w.pods.iter().copied().filter(|&p| !fx.ejected[p]).collect())
            .collect();
        Self {
            topo,
            fx,
            per_pod: vec![BTreeMap::new(); topo.pods.len()],
            flows: Vec::new(),
            dists: HashMap::new(),
            avail_pods,
        }
    }

    fn dist(&mut self, kind: DistKind, svc: ServiceId, shift: f64) -> Arc<BucketFracs> {
        let p = self.topo.services[svc].profile;
        let entry = self.dists.entry((kind, svc, shift.to_bits()));
        entry
            .or_insert_with(|| {
                Arc::new(match kind {
                    DistKind::RequestBytes => BucketFracs::lognormal(p.request_bytes_median, 0.3, 0.0),
                    DistKind::ResponseBytes => BucketFracs::lognormal(p.response_bytes_median, 0.5, 0.0),
                    DistKind::ErrorBytes => BucketFracs::lognormal(ERROR_BODY_BYTES, 0.1, 0.0),
                    DistKind::ServerLatency | DistKind::ClientLatency => {
                        BucketFracs::lognormal(p.latency_median_ms, p.latency_sigma, shift)
                    }
                    DistKind::FailedLatency => BucketFracs::lognormal(CONNECT_FAILURE_MS, 0.3, 0.0),
                })
            })
            .clone()
    }

    fn add(&mut self, pod: PodId, key: SeriesKey, rate: SeriesRate) {
        let map = &mut self.per_pod[pod];
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

    /// Per cluster, the workloads backing `service` with the endpoints that take traffic; when
    /// every endpoint is ejected, all of them (Envoy's panic mode).
    pub(crate) fn endpoints(&self, service: ServiceId) -> Vec<Vec<(WorkloadId, Vec<PodId>)>> {
        let backends = &self.topo.backends[service];
        let none_left = backends.iter().flatten().all(|&w| self.avail_pods[w].is_empty());
        backends
            .iter()
            .map(|ws| {
                let pods = |w: WorkloadId| {
                    if none_left {
                        self.topo.workloads[w].pods.clone()
                    } else {
                        self.avail_pods[w].clone()
                    }
                };
                ws.iter().map(|&w| (w, pods(w))).collect()
            })
            .collect()
    }

    /// Requests to a host outside the mesh (ALLOW_ANY outbound policy): only the client reports
    /// them, through Envoy's `PassthroughCluster`; faults inside the mesh do not touch them.
    pub(crate) fn external(&mut self, edge: &Edge) {
        let (EdgeSource::Workload(s), EdgeKind::Requests { rate_rps }) = (edge.source, edge.kind) else {
            return;
        };
        if rate_rps <= 0.0 {
            return;
        }
        let dst = Dst::External(edge.service);
        self.flows.push(Flow {
            source: edge.source,
            dst,
            code: 200,
            flags: Flags::None,
            rps: rate_rps,
        });
        let pods = self.topo.workloads[s].pods.clone();
        let n = pods.len() as f64;
        let rate = HttpRate {
            rps: rate_rps / n,
            latency: self.dist(DistKind::ClientLatency, edge.service, REMOTE_NET_MS),
            request_bytes: self.dist(DistKind::RequestBytes, edge.service, 0.0),
            response_bytes: self.dist(DistKind::ResponseBytes, edge.service, 0.0),
        };
        let key = SeriesKey::Http {
            reporter: Reporter::Source,
            src: Some(s),
            dst,
            code: 200,
            flags: Flags::None,
        };
        let up = SeriesKey::UpstreamRq {
            service: edge.service,
            inbound: false,
            class: 200,
        };
        for p in pods {
            self.add(p, key, SeriesRate::Http(rate.clone()));
            self.add(p, up, SeriesRate::Count(rate_rps / n));
        }
    }

    /// `frac` of a TCP edge's connections and bytes go to `call.dst`.
    pub(crate) fn tcp(&mut self, call: &Call<'_>, frac: f64) {
        let EdgeKind::Tcp {
            connections_per_sec,
            request_bytes_per_sec,
            response_bytes_per_sec,
        } = call.edge.kind
        else {
            return;
        };
        let Some(s) = call.src else { return };
        let rate = |n: usize| {
            SeriesRate::Tcp(TcpRate {
                opened_per_sec: connections_per_sec * frac / n as f64,
                request_bytes_per_sec: request_bytes_per_sec * frac / n as f64,
                response_bytes_per_sec: response_bytes_per_sec * frac / n as f64,
            })
        };
        let src_pods = self.topo.workloads[s].pods.clone();
        for p in &src_pods {
            self.add(
                *p,
                SeriesKey::Tcp {
                    reporter: Reporter::Source,
                    src: s,
                    dst: call.dst,
                },
                rate(src_pods.len()),
            );
        }
        for p in call.dst_pods {
            let key = SeriesKey::Tcp {
                reporter: Reporter::Destination,
                src: s,
                dst: call.dst,
            };
            self.add(*p, key, rate(call.dst_pods.len()));
        }
    }

    /// `rps` requests per second of an edge go to `call.dst`; faults decide their outcome.
    pub(crate) fn requests(&mut self, call: &Call<'_>, rps: f64, partitioned: bool) {
        if rps <= 0.0 {
            return;
        }
        let outcomes: Vec<(u16, Flags, f64)> = if partitioned {
            vec![(503, Flags::UpstreamFailure, 1.0)]
        } else {
            let (f, code) = self.fx.error.get(&call.dst).copied().unwrap_or((0.0, 503));
            vec![(200, Flags::None, 1.0 - f), (code, Flags::None, f)]
        };
        let svc = call.edge.service;
        let shift = self.fx.latency.get(&call.dst).copied().unwrap_or(0.0);
        let net = if call.dst_cluster == call.src_cluster {
            LOCAL_NET_MS
        } else {
            REMOTE_NET_MS
        };
        let src_pods = call
            .src
            .map_or_else(Vec::new, |w| self.topo.workloads[w].pods.clone());
        for (code, flags, phi) in outcomes.into_iter().filter(|o| o.2 > 0.0) {
            let r = rps * phi;
            let dst = Dst::Workload(call.dst);
            self.flows.push(Flow {
                source: call.edge.source,
                dst,
                code,
                flags,
                rps: r,
            });
            let failed = flags == Flags::UpstreamFailure;
            let req = self.dist(DistKind::RequestBytes, svc, 0.0);
            let resp_kind = if code < 400 {
                DistKind::ResponseBytes
            } else {
                DistKind::ErrorBytes
            };
            let resp = self.dist(resp_kind, svc, 0.0);
            let class = code / 100 * 100;
            if let Some(s) = call.src {
                let n = src_pods.len() as f64;
                let latency = if failed {
                    self.dist(DistKind::FailedLatency, svc, 0.0)
                } else {
                    self.dist(DistKind::ClientLatency, svc, shift + net)
                };
                let rate = HttpRate {
                    rps: r / n,
                    latency,
                    request_bytes: req.clone(),
                    response_bytes: resp.clone(),
                };
                let key = SeriesKey::Http {
                    reporter: Reporter::Source,
                    src: Some(s),
                    dst,
                    code,
                    flags,
                };
                let up = SeriesKey::UpstreamRq {
                    service: svc,
                    inbound: false,
                    class,
                };
                for &p in &src_pods {
                    self.add(p, key, SeriesRate::Http(rate.clone()));
                    self.add(p, up, SeriesRate::Count(r / n));
                }
            }
            if failed {
                // The server never saw the request.
                continue;
            }
            let n = call.dst_pods.len() as f64;
            let latency = self.dist(DistKind::ServerLatency, svc, shift);
            let rate = HttpRate {
                rps: r / n,
                latency,
                request_bytes: req,
                response_bytes: resp,
            };
            let key = SeriesKey::Http {
                reporter: Reporter::Destination,
                src: call.src,
                dst,
                code,
                flags,
            };
            let up = SeriesKey::UpstreamRq {
                service: svc,
                inbound: true,
                class,
            };
            for &p in call.dst_pods {
                self.add(p, key, SeriesRate::Http(rate.clone()));
                self.add(p, up, SeriesRate::Count(r / n));
            }
        }
    }

    /// Membership gauges per workload, and the finished model.
    pub(crate) fn finish(self) -> RateModel {
        let topo = self.topo;
        let gauges = topo
            .workloads
            .iter()
            .enumerate()
            .map(|(w, wl)| {
                let mut rows: Vec<GaugeRow> = topo.calls[w]
                    .iter()
                    .filter(|&&s| !topo.services[s].external)
                    .map(|&s| {
                        let (total, ejected) = topo
                            .service_pods(s)
                            .fold((0, 0), |(t, e), p| (t + 1, e + u32::from(self.fx.ejected[p])));
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
            pods: self
                .per_pod
                .into_iter()
                .map(|m| m.into_iter().collect())
                .collect(),
            gauges,
            flows: self.flows,
        }
    }
}
