//! Series the aggregator derives from the graph and writes into its own store, so Grafana's
//! stock views work through the Prometheus datasource:
//!
//! - `traces_service_graph_request_total`, `traces_service_graph_request_failed_total` and
//!   `traces_service_graph_request_server_seconds_{bucket,sum,count}` with `client` and `server`
//!   (node ids of the workload graph: a call to a workload outside the mesh ends at its service
//!   node) plus `client_cluster`, `server_cluster`,
//!   `client_namespace`, `server_namespace`, as the OpenTelemetry servicegraph connector names
//!   them (Grafana's Tempo service-graph view queries these names);
//! - whatever else a caller hands to [`DerivedSeries::write`] (health uses it for
//!   `meshfed_service_health`).
//!
//! The counters are running totals of the primary series' increments since the aggregator
//! started: a restart shows as a counter reset, which `rate()` handles. A pair without
//! increments for [`IDLE_MS`] is no longer written (its series go stale, as Tempo's
//! metrics-generator lets idle series go); if its traffic comes back, its counters start again
//! from zero.
//!
//! Every write appends one sample per series. The label sets are built and looked up in the
//! store once per pair (and again only when a pair's histogram gains a bucket or the store
//! forgot a series), so a write is a pass over flat totals.

use std::collections::HashMap;
use std::sync::Arc;

use meshfed_model::Labels;
use meshfed_store::{SeriesRef, Store};

use crate::graph::istio::FineEdge;
use crate::graph::stats::EdgeStats;
use crate::graph::view::workload_node;

/// How long a pair may go without increments before its series are no longer written (Tempo's
/// metrics-generator drops series idle for 15 minutes by default).
pub const IDLE_MS: i64 = 15 * 60_000;

/// Running totals of one client/server pair, with the store refs of its series.
struct Pair {
    /// `client`, `server` and their clusters and namespaces (no metric name).
    labels: Labels,
    requests: f64,
    failed: f64,
    sum_seconds: f64,
    /// `(le, count)`, `le` in seconds, ascending; cumulative as Istio's buckets are.
    buckets: Vec<(f64, f64)>,
    /// Refs of the total, failed, sum and count series, then of each bucket; `None` until
    /// looked up and after the buckets changed.
    refs: Option<Vec<SeriesRef>>,
    /// Increments arrived since the last write.
    touched: bool,
    /// Time of the last write that followed increments.
    active_ms: i64,
}

impl Pair {
    fn add(&mut self, inc: &EdgeStats) {
        self.touched = true;
        self.requests += inc.requests;
        self.failed += inc.errors;
        self.sum_seconds += inc.duration_sum_ms / 1000.0;
        let same = self.buckets.len() == inc.duration_buckets.len()
            && self
                .buckets
                .iter()
                .zip(&inc.duration_buckets)
                .all(|(b, i)| b.0 == i.0 / 1000.0);
        if same {
            for (b, i) in self.buckets.iter_mut().zip(&inc.duration_buckets) {
                b.1 += i.1;
            }
            return;
        }
        self.merge_buckets(&inc.duration_buckets);
    }

    /// Adds buckets with other bounds (`(le, count)`, `le` in ms, ascending). Either side's
    /// count at a bound it lacks is its count at the next lower bound it has (cumulative
    /// buckets: at least that many were that fast), so the merged buckets stay cumulative.
    fn merge_buckets(&mut self, inc: &[(f64, f64)]) {
        let inc: Vec<(f64, f64)> = inc.iter().map(|&(le, n)| (le / 1000.0, n)).collect();
        let mut bounds: Vec<f64> = self.buckets.iter().chain(&inc).map(|b| b.0).collect();
        bounds.sort_by(f64::total_cmp);
        bounds.dedup_by(|a, b| a.total_cmp(b).is_eq());
        // The count of `buckets` at `le`: at its largest bound not above `le`.
        let at = |buckets: &[(f64, f64)], le: f64| {
            let i = buckets.partition_point(|b| b.0.total_cmp(&le).is_le());
            if i == 0 { 0.0 } else { buckets[i - 1].1 }
        };
        if bounds.len() != self.buckets.len() {
            self.refs = None;
        }
        self.buckets = bounds
            .into_iter()
            .map(|le| (le, at(&self.buckets, le) + at(&inc, le)))
            .collect();
    }

