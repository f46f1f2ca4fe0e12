//! The edge table: Istio series tracked as they are ingested, with the last few minutes of
//! samples each, so any window's rates are computed without touching the store or parsing a
//! query.
//!
//! The relay sink hands every batch to [`EdgeTable::append`]; series the graph does not use cost
//! one array lookup per sample. The samples of the series one proxy reports for one edge are
//! kept together, one row per scrape (see [`crate::graph::block`]). Computing a window
//! ([`EdgeTable::compute`]) walks these blocks once and evaluates Prometheus' `rate()` for every
//! series (from the block's two boundary rows where the window is regular, with the query
//! engine's own kernel otherwise), so the graph's figures are exactly what
//! `sum by (…) (rate(…[w]))` returns on the same data.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use meshfed_model::{Labels, Sample, is_stale_nan};
use parking_lot::Mutex;

use crate::graph::block::{Block, Pushed, WindowRates};
use crate::graph::health_input::{HealthInputs, ServiceIncrements};
use crate::graph::istio::{self, EndpointGauge, FineEdge, IstioSeries, Measure, Name, ServiceKey};
use crate::graph::stats::EdgeStats;

mod inner;
mod plan;

use plan::{Plan, Plans, Sums};

/// Rates of every edge over one window at one instant.
#[derive(Clone, Debug, Default)]
pub struct WindowSnapshot {
    /// Evaluation time, ms since the epoch.
    pub at_ms: i64,
    /// Window length in ms.
    pub window_ms: i64,
    /// The table's edge keys by edge id when the snapshot was taken (shared with the table
    /// while no edge comes or goes).
    keys: Arc<Vec<Option<Arc<FineEdge>>>>,
    /// Per edge id.
    stats: Vec<EdgeStats>,
    include_idle: bool,
}

impl WindowSnapshot {
    /// Edges with traffic in the window (and, when the snapshot was asked for them, idle ones
    /// with zero rates).
    pub fn edges(&self) -> impl Iterator<Item = (&Arc<FineEdge>, &EdgeStats)> {
        self.keys
            .iter()
            .zip(&self.stats)
            .filter_map(|(k, s)| Some((k.as_ref()?, s)))
            .filter(|(_, s)| self.include_idle || s.is_active())
    }
}

/// What the table keeps of an Istio series' role (its edge and service are the block's, so the
/// labels are not kept per series); the block's [`Plan`] is built from these.
#[derive(Clone, Copy, Debug)]
struct SeriesRole {
    measure: Measure,
    primary: bool,
    mtls: Option<bool>,
    /// Envoy response flags other than `-`: index into [`Inner::flag_names`] plus one (0: none).
    flags: u32,
    /// Whether the first sample is an increment from zero: true for a series that appears on a
    /// service already seen (a new response code starts counting), false while the table is
    /// learning what exists (after a restart every series is new, and its value is history).
    first_counts: bool,
}

/// The series of one edge as one proxy reports them (same `pod` and `instance`), scraped
/// together and so sharing their timestamps. Per series (in column order): `roles`, `refs`,
/// `born`.
struct BlockEntry {
    edge: u32,
    /// The edge's destination service (index into the table).
    service: u32,
    key: BlockKey,
    roles: Vec<SeriesRole>,
    refs: Vec<u64>,
    /// The table's newest sample time when the series was registered: a series announced but
    /// not yet sampled is kept for a full retention period.
    born: Vec<i64>,
    /// How the series add into the edge's figures; `None` after the series changed.
    plan: Option<Arc<Plan>>,
    /// Some series is primary (its samples count for health).
    has_primary: bool,
    /// Some column has an increment not yet folded (the block is in [`Inner::dirty_blocks`]).
    dirty: bool,
    block: Block,
}

impl BlockEntry {
    /// The block's plan, from `plans` after its series changed.
    fn plan(&mut self, plans: &mut Plans) -> &Plan {
        self.plan.get_or_insert_with(|| plans.get(&self.roles))
    }
}

/// How many blocks ahead a window computation asks for a block's rows (see
/// [`EdgeTable::compute_many`]).
const PREFETCH_BLOCKS: usize = 8;

