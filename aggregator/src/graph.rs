//! The cross-cluster service graph, maintained while ingesting.
//!
//! - [`istio`]: which Istio series feed which edge, from which reporter.
//! - [`table`]: the edge table: tracked series with their recent samples, updated per batch.
//! - `block`: how the table keeps samples: one columnar ring per edge and reporting proxy, so a
//!   window's bounds are found once for the series scraped together.
//! - [`stats`]: an edge's figures over one window, and how edges merge.
//! - [`view`]: graph types (workload, app, versionedApp, service), filters, the JSON shape.
//! - [`nodegraph`] and [`dot`]: Grafana Node Graph frames and Graphviz output.
//! - [`derived`]: the `traces_service_graph_*` series Grafana's service-graph view reads.
//! - [`health_input`]: what the health model takes from the table.
//! - [`sql`]: the `edges` and `health` SQL tables.
//!
//! [`GraphService`] ties them together: it owns the table and refreshes one snapshot per
//! configured window in the background, so a request only filters and serialises. Longer
//! windows are refreshed less often, in proportion to their length (see
//! [`GraphService::refresh`]).

mod block;
pub mod derived;
pub mod dot;
pub mod health_input;
pub mod istio;
pub mod nodegraph;
mod prefetch;
pub mod sql;
pub mod stats;
pub mod table;
pub mod view;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use parking_lot::RwLock;

pub use table::{EdgeTable, WindowSnapshot};
pub use view::{Edge, Graph, GraphQuery, GraphType, Node};

/// Every how many [`GraphService::refresh`] calls expired samples and series are forgotten (at
/// the default 5 s, every 30 s: a window never reads rows past its length, so this only bounds
/// how long the table keeps them beyond its retention).
const EXPIRE_EVERY: u64 = 6;

/// Windows the graph keeps rates for unless configured otherwise.
pub const DEFAULT_WINDOWS: [&str; 3] = ["1m", "5m", "10m"];

/// The edge table plus the latest snapshot per window.
pub struct GraphService {
    /// The table fed by the relay sink.
    pub table: Arc<EdgeTable>,
    windows: BTreeMap<String, i64>,
    /// Window length → refreshed on every n-th call of [`GraphService::refresh`].
    every: BTreeMap<i64, u64>,
    refreshes: AtomicU64,
    snapshots: RwLock<BTreeMap<i64, Arc<WindowSnapshot>>>,
    generation: AtomicI64,
}

impl GraphService {
    /// A service keeping the given windows (PromQL durations such as `1m`).
    pub fn new(windows: &[String]) -> Result<Self, String> {
        let mut parsed = BTreeMap::new();
        for w in windows {
            parsed.insert(w.clone(), parse_window(w)?);
        }
        let max = parsed.values().copied().max().unwrap_or(600_000);
        let min = parsed.values().copied().min().unwrap_or(60_000).max(1);
        let every = parsed
            .values()
            .map(|&w| (w, ((w as f64 / min as f64).round() as u64).max(1)))
            .collect();
        Ok(Self {
            table: Arc::new(EdgeTable::new(max)),
            windows: parsed,
            every,
            refreshes: AtomicU64::new(0),
            snapshots: RwLock::new(BTreeMap::new()),
            generation: AtomicI64::new(0),
        })
    }

    /// The same service with a table that tracks no series (`graph.enabled: false`): the
    /// graph's windows stay empty and ingest does no graph work.
    pub fn without_tracking(mut self) -> Self {
        let max = self.windows.values().copied().max().unwrap_or(600_000);
        self.table = Arc::new(EdgeTable::untracked(max));
        self
    }

    /// Window name → length in ms.
    pub fn windows(&self) -> &BTreeMap<String, i64> {
        &self.windows
    }

