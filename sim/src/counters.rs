//! Counters as exact functions of time: the timeline of fault and routing changes cuts time into
//! segments of constant rates, and a counter's value is `floor(∫ rate dt)` from the pod's last
//! (re)start, so it is monotonic, resets on restart and is known to tests in advance.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::dist::NB;
use crate::faults::{DarkMode, Effects, Fault, FaultId, Resolved};
use crate::model::{self, RateModel, SeriesKey, SeriesRate};
use crate::routing::RoutingTable;
use crate::topology::{ClusterId, PodId, Topology};

/// How long a simulated TCP connection stays open, in seconds (closed counter lags opened).
pub(crate) const TCP_CONNECTION_SECS: f64 = 10.0;

/// A fault with its window in simulated seconds.
#[derive(Clone, Debug)]
pub(crate) struct FaultRecord {
    pub id: FaultId,
    pub fault: Fault,
    pub resolved: Resolved,
    pub start: f64,
    pub end: Option<f64>,
}

impl FaultRecord {
    pub(crate) fn active_at(&self, t: f64) -> bool {
        self.start <= t && self.end.is_none_or(|e| t < e)
    }
}

/// A stretch of time with constant rates.
#[derive(Debug)]
struct Segment {
    start: f64,
    model: Arc<RateModel>,
}

/// Histogram accumulation: `Σ rate·Δt·cdf(le)` per bound and `Σ rate·Δt·mean`.
#[derive(Clone, Debug, Default)]
pub(crate) struct HistAccum {
    pub buckets: [f64; NB],
    pub weighted_sum: f64,
}

impl HistAccum {
    fn add(&mut self, n: f64, d: &crate::dist::BucketFracs) {
        for (b, f) in self.buckets.iter_mut().zip(d.fracs.iter()) {
            *b += n * f;
        }
        self.weighted_sum += n * d.mean;
    }
}

/// The integral of one series over the pod's lifetime so far.
#[derive(Clone, Debug)]
pub(crate) enum Accum {
    Http {
        n: f64,
        latency: Box<HistAccum>,
        request_bytes: Box<HistAccum>,
        response_bytes: Box<HistAccum>,
    },
    Tcp {
        opened: f64,
        closed: f64,
        request_bytes: f64,
        response_bytes: f64,
    },
    Count(f64),
}

/// All faults, routing changes and the segments they imply.
#[derive(Debug)]
pub(crate) struct Timeline {
    pub faults: Vec<FaultRecord>,
    pub routing: Vec<(f64, Arc<RoutingTable>)>,
    segments: Vec<Segment>,
    cache: HashMap<(Vec<FaultId>, usize), Arc<RateModel>>,
    next_id: FaultId,
    /// Start of the oldest segment kept; older ones are folded into `checkpoint`.
    horizon: f64,
    checkpoint: Option<Checkpoint>,
    /// Compact once there are more segments than this.
    max_segments: usize,
}

/// Every pod's integrals up to `at` (closed connections up to `at - TCP_CONNECTION_SECS`), so
/// the segments before it can be dropped.
#[derive(Debug)]
struct Checkpoint {
    at: f64,
    pods: Vec<BTreeMap<SeriesKey, Accum>>,
}

/// Segments kept before compaction kicks in, and how much history compaction keeps exact.
const MAX_SEGMENTS: usize = 64;
const KEEP_SECS: f64 = 900.0;

impl Timeline {
    pub(crate) fn new(topo: &Topology) -> Self {
        let mut t = Self {
            faults: Vec::new(),
            routing: vec![(0.0, Arc::new(RoutingTable::default()))],
            segments: Vec::new(),
            cache: HashMap::new(),
            next_id: 1,
            horizon: 0.0,
            checkpoint: None,
            max_segments: MAX_SEGMENTS,
        };
        t.rebuild(topo);
        t
    }

    pub(crate) fn add_fault(
        &mut self,
        topo: &Topology,
        fault: Fault,
        start: f64,
        end: Option<f64>,
    ) -> crate::Result<FaultId> {
        let resolved = fault.resolve(topo)?;
        let id = self.next_id;
        self.next_id += 1;
        let end = if matches!(resolved, Resolved::Restart { .. }) {
            None
        } else {
            end
        };
        self.faults.push(FaultRecord {
            id,
            fault,
            resolved,
            start,
            end,
        });
        self.rebuild(topo);
        Ok(id)
    }

    /// Ends a fault now (or forgets it if it has not started); false when unknown or already over.
    pub(crate) fn clear_fault(&mut self, topo: &Topology, id: FaultId, now: f64) -> bool {
        let Some(i) = self.faults.iter().position(|f| f.id == id) else {
            return false;
        };
        let f = &mut self.faults[i];
        if f.start > now {
            self.faults.remove(i);
        } else if matches!(f.resolved, Resolved::Restart { .. }) || f.end.is_some_and(|e| e <= now) {
            return false;
        } else {
            f.end = Some(now);
        }
        self.rebuild(topo);
        true
    }

