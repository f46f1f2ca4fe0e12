//! The edge table: Istio series tracked as they are ingested, with the last few minutes of
//! samples each, so any window's rates are computed without touching the store or parsing a
//! query.
//!
//! The relay sink hands every batch to [`EdgeTable::append`]; series the graph does not use cost
//! one array lookup per sample. Computing a window ([`EdgeTable::compute`]) walks the tracked
//! series once and applies Prometheus' own `rate()` kernel to each, so the graph's figures are
//! exactly what `sum by (…) (rate(…[w]))` returns on the same data.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use meshfed_model::{Labels, Sample, is_stale_nan};
use parking_lot::Mutex;

use crate::graph::health_input::HealthInputs;
use crate::graph::istio::{self, EndpointGauge, FineEdge, IstioSeries, Measure, Name, ServiceKey};
use crate::graph::stats::EdgeStats;

/// Rates of every active edge over one window at one instant.
#[derive(Clone, Debug, Default)]
pub struct WindowSnapshot {
    /// Evaluation time, ms since the epoch.
    pub at_ms: i64,
    /// Window length in ms.
    pub window_ms: i64,
    /// Edges with traffic in the window (and, when asked, idle ones with zero rates).
    pub edges: Vec<(FineEdge, EdgeStats)>,
}

/// What the per-sample path and the window computation need of an Istio series, inline in its
/// track (its edge and service are ids into the table, so the labels are not kept per series).
struct SeriesRole {
    measure: Measure,
    primary: bool,
    mtls: Option<bool>,
    flags: Option<Name>,
}

/// What a tracked series is.
enum Role {
    /// The series, its edge and its destination service (indexes into the table).
    Istio(SeriesRole, u32, u32),
    Gauge(ServiceKey, EndpointGauge),
}

struct Track {
    role: Role,
    samples: VecDeque<Sample>,
    /// Newest raw value, for the per-sample increments health consumes.
    last_value: f64,
    /// Whether the first sample is an increment from zero: true for a series that appears on a
    /// service already seen (a new response code starts counting), false while the table is
    /// learning what exists (after a restart every series is new, and its value is history).
    first_counts: bool,
    /// The table's newest sample time when the series was registered: a series announced but not
    /// yet sampled is kept for a full retention period.
    born_ms: i64,
}

struct EdgeEntry {
    key: FineEdge,
    tracks: usize,
}

#[derive(Default)]
struct Inner {
    /// Series ref → track index + 1 (0: not tracked).
    by_ref: Vec<u32>,
    tracks: Vec<Option<Track>>,
    free_tracks: Vec<u32>,
    track_refs: Vec<u64>,
    edges: Vec<Option<EdgeEntry>>,
    free_edges: Vec<u32>,
    edge_ids: HashMap<FineEdge, u32>,
    names: HashSet<Name>,
    /// Destination services by id, with their pending health increments.
    services: Vec<ServiceSlot>,
    service_ids: HashMap<ServiceKey, u32>,
    dirty_services: Vec<u32>,
    /// Counter increments per edge id since the last [`EdgeTable::take_increments`].
    edge_increments: Vec<Option<EdgeStats>>,
    dirty_edges: Vec<u32>,
    /// Newest sample timestamp applied.
    newest_ms: i64,
}

struct ServiceSlot {
    key: ServiceKey,
    /// Has had a sample (see [`Track::first_counts`]).
    known: bool,
    pending: Option<crate::graph::health_input::ServiceIncrements>,
}

/// See the module docs.
pub struct EdgeTable {
    inner: Mutex<Inner>,
    /// Batches that arrived while a computation held the table.
    pending: Mutex<Vec<(u64, i64, f64)>>,
    seen: Mutex<HashMap<Name, i64>>,
    retain_ms: i64,
}

/// Endpoint counts of one service, summed over reporting proxies.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct EndpointCounts {
    /// Healthy endpoints.
    pub healthy: f64,
    /// All endpoints.
    pub total: f64,
    /// Endpoints currently ejected by outlier detection.
    pub ejected: f64,
}