    /// The series before the buckets, with their values: the histogram's sum and count only
    /// once it has buckets.
    fn head(&self) -> impl Iterator<Item = (&'static str, f64)> {
        let names = [
            "traces_service_graph_request_total",
            "traces_service_graph_request_failed_total",
            "traces_service_graph_request_server_seconds_sum",
            "traces_service_graph_request_server_seconds_count",
        ];
        let values = [self.requests, self.failed, self.sum_seconds, self.count()];
        names
            .into_iter()
            .zip(values)
            .take(if self.buckets.is_empty() { 2 } else { 4 })
    }

    /// The label sets of the pair's series, in the order of [`Pair::refs`].
    fn series(&self) -> impl Iterator<Item = Labels> + '_ {
        let with = |name: &str, le: Option<f64>| {
            let mut b = self.labels.to_builder();
            b.set("__name__", name);
            if let Some(le) = le {
                b.set(
                    "le",
                    if le.is_infinite() {
                        "+Inf".to_owned()
                    } else {
                        le.to_string()
                    },
                );
            }
            b.build()
        };
        self.head().map(move |(name, _)| with(name, None)).chain(
            self.buckets
                .iter()
                .map(move |&(le, _)| with("traces_service_graph_request_server_seconds_bucket", Some(le))),
        )
    }

    /// Requests the histogram counted: its `+Inf` bucket (the largest, should a proxy's
    /// histogram lack it).
    fn count(&self) -> f64 {
        self.buckets.last().map_or(0.0, |b| b.1)
    }

    /// The values in the order of [`Pair::refs`].
    fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.head()
            .map(|(_, v)| v)
            .chain(self.buckets.iter().map(|b| b.1))
    }
}

/// See the module docs.
pub struct DerivedSeries {
    store: Arc<Store>,
    pairs: Vec<Option<Pair>>,
    free_pairs: Vec<u32>,
    pair_ids: HashMap<(String, String), u32>,
    /// Per table edge id: its key as last seen (an id the table reused for another edge holds
    /// a different key) and its pair.
    edges: Vec<Option<(Arc<FineEdge>, u32)>>,
    /// Refs of the other series written.
    other: HashMap<Labels, SeriesRef>,
    batch: Vec<(SeriesRef, i64, f64)>,
}

impl DerivedSeries {
    /// Derived series written into `store`.
    pub fn new(store: Arc<Store>) -> Self {
        Self {
            store,
            pairs: Vec::new(),
            free_pairs: Vec::new(),
            pair_ids: HashMap::new(),
            edges: Vec::new(),
            other: HashMap::new(),
            batch: Vec::new(),
        }
    }

    /// Adds the increments of the table's edge `id` (key `edge`).
    pub fn add(&mut self, id: u32, edge: &Arc<FineEdge>, inc: &EdgeStats) {
        // Settling reports every scraped row, so a proxy that keeps exporting the counters of
        // calls long stopped hands in zeros: they are no traffic, and leave the pair idle.
        if inc.requests <= 0.0 && inc.errors <= 0.0 && inc.duration_buckets.iter().all(|b| b.1 <= 0.0) {
            return;
        }
        let id = id as usize;
        if self.edges.len() <= id {
            self.edges.resize(id + 1, None);
        }
        let pair = match &self.edges[id] {
            Some((key, pair)) if Arc::ptr_eq(key, edge) && self.pairs[*pair as usize].is_some() => *pair,
            _ => {
                let pair = self.pair_of(edge);
                self.edges[id] = Some((Arc::clone(edge), pair));
                pair
            }
        };
        if let Some(p) = self.pairs[pair as usize].as_mut() {
            p.add(inc);
        }
    }