    pub(crate) fn set_routing(&mut self, topo: &Topology, table: RoutingTable, now: f64) {
        if self.routing_at(now).as_ref() == &table {
            return;
        }
        self.routing.push((now, Arc::new(table)));
        self.rebuild(topo);
    }

    pub(crate) fn routing_at(&self, t: f64) -> Arc<RoutingTable> {
        let i = self.routing.iter().rposition(|(s, _)| *s <= t).unwrap_or(0);
        self.routing[i].1.clone()
    }

    fn rebuild(&mut self, topo: &Topology) {
        let mut points: Vec<f64> = vec![self.horizon];
        for f in self
            .faults
            .iter()
            .filter(|f| !matches!(f.resolved, Resolved::Restart { .. }))
        {
            points.push(f.start);
            points.extend(f.end);
        }
        points.extend(self.routing.iter().map(|(t, _)| *t));
        points.retain(|&t| t >= self.horizon);
        points.sort_by(f64::total_cmp);
        points.dedup();
        let mut segments = Vec::with_capacity(points.len());
        for t in points {
            let active: Vec<&FaultRecord> = self
                .faults
                .iter()
                .filter(|f| !matches!(f.resolved, Resolved::Restart { .. }) && f.active_at(t))
                .collect();
            let ids: Vec<FaultId> = active.iter().map(|f| f.id).collect();
            let ri = self.routing.iter().rposition(|(s, _)| *s <= t).unwrap_or(0);
            let routing = &self.routing[ri].1;
            let model = self
                .cache
                .entry((ids, ri))
                .or_insert_with(|| {
                    let fx = Effects::combine(topo, active.iter().map(|f| &f.resolved));
                    Arc::new(model::build(topo, routing, &fx))
                })
                .clone();
            segments.push(Segment { start: t, model });
        }
        self.cache
            .retain(|_, m| segments.iter().any(|s| Arc::ptr_eq(&s.model, m)));
        self.segments = segments;
    }

    /// Bounds memory under frequent routing changes: once there are many segments, folds those
    /// older than [`KEEP_SECS`] before `now` into per-pod checkpoints. Values at times before the
    /// checkpoint are then no longer exact (nothing scrapes the past).
    pub(crate) fn compact(&mut self, topo: &Topology, now: f64) {
        let at = now - KEEP_SECS;
        if self.segments.len() <= self.max_segments || at <= self.checkpoint.as_ref().map_or(0.0, |c| c.at) {
            return;
        }
        let pods = (0..topo.pods.len()).map(|p| self.integrate_map(p, at)).collect();
        // Keep the segments the lagging closed-connection integral still needs.
        let cut = at - TCP_CONNECTION_SECS;
        let first = self.segments.iter().rposition(|s| s.start <= cut).unwrap_or(0);
        self.horizon = self.segments[first].start.max(self.horizon);
        self.checkpoint = Some(Checkpoint { at, pods });
        self.rebuild(topo);
    }

    pub(crate) fn model_at(&self, t: f64) -> &Arc<RateModel> {
        let i = self.segments.iter().rposition(|s| s.start <= t).unwrap_or(0);
        &self.segments[i].model
    }

    /// When the pod last (re)started at or before `t`.
    pub(crate) fn started_at(&self, pod: PodId, t: f64) -> f64 {
        self.faults
            .iter()
            .filter(|f| matches!(f.resolved, Resolved::Restart { pod: p } if p == pod) && f.start <= t)
            .map(|f| f.start)
            .fold(0.0, f64::max)
    }

    /// How a cluster's endpoints misbehave at `t`, if it is dark.
    pub(crate) fn dark_mode(&self, cluster: ClusterId, t: f64) -> Option<DarkMode> {
        self.faults.iter().find_map(|f| match f.resolved {
            Resolved::Dark { cluster: c, mode } if c == cluster && f.active_at(t) => Some(mode),
            _ => None,
        })
    }

    /// Every series' integral on `pod` from its last start to `t`, sorted by key.
    pub(crate) fn integrate(&self, pod: PodId, t: f64) -> Vec<(SeriesKey, Accum)> {
        self.integrate_map(pod, t).into_iter().collect()
    }