impl EdgeTable {
    /// A table keeping samples for windows up to `max_window_ms`.
    pub fn new(max_window_ms: i64) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            pending: Mutex::new(Vec::new()),
            seen: Mutex::new(HashMap::new()),
            // One extra minute so the oldest window always sees its first sample.
            retain_ms: max_window_ms + 60_000,
        }
    }

    /// Looks at a newly registered series; remembers it when the graph or health uses it.
    pub fn observe_series(&self, series_ref: u64, labels: &Labels) {
        let Some(name) = labels.metric_name() else { return };
        if !(name.starts_with("istio_") || name.starts_with("envoy_cluster_")) {
            return;
        }
        let mut inner = self.inner.lock();
        let idx = usize::try_from(series_ref).unwrap_or(usize::MAX);
        if inner.by_ref.get(idx).is_some_and(|&t| t != 0) {
            return; // A collector reconnected and announced it again.
        }
        let inner = &mut *inner;
        let names = &mut inner.names;
        let mut intern = |s: &str| -> Name {
            if let Some(n) = names.get(s) {
                return n.clone();
            }
            let n: Name = Arc::from(s);
            names.insert(n.clone());
            n
        };
        let mut first_counts = false;
        let role = if let Some(series) = istio::classify(labels, &mut intern) {
            let edge = inner.edge_id(&series.edge);
            let service = inner.service_id(destination_service(&series));
            first_counts = inner.services[service as usize].known;
            Role::Istio(
                SeriesRole {
                    measure: series.measure,
                    primary: series.primary,
                    mtls: series.mtls,
                    flags: series.flags,
                },
                edge,
                service,
            )
        } else if let Some((service, gauge)) = istio::classify_endpoint_gauge(labels, &mut intern) {
            Role::Gauge(service, gauge)
        } else {
            return;
        };
        inner.insert_track(series_ref, role, first_counts);
    }

    /// Takes a batch of samples the store accepted. Never waits for a running computation: the
    /// batch is queued and applied by whoever takes the table next.
    pub fn append(&self, cluster: &str, samples: &[(u64, i64, f64)]) {
        if !samples.is_empty() {
            let now = crate::http::now_ms();
            let mut seen = self.seen.lock();
            match seen.get_mut(cluster) {
                Some(t) => *t = now,
                None => {
                    seen.insert(Arc::from(cluster), now);
                }
            }
        }
        match self.inner.try_lock() {
            Some(mut inner) => {
                let queued = std::mem::take(&mut *self.pending.lock());
                inner.apply(&queued);
                inner.apply(samples);
            }
            None => self.pending.lock().extend_from_slice(samples),
        }
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, Inner> {
        let mut inner = self.inner.lock();
        let queued = std::mem::take(&mut *self.pending.lock());
        inner.apply(&queued);
        inner
    }

    /// Rates of every edge over `(at_ms - window_ms, at_ms]`; idle edges (no traffic in the
    /// window) are included with zero rates when `include_idle`.
    pub fn compute(&self, at_ms: i64, window_ms: i64, include_idle: bool) -> WindowSnapshot {
        self.compute_many(at_ms, &[window_ms], include_idle)
            .pop()
            .unwrap_or_default()
    }

    /// [`EdgeTable::compute`] for several windows at once: one pass over the tracked series,
    /// so each series' samples are brought into cache once.
    pub fn compute_many(&self, at_ms: i64, windows_ms: &[i64], include_idle: bool) -> Vec<WindowSnapshot> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let mut stats: Vec<Vec<EdgeStats>> = windows_ms
            .iter()
            .map(|_| vec![EdgeStats::default(); inner.edges.len()])
            .collect();
        for track in inner.tracks.iter_mut().flatten() {
            let Role::Istio(series, edge, _) = &track.role else {
                continue;
            };
            let samples = track.samples.make_contiguous();
            let hi = samples.partition_point(|s| s.timestamp_ms <= at_ms);
            for (&window_ms, stats) in windows_ms.iter().zip(&mut stats) {
                let start = at_ms - window_ms;
                let lo = samples[..hi].partition_point(|s| s.timestamp_ms <= start);
                let Some(rate) = meshfed_query::kernels::counter_rate(&samples[lo..hi], start, at_ms) else {
                    continue;
                };
                add_rate(&mut stats[*edge as usize], series, rate);
            }
        }
        windows_ms
            .iter()
            .zip(stats)
            .map(|(&window_ms, stats)| WindowSnapshot {
                at_ms,
                window_ms,
                edges: inner
                    .edges
                    .iter()
                    .zip(stats)
                    .filter_map(|(e, s)| {
                        let e = e.as_ref()?;
                        (include_idle || s.is_active()).then(|| (e.key.clone(), s))
                    })
                    .collect(),
            })
            .collect()
    }

    /// Increments collected for health since the last call.
    pub fn take_health_inputs(&self) -> HealthInputs {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let mut out = HealthInputs::default();
        for id in inner.dirty_services.drain(..) {
            let s = &mut inner.services[id as usize];
            if let Some(inc) = s.pending.take() {
                out.services.insert(s.key.clone(), inc);
            }
        }
        out
    }

    /// Counter increments per edge since the last call (primary series only).
    pub fn take_increments(&self) -> Vec<(FineEdge, EdgeStats)> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let mut out = Vec::with_capacity(inner.dirty_edges.len());
        for id in inner.dirty_edges.drain(..) {
            let Some(inc) = inner.edge_increments.get_mut(id as usize).and_then(Option::take) else {
                continue;
            };
            if let Some(Some(e)) = inner.edges.get(id as usize) {
                out.push((e.key.clone(), inc));
            }
        }
        out
    }

    /// Endpoint gauges per service as the proxies of each cluster see them, summed over the
    /// reporting proxies (their newest values), with the newest sample time among them.
    /// Proxies silent for `max_age_ms` (measured back from the newest sample received) are left
    /// out: a pod that went away no longer counts.
    pub fn endpoint_gauges_with_time(&self, max_age_ms: i64) -> HashMap<ServiceKey, (EndpointCounts, i64)> {
        let inner = self.lock();
        let oldest = inner.newest_ms - max_age_ms;
        let mut out: HashMap<ServiceKey, (EndpointCounts, i64)> = HashMap::new();
        for track in inner.tracks.iter().flatten() {
            let Role::Gauge(service, gauge) = &track.role else {
                continue;
            };
            let Some(last) = track.samples.back().filter(|s| s.timestamp_ms >= oldest) else {
                continue;
            };
            let (c, newest) = out.entry(service.clone()).or_default();
            *newest = (*newest).max(last.timestamp_ms);
            match gauge {
                EndpointGauge::Healthy => c.healthy += last.value,
                EndpointGauge::Total => c.total += last.value,
                EndpointGauge::Ejected => c.ejected += last.value,
            }
        }
        out
    }

    /// When (wall clock, ms) each cluster's collectors last delivered samples.
    pub fn cluster_last_seen(&self) -> HashMap<Name, i64> {
        self.seen.lock().clone()
    }

    /// Forgets samples older than the longest window (measured back from the newest sample
    /// received, so a replayed or simulated clock works too), series left without samples, and
    /// edges left without series. Returns how many series were dropped.
    pub fn expire(&self) -> usize {
        let mut inner = self.lock();
        let cutoff = inner.newest_ms - self.retain_ms;
        let mut dropped = 0;
        for i in 0..inner.tracks.len() {
            let Some(track) = inner.tracks[i].as_mut() else {
                continue;
            };
            while track.samples.front().is_some_and(|s| s.timestamp_ms < cutoff) {
                track.samples.pop_front();
            }
            if track.samples.is_empty() && track.born_ms < cutoff {
                inner.remove_track(i);
                dropped += 1;
            } else if track.samples.capacity() > 4 * track.samples.len().max(8) {
                track.samples.shrink_to_fit();
            }
        }
        dropped
    }

    /// Series and edges currently tracked.
    pub fn size(&self) -> (usize, usize) {
        let inner = self.lock();
        let series = inner.tracks.iter().flatten().count();
        (series, inner.edge_ids.len())
    }

    /// Which workloads serve which service: `(cluster, namespace, workload) → (namespace, service)`,
    /// learned from destination labels (used to draw the service graph's callers).
    pub fn workload_services(&self) -> HashMap<(Name, Name, Name), (Name, Name)> {
        let inner = self.lock();
        inner
            .edges
            .iter()
            .flatten()
            .map(|e| &e.key.destination)
            .filter(|d| &*d.workload != "unknown" && &*d.service != "unknown")
            .map(|d| {
                (
                    (d.cluster.clone(), d.namespace.clone(), d.workload.clone()),
                    (d.service_namespace.clone(), d.service.clone()),
                )
            })
            .collect()
    }
}