    fn pair_of(&mut self, edge: &FineEdge) -> u32 {
        let (client, client_namespace) = workload_node(&edge.source, false);
        let (server, server_namespace) = workload_node(&edge.destination, true);
        if let Some(&p) = self.pair_ids.get(&(client.clone(), server.clone())) {
            return p;
        }
        let pair = Pair {
            labels: Labels::from_pairs([
                ("client", client.as_str()),
                ("server", server.as_str()),
                ("client_cluster", &edge.source.cluster),
                ("server_cluster", &edge.destination.cluster),
                ("client_namespace", &client_namespace),
                ("server_namespace", &server_namespace),
            ]),
            requests: 0.0,
            failed: 0.0,
            sum_seconds: 0.0,
            buckets: Vec::new(),
            refs: None,
            touched: false,
            active_ms: i64::MAX,
        };
        let p = match self.free_pairs.pop() {
            Some(p) => {
                self.pairs[p as usize] = Some(pair);
                p
            }
            None => {
                self.pairs.push(Some(pair));
                (self.pairs.len() - 1) as u32
            }
        };
        self.pair_ids.insert((client, server), p);
        p
    }

    /// Appends every active pair's totals and the `extra` series at `at_ms`, and commits.
    pub fn write(&mut self, at_ms: i64, extra: impl IntoIterator<Item = (Labels, f64)>) {
        self.forget_idle(at_ms);
        self.batch.clear();
        for slot in &mut self.pairs {
            let Some(pair) = slot else { continue };
            if std::mem::take(&mut pair.touched) || pair.active_ms == i64::MAX {
                pair.active_ms = at_ms;
            }
            if pair.refs.is_none() {
                let refs = pair
                    .series()
                    .map(|labels| self.store.get_or_create(&labels))
                    .collect();
                pair.refs = Some(refs);
            }
            let refs = pair.refs.as_deref().unwrap_or_default();
            self.batch
                .extend(refs.iter().zip(pair.values()).map(|(&r, v)| (r, at_ms, v)));
        }
        for (labels, v) in extra {
            let r = match self.other.get(&labels) {
                Some(&r) => r,
                None => {
                    let r = self.store.get_or_create(&labels);
                    self.other.insert(labels, r);
                    r
                }
            };
            self.batch.push((r, at_ms, v));
        }
        if !self.batch.is_empty() {
            if self.store.append_batch(&self.batch).unknown_series > 0 {
                // The store forgot a series idle past retention: look every one up again.
                self.other.clear();
                for pair in self.pairs.iter_mut().flatten() {
                    pair.refs = None;
                }
            }
            if let Err(e) = self.store.commit() {
                tracing::warn!(error = %e, "Could not commit derived series.");
            }
        }
    }

    /// Drops the pairs that had no increments for more than [`IDLE_MS`] before `at_ms` (and
    /// the edges that led to them).
    fn forget_idle(&mut self, at_ms: i64) {
        let mut dropped = false;
        for (p, slot) in self.pairs.iter_mut().enumerate() {
            if let Some(pair) = slot
                && !pair.touched
                && at_ms - pair.active_ms > IDLE_MS
            {
                let client = pair.labels.get("client").unwrap_or_default().to_owned();
                let server = pair.labels.get("server").unwrap_or_default().to_owned();
                self.pair_ids.remove(&(client, server));
                *slot = None;
                self.free_pairs.push(p as u32);
                dropped = true;
            }
        }
        if dropped {
            let pairs = &self.pairs;
            for e in &mut self.edges {
                if e.as_ref().is_some_and(|(_, p)| pairs[*p as usize].is_none()) {
                    *e = None;
                }
            }
        }
    }

    /// Client/server pairs whose series are written.
    pub fn pairs(&self) -> usize {
        self.pair_ids.len()
    }
}

#[cfg(test)]
mod tests;