    fn integrate_map(&self, pod: PodId, t: f64) -> BTreeMap<SeriesKey, Accum> {
        let t0 = self.started_at(pod, t);
        let (mut acc, from, closed_from) = match &self.checkpoint {
            Some(c) if t0 <= c.at && c.at <= t => {
                (c.pods[pod].clone(), c.at, t0.max(c.at - TCP_CONNECTION_SECS))
            }
            _ => (BTreeMap::new(), t0, t0),
        };
        self.each_overlap(from, t, |model, dt| {
            for (key, rate) in &model.pods[pod] {
                match rate {
                    SeriesRate::Http(r) => {
                        let e = acc.entry(*key).or_insert_with(|| Accum::Http {
                            n: 0.0,
                            latency: Box::default(),
                            request_bytes: Box::default(),
                            response_bytes: Box::default(),
                        });
                        if let Accum::Http {
                            n,
                            latency,
                            request_bytes,
                            response_bytes,
                        } = e
                        {
                            let k = r.rps * dt;
                            *n += k;
                            latency.add(k, &r.latency);
                            request_bytes.add(k, &r.request_bytes);
                            response_bytes.add(k, &r.response_bytes);
                        }
                    }
                    SeriesRate::Tcp(r) => {
                        let e = acc.entry(*key).or_insert(Accum::Tcp {
                            opened: 0.0,
                            closed: 0.0,
                            request_bytes: 0.0,
                            response_bytes: 0.0,
                        });
                        if let Accum::Tcp {
                            opened,
                            request_bytes,
                            response_bytes,
                            ..
                        } = e
                        {
                            *opened += r.opened_per_sec * dt;
                            *request_bytes += r.request_bytes_per_sec * dt;
                            *response_bytes += r.response_bytes_per_sec * dt;
                        }
                    }
                    SeriesRate::Count(r) => {
                        if let Accum::Count(c) = acc.entry(*key).or_insert(Accum::Count(0.0)) {
                            *c += r * dt;
                        }
                    }
                }
            }
        });
        // Connections close a fixed lifetime after they open.
        self.each_overlap(closed_from, t - TCP_CONNECTION_SECS, |model, dt| {
            for (key, rate) in &model.pods[pod] {
                if let (SeriesRate::Tcp(r), Some(Accum::Tcp { closed, .. })) = (rate, acc.get_mut(key)) {
                    *closed += r.opened_per_sec * dt;
                }
            }
        });
        acc
    }

    fn each_overlap(&self, t0: f64, t1: f64, mut f: impl FnMut(&RateModel, f64)) {
        for (i, s) in self.segments.iter().enumerate() {
            let end = self.segments.get(i + 1).map_or(f64::INFINITY, |n| n.start);
            let (lo, hi) = (s.start.max(t0), end.min(t1));
            if hi > lo {
                f(&s.model, hi - lo);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SimConfig;
    use crate::routing::RoutingRule;

    #[test]
    fn compaction_keeps_counters_exact() {
        let topo = Topology::build(&SimConfig::quiet());
        let mut exact = Timeline::new(&topo);
        exact.max_segments = usize::MAX;
        let mut compacted = Timeline::new(&topo);
        compacted.max_segments = 8;
        let restart = Fault::PodRestart {
            pod: topo.pods[0].name.clone(),
        };
        for tl in [&mut exact, &mut compacted] {
            tl.add_fault(&topo, restart.clone(), 505.0, None)
                .expect("restart");
        }
        for i in 1..=200u32 {
            let now = f64::from(i) * 10.0;
            let rule = RoutingRule {
                source_cluster: None,
                source_workload: Some("frontend".into()),
                destination_service: "web-api".into(),
                weights: [
                    ("cluster-1".to_string(), f64::from(i % 3)),
                    ("cluster-2".to_string(), 1.0),
                ]
                .into(),
            };
            let table = RoutingTable { rules: vec![rule] };
            exact.set_routing(&topo, table.clone(), now);
            compacted.set_routing(&topo, table, now);
            compacted.compact(&topo, now);
        }
        assert!(
            compacted.segments.len() < 120,
            "{} segments kept",
            compacted.segments.len()
        );
        assert!(compacted.cache.len() <= compacted.segments.len());
        for t in [2005.0, 2500.0] {
            for pod in 0..topo.pods.len() {
                let (a, b) = (exact.integrate(pod, t), compacted.integrate(pod, t));
                assert_eq!(a.len(), b.len());
                for ((ka, va), (kb, vb)) in a.iter().zip(&b) {
                    assert_eq!(ka, kb);
                    let (x, y) = match (va, vb) {
                        (Accum::Http { n: x, .. }, Accum::Http { n: y, .. }) => (*x, *y),
                        (Accum::Count(x), Accum::Count(y)) => (*x, *y),
                        (Accum::Tcp { closed: x, .. }, Accum::Tcp { closed: y, .. }) => (*x, *y),
                        _ => panic!("accumulator kinds differ"),
                    };
                    assert!(
                        (x - y).abs() <= 1e-6 * x.abs().max(1.0),
                        "pod {pod} {ka:?}: {x} vs {y}"
                    );
                }
            }
        }
    }
}