/// The service a series' calls go to.
fn destination_service(series: &IstioSeries) -> ServiceKey {
    let d = &series.edge.destination;
    ServiceKey {
        cluster: d.cluster.clone(),
        namespace: d.service_namespace.clone(),
        service: d.service.clone(),
    }
}

/// Adds `rate` (or an increment: the arithmetic is the same) of `series` into its edge's stats.
fn add_rate(s: &mut EdgeStats, series: &SeriesRole, rate: f64) {
    match series.measure {
        Measure::Requests { class, error } => {
            if let Some(mtls) = series.mtls {
                s.destination_requests += rate;
                if mtls {
                    s.destination_mtls += rate;
                }
            }
            if !series.primary {
                return;
            }
            s.requests += rate;
            s.by_class[class as usize] += rate;
            if error {
                s.errors += rate;
            }
            if let Some(f) = &series.flags {
                s.add_flag(f, rate);
            }
        }
        _ if !series.primary => {}
        Measure::DurationBucket { le } => s.add_bucket(le, rate),
        Measure::DurationSum => s.duration_sum_ms += rate,
        Measure::RequestBytes => s.request_bytes += rate,
        Measure::ResponseBytes => s.response_bytes += rate,
        Measure::TcpReceived => s.tcp_received_bytes += rate,
        Measure::TcpSent => s.tcp_sent_bytes += rate,
        Measure::TcpOpened => s.tcp_opened += rate,
    }
}