/// Edge id, `pod`, `instance`.
type BlockKey = (u32, Name, Name);

/// An endpoint gauge: only its newest sample matters.
struct GaugeTrack {
    series_ref: u64,
    service: ServiceKey,
    gauge: EndpointGauge,
    last: Option<Sample>,
    born_ms: i64,
}

/// Where a series ref's samples go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Loc {
    /// Not used by the graph.
    #[default]
    None,
    /// Block and column.
    Column(u32, u32),
    /// Index into the gauges.
    Gauge(u32),
}

struct EdgeEntry {
    key: Arc<FineEdge>,
    /// Series of the edge.
    tracks: usize,
}

#[derive(Default)]
struct Inner {
    by_ref: Vec<Loc>,
    blocks: Vec<Option<BlockEntry>>,
    free_blocks: Vec<u32>,
    block_ids: HashMap<BlockKey, u32>,
    gauges: Vec<Option<GaugeTrack>>,
    free_gauges: Vec<u32>,
    edges: Vec<Option<EdgeEntry>>,
    free_edges: Vec<u32>,
    edge_ids: HashMap<FineEdge, u32>,
    names: HashSet<Name>,
    /// Response flags named by [`SeriesRole::flags`].
    flag_names: Vec<Name>,
    flag_ids: HashMap<Name, u32>,
    /// Blocks with increments not yet folded into the services' and edges' increments: the
    /// per-sample path only adds into its column, and [`Inner::fold`] adds each column once.
    dirty_blocks: Vec<u32>,
    /// Destination services by id, with their pending health increments.
    services: Vec<ServiceSlot>,
    service_ids: HashMap<ServiceKey, u32>,
    dirty_services: Vec<u32>,
    /// Per edge id: whether it has counter increments not yet drained
    /// ([`EdgeTable::drain_increments`]), and they (kept allocated between drains, cleared when
    /// the next increment arrives).
    edge_increments: Vec<inner::PendingIncrements>,
    dirty_edges: Vec<u32>,
    /// Scratch space of [`Inner::fold`].
    sums: Sums,
    increments: Vec<f64>,
    plans: Plans,
    /// Nobody takes the edges' increments (no derived series): [`Inner::fold`] only adds the
    /// services'.
    no_edge_increments: bool,
    /// `edges`' keys for snapshots; `None` after an edge came or went.
    keys: Option<Arc<Vec<Option<Arc<FineEdge>>>>>,
    /// Newest sample timestamp applied.
    newest_ms: i64,
    /// How long samples are kept (see [`EdgeTable::new`]).
    retain_ms: i64,
}

struct ServiceSlot {
    key: ServiceKey,
    /// Has had a sample (see [`SeriesRole::first_counts`]).
    known: bool,
    pending: Option<crate::graph::health_input::ServiceIncrements>,
}