    /// Recomputes at `now_ms` the snapshots that are due (and every [`EXPIRE_EVERY`]th call
    /// first forgets expired samples and series): the
    /// shortest window on every call, a window `k` times as long on every `k`-th call (1m, 5m,
    /// 10m: every call, every 5th, every 10th), so each snapshot is equally fresh relative to
    /// its length and the work per call is about 1.3 windows instead of 3. A snapshot is exact
    /// at its own `at_ms`. Returns the windows recomputed (ms).
    pub fn refresh(&self, now_ms: i64) -> Vec<i64> {
        let n = self.refreshes.fetch_add(1, Ordering::AcqRel);
        if n.is_multiple_of(EXPIRE_EVERY) {
            self.table.expire();
        }
        let due: Vec<i64> = {
            let snaps = self.snapshots.read();
            self.every
                .iter()
                .filter(|&(w, &k)| n.is_multiple_of(k) || !snaps.contains_key(w))
                .map(|(&w, _)| w)
                .collect()
        };
        self.recompute(now_ms, &due);
        due
    }

    /// Recomputes every window's snapshot at `now_ms` (and forgets expired series).
    pub fn refresh_all(&self, now_ms: i64) {
        self.table.expire();
        let all: Vec<i64> = self.windows.values().copied().collect();
        self.recompute(now_ms, &all);
    }

    fn recompute(&self, now_ms: i64, windows: &[i64]) {
        for snap in self.table.compute_many(now_ms, windows, true) {
            let old = self.snapshots.write().insert(snap.window_ms, Arc::new(snap));
            // Unless a reader still holds it, its allocations serve the next computation.
            if let Some(old) = old.and_then(|o| Arc::try_unwrap(o).ok()) {
                self.table.recycle(old);
            }
        }
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Window length (ms) → every how many [`GraphService::refresh`] calls it is recomputed.
    pub fn refresh_schedule(&self) -> &BTreeMap<i64, u64> {
        &self.every
    }

    /// Changes whenever [`GraphService::refresh`] replaced a snapshot (for caches of rendered
    /// responses; [`GraphService::snapshot_time`] tells which windows changed).
    pub fn generation(&self) -> i64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Evaluation time of the latest background snapshot of window `window_ms`.
    pub fn snapshot_time(&self, window_ms: i64) -> Option<i64> {
        self.snapshots.read().get(&window_ms).map(|s| s.at_ms)
    }

    /// The snapshot of window `window_ms`: the latest background one, or computed now at `at_ms`
    /// when a time is given (exact, but only inside the table's retention).
    pub fn snapshot(&self, window_ms: i64, at_ms: Option<i64>) -> Arc<WindowSnapshot> {
        let cached = self.snapshots.read().get(&window_ms).cloned();
        match (cached, at_ms) {
            (Some(s), None) => s,
            (_, t) => Arc::new(
                self.table
                    .compute(t.unwrap_or_else(crate::http::now_ms), window_ms, true),
            ),
        }
    }
}

impl GraphService {
    /// The graph over `window` (one of [`GraphService::windows`]) at `at_ms` (default: the
    /// latest snapshot).
    pub fn graph(&self, window: &str, at_ms: Option<i64>, q: &GraphQuery) -> Result<Graph, String> {
        let Some(&window_ms) = self.windows.get(window) else {
            let known: Vec<&str> = self.windows.keys().map(String::as_str).collect();
            return Err(format!(
                "invalid window {window:?}: the graph keeps {}",
                known.join(", ")
            ));
        };
        let snap = self.snapshot(window_ms, at_ms);
        Ok(view::build(&snap, window, q, &self.table.workload_services()))
    }

    /// The shortest window kept.
    pub fn shortest_window(&self) -> &str {
        self.windows
            .iter()
            .min_by_key(|(_, ms)| **ms)
            .map_or("1m", |(n, _)| n.as_str())
    }
}

/// Parses a window such as `30s`, `1m`, `10m`, `1h` into ms.
pub fn parse_window(w: &str) -> Result<i64, String> {
    let bad = || format!("invalid window {w:?}: expected a duration such as 1m, 5m or 10m");
    let split = w.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = w.split_at(split);
    let n: i64 = n.parse().map_err(|_| bad())?;
    let ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(bad()),
    };
    if n <= 0 {
        return Err(bad());
    }
    Ok(n * ms)
}

#[cfg(test)]
mod tests;