impl Inner {
    fn edge_id(&mut self, key: &FineEdge) -> u32 {
        if let Some(&id) = self.edge_ids.get(key) {
            return id;
        }
        let entry = EdgeEntry {
            key: key.clone(),
            tracks: 0,
        };
        let id = match self.free_edges.pop() {
            Some(id) => {
                self.edges[id as usize] = Some(entry);
                id
            }
            None => {
                self.edges.push(Some(entry));
                (self.edges.len() - 1) as u32
            }
        };
        self.edge_ids.insert(key.clone(), id);
        id
    }

    fn service_id(&mut self, key: ServiceKey) -> u32 {
        if let Some(&id) = self.service_ids.get(&key) {
            return id;
        }
        let id = self.services.len() as u32;
        self.service_ids.insert(key.clone(), id);
        self.services.push(ServiceSlot {
            key,
            known: false,
            pending: None,
        });
        id
    }

    fn insert_track(&mut self, series_ref: u64, role: Role, first_counts: bool) {
        if let Role::Istio(_, edge, _) = &role
            && let Some(Some(e)) = self.edges.get_mut(*edge as usize)
        {
            e.tracks += 1;
        }
        let track = Track {
            role,
            samples: VecDeque::new(),
            last_value: f64::NAN,
            first_counts,
            born_ms: self.newest_ms,
        };
        let slot = match self.free_tracks.pop() {
            Some(slot) => {
                self.tracks[slot as usize] = Some(track);
                self.track_refs[slot as usize] = series_ref;
                slot
            }
            None => {
                self.tracks.push(Some(track));
                self.track_refs.push(series_ref);
                (self.tracks.len() - 1) as u32
            }
        };
        let idx = series_ref as usize;
        if self.by_ref.len() <= idx {
            self.by_ref.resize(idx + 1, 0);
        }
        self.by_ref[idx] = slot + 1;
    }

    fn remove_track(&mut self, slot: usize) {
        let Some(track) = self.tracks[slot].take() else {
            return;
        };
        self.free_tracks.push(slot as u32);
        if let Some(t) = self.by_ref.get_mut(self.track_refs[slot] as usize) {
            *t = 0;
        }
        if let Role::Istio(_, edge, _) = track.role
            && let Some(slot) = self.edges.get_mut(edge as usize)
            && let Some(e) = slot
        {
            e.tracks -= 1;
            if e.tracks == 0 {
                self.edge_ids.remove(&e.key);
                *slot = None;
                self.free_edges.push(edge);
                if let Some(inc) = self.edge_increments.get_mut(edge as usize) {
                    *inc = None; // The id may be reused by another edge.
                }
            }
        }
    }

    fn apply(&mut self, samples: &[(u64, i64, f64)]) {
        for &(series_ref, t, v) in samples {
            let Some(&slot) = self.by_ref.get(series_ref as usize) else {
                continue;
            };
            if slot == 0 || is_stale_nan(v) {
                continue;
            }
            let Some(track) = self.tracks[slot as usize - 1].as_mut() else {
                continue;
            };
            if track.samples.back().is_some_and(|s| s.timestamp_ms >= t) {
                continue; // The store refused it too: a duplicate or out of order.
            }
            self.newest_ms = self.newest_ms.max(t);
            let previous = track.last_value;
            track.last_value = v;
            track.samples.push_back(Sample {
                timestamp_ms: t,
                value: v,
            });
            match &track.role {
                Role::Istio(series, edge, service) => {
                    if series.primary {
                        // A reset restarts the counter from zero: the increment is the new value.
                        let inc = if previous.is_nan() {
                            if track.first_counts { v } else { 0.0 }
                        } else if v < previous {
                            v
                        } else {
                            v - previous
                        };
                        let slot = &mut self.services[*service as usize];
                        slot.known = true;
                        if slot.pending.is_none() {
                            self.dirty_services.push(*service);
                        }
                        slot.pending.get_or_insert_default().add(series.measure, inc, t);
                        let e = *edge as usize;
                        if self.edge_increments.len() <= e {
                            self.edge_increments.resize(e + 1, None);
                        }
                        if self.edge_increments[e].is_none() {
                            self.dirty_edges.push(*edge);
                        }
                        add_rate(self.edge_increments[e].get_or_insert_default(), series, inc);
                    }
                }
                Role::Gauge(..) => {
                    // Gauges need only their newest value.
                    if track.samples.len() > 1 {
                        track.samples.pop_front();
                    }
                }
            }
        }
    }
}