/// See the module docs.
pub struct EdgeTable {
    inner: Mutex<Inner>,
    /// Whether series are tracked at all (see [`EdgeTable::untracked`]).
    tracking: bool,
    /// Stats of released snapshots, cleared, for the next computation to reuse (their bucket
    /// vectors keep their capacity).
    spare: Mutex<Vec<Vec<EdgeStats>>>,
    /// Batches that arrived while a computation held the table.
    pending: Mutex<Vec<(u64, i64, f64)>>,
    seen: Mutex<HashMap<Name, i64>>,
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
        // One extra minute so the oldest window always sees its first sample.
        Self {
            inner: Mutex::new(Inner {
                retain_ms: max_window_ms + 60_000,
                ..Inner::default()
            }),
            tracking: true,
            spare: Mutex::new(Vec::new()),
            pending: Mutex::new(Vec::new()),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// A table that tracks no series (the graph switched off, `graph.enabled: false`): appends
    /// only note which clusters delivered samples, and every window is empty.
    pub fn untracked(max_window_ms: i64) -> Self {
        Self {
            tracking: false,
            ..Self::new(max_window_ms)
        }
    }

    /// Whether [`EdgeTable::observe_series`] may remember a series with `labels` (the graph
    /// and health read only some Istio and Envoy metrics).
    pub fn may_track(&self, labels: &Labels) -> bool {
        self.tracking
            && labels
                .metric_name()
                .is_some_and(|name| name.starts_with("istio_") || name.starts_with("envoy_cluster_"))
    }

    /// Looks at a newly registered series; remembers it when the graph or health uses it.
    pub fn observe_series(&self, series_ref: u64, labels: &Labels) {
        if !self.may_track(labels) {
            return;
        }
        let mut inner = self.inner.lock();
        let idx = usize::try_from(series_ref).unwrap_or(usize::MAX);
        if inner.by_ref.get(idx).is_some_and(|l| !matches!(l, Loc::None)) {
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
        if let Some(series) = istio::classify(labels, &mut intern) {
            let pod = intern(labels.get("pod").unwrap_or(""));
            let instance = intern(labels.get("instance").unwrap_or(""));
            let edge = inner.edge_id(&series.edge);
            let service = inner.service_id(destination_service(&series));
            let role = SeriesRole {
                measure: series.measure,
                primary: series.primary,
                mtls: series.mtls,
                flags: series.flags.map_or(0, |f| inner.flag_id(f)),
                first_counts: inner.services[service as usize].known,
            };
            inner.insert_series(series_ref, role, service, (edge, pod, instance));
        } else if let Some((service, gauge)) = istio::classify_endpoint_gauge(labels, &mut intern) {
            inner.insert_gauge(GaugeTrack {
                series_ref,
                service,
                gauge,
                last: None,
                born_ms: inner.newest_ms,
            });
        }
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
        if !self.tracking {
            return;
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
        let edges = inner.edges.len();
        let mut stats: Vec<Vec<EdgeStats>> = windows_ms
            .iter()
            .map(|_| {
                // A recycled vector's stats are cleared when first written below (or at the
                // end, for edges without a rate), not in a pass of their own.
                let mut stats = self.spare.lock().pop().unwrap_or_default();
                stats.truncate(edges);
                stats.resize_with(edges, EdgeStats::default);
                stats
            })
            .collect();
        let mut written: Vec<Vec<bool>> = windows_ms.iter().map(|_| vec![false; edges]).collect();
        let (mut rates, mut present, mut scratch) = (Vec::new(), Vec::new(), Vec::new());
        let mut sums = Sums::default();
        // The new rows are settled first (which marks the counter resets the windows must not
        // span), in a pass of its own: one walk that settled and computed was slower
        // (BENCHMARKS.md, "Graph maintenance, paired A/B").
        inner.fold();
        let (blocks, mut settling) = inner.split();
        for i in 0..blocks.len() {
            // The rows of a block a few places ahead are asked for now, so that several
            // blocks' memory reads are under way at once.
            if let Some(Some(ahead)) = blocks.get(i + PREFETCH_BLOCKS) {
                for &window_ms in windows_ms {
                    ahead.block.prefetch_window(at_ms, window_ms);
                }
            }
            let Some(entry) = blocks[i].as_mut() else { continue };
            settling.plan(entry);
            let Some(plan) = &entry.plan else { continue };
            for (w, &window_ms) in windows_ms.iter().enumerate() {
                let bounds = entry.block.window_bounds(at_ms, window_ms);
                let have = match entry
                    .block
                    .window_rates(&bounds, &mut rates, &mut present, &mut scratch)
                {
                    WindowRates::None => continue,
                    WindowRates::All => None,
                    WindowRates::Some => Some(present.as_slice()),
                };
                let e = entry.edge as usize;
                let stats = &mut stats[w][e];
                if !written[w][e] {
                    written[w][e] = true;
                    stats.clear();
                }
                stats.duration_buckets.reserve(plan.buckets());
                plan.add_rates(&rates, have, &mut sums, stats, settling.flag_names);
            }
        }
        for (stats, written) in stats.iter_mut().zip(&written) {
            for (s, _) in stats.iter_mut().zip(written).filter(|(_, w)| !**w) {
                s.clear();
            }
        }
        let keys = Arc::clone(inner.keys.get_or_insert_with(|| {
            Arc::new(
                inner
                    .edges
                    .iter()
                    .map(|e| Some(Arc::clone(&e.as_ref()?.key)))
                    .collect(),
            )
        }));
        windows_ms
            .iter()
            .zip(stats)
            .map(|(&window_ms, stats)| WindowSnapshot {
                at_ms,
                window_ms,
                keys: Arc::clone(&keys),
                stats,
                include_idle,
            })
            .collect()
    }

    /// Gives the stats of a snapshot no one holds any more back for the next computation to
    /// reuse (the refresh replaces each window's snapshot; their allocations are recycled).
    pub fn recycle(&self, snapshot: WindowSnapshot) {
        let mut spare = self.spare.lock();
        if spare.len() < 4 {
            spare.push(snapshot.stats);
        }
    }

    /// Increments collected for health since the last call.
    pub fn take_health_inputs(&self) -> HealthInputs {
        let mut inner = self.lock();
        let inner = &mut *inner;
        inner.fold();
        let mut out = HealthInputs::default();
        for id in inner.dirty_services.drain(..) {
            let s = &mut inner.services[id as usize];
            if let Some(inc) = s.pending.take() {
                out.services.insert(s.key.clone(), inc);
            }
        }
        out
    }

    /// Whether the edges' increments are collected for [`EdgeTable::drain_increments`] (by
    /// default they are; the aggregator turns them off when it writes no derived series, so
    /// nothing accumulates that no one takes).
    pub fn collect_edge_increments(&self, collect: bool) {
        let mut inner = self.lock();
        inner.no_edge_increments = !collect;
        if !collect {
            inner.edge_increments.clear();
            inner.dirty_edges.clear();
        }
    }

    /// Hands `f` the counter increments per edge since the last call (primary series only):
    /// edge id, key and increments. `f` runs under the table's lock.
    pub fn drain_increments(&self, mut f: impl FnMut(u32, &Arc<FineEdge>, &EdgeStats)) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        inner.fold();
        for id in inner.dirty_edges.drain(..) {
            let Some((pending, inc)) = inner.edge_increments.get_mut(id as usize) else {
                continue;
            };
            // An id can be listed twice when its edge went and another took the id.
            if !std::mem::replace(pending, false) {
                continue;
            }
            if let Some(Some(e)) = inner.edges.get(id as usize) {
                f(id, &e.key, inc);
            }
        }
    }

    /// Endpoint gauges per service as the proxies of each cluster see them, summed over the
    /// reporting proxies (their newest values), with the newest sample time among them.
    /// Proxies silent for `max_age_ms` (measured back from the newest sample received) are left
    /// out: a pod that went away no longer counts.
    pub fn endpoint_gauges_with_time(&self, max_age_ms: i64) -> HashMap<ServiceKey, (EndpointCounts, i64)> {
        let inner = self.lock();
        let oldest = inner.newest_ms - max_age_ms;
        let mut out: HashMap<ServiceKey, (EndpointCounts, i64)> = HashMap::new();
        for track in inner.gauges.iter().flatten() {
            let (service, gauge) = (&track.service, &track.gauge);
            let Some(last) = track.last.filter(|s| s.timestamp_ms >= oldest) else {
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
        // Increments of series about to be dropped are kept.
        inner.fold();
        let cutoff = inner.newest_ms - inner.retain_ms;
        let mut dropped = 0;
        for b in 0..inner.blocks.len() {
            dropped += inner.expire_block(b, cutoff);
        }
        if dropped > 0 {
            inner.plans.prune();
        }
        for g in 0..inner.gauges.len() {
            let Some(track) = inner.gauges[g].as_mut() else {
                continue;
            };
            if track.last.is_some_and(|s| s.timestamp_ms < cutoff) {
                track.last = None;
            }
            if track.last.is_none() && track.born_ms < cutoff {
                let series_ref = track.series_ref as usize;
                inner.gauges[g] = None;
                inner.free_gauges.push(g as u32);
                inner.by_ref[series_ref] = Loc::None;
                dropped += 1;
            }
        }
        dropped
    }

    /// Series and edges currently tracked.
    pub fn size(&self) -> (usize, usize) {
        let inner = self.lock();
        let series = inner
            .blocks
            .iter()
            .flatten()
            .map(|b| b.block.columns())
            .sum::<usize>()
            + inner.gauges.iter().flatten().count();
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
