//! Series the aggregator derives from the graph and writes into its own store, so Grafana's
//! stock views work through the Prometheus datasource:
//!
//! - `traces_service_graph_request_total`, `traces_service_graph_request_failed_total` and
//!   `traces_service_graph_request_server_seconds_{bucket,sum,count}` with `client` and `server`
//!   (node ids of the workload graph) plus `client_cluster`, `server_cluster`,
//!   `client_namespace`, `server_namespace`, as the OpenTelemetry servicegraph connector names
//!   them (Grafana's Tempo service-graph view queries these names);
//! - whatever else a caller hands to [`SeriesWriter::write`] (health uses it for
//!   `meshfed_service_health`).
//!
//! The counters are running totals of the primary series' increments since the aggregator
//! started: a restart shows as a counter reset, which `rate()` handles.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use meshfed_model::Labels;
use meshfed_store::{SeriesRef, Store};

use crate::graph::istio::{Endpoint, FineEdge};
use crate::graph::stats::EdgeStats;

/// Appends derived samples to the store, remembering series refs.
pub struct SeriesWriter {
    store: Arc<Store>,
    refs: HashMap<Labels, SeriesRef>,
}

impl SeriesWriter {
    /// A writer into `store`.
    pub fn new(store: Arc<Store>) -> Self {
        Self {
            store,
            refs: HashMap::new(),
        }
    }

    /// Appends one sample per series at `at_ms` and commits.
    pub fn write(&mut self, at_ms: i64, samples: impl IntoIterator<Item = (Labels, f64)>) {
        let batch: Vec<_> = samples
            .into_iter()
            .map(|(labels, v)| {
                let r = match self.refs.get(&labels) {
                    Some(&r) => r,
                    None => {
                        let r = self.store.get_or_create(&labels);
                        self.refs.insert(labels, r);
                        r
                    }
                };
                (r, at_ms, v)
            })
            .collect();
        if batch.is_empty() {
            return;
        }
        if self.store.append_batch(&batch).unknown_series > 0 {
            // The store forgot a series idle past retention: look every label set up again next time.
            self.refs.clear();
        }
        if let Err(e) = self.store.commit() {
            tracing::warn!(error = %e, "Could not commit derived series.");
        }
    }
}

#[derive(Default)]
struct Totals {
    requests: f64,
    failed: f64,
    sum_seconds: f64,
    buckets: BTreeMap<u64, (f64, f64)>,
}

/// Running totals of the `traces_service_graph_*` counters per client/server pair.
#[derive(Default)]
pub struct ServiceGraphCounters {
    totals: BTreeMap<(String, String), (Labels, Totals)>,
}

impl ServiceGraphCounters {
    /// Adds one refresh's increments.
    pub fn add(&mut self, increments: &[(Arc<FineEdge>, EdgeStats)]) {
        for (edge, inc) in increments {
            if inc.requests <= 0.0 && inc.duration_buckets.is_empty() {
                continue;
            }
            let client = id(&edge.source);
            let server = id(&edge.destination);
            let (_, t) = self
                .totals
                .entry((client.clone(), server.clone()))
                .or_insert_with(|| (pair_labels(edge, client, server), Totals::default()));
            t.requests += inc.requests;
            t.failed += inc.errors;
            t.sum_seconds += inc.duration_sum_ms / 1000.0;
            for &(le_ms, n) in &inc.duration_buckets {
                let le = le_ms / 1000.0;
                t.buckets.entry(le.to_bits()).or_insert((le, 0.0)).1 += n;
            }
        }
    }

    /// Every series with its current total.
    pub fn samples(&self) -> Vec<(Labels, f64)> {
        let mut out = Vec::new();
        for (labels, t) in self.totals.values() {
            let with = |name: &str, extra: Option<(&str, String)>| {
                let mut b = labels.to_builder();
                b.set("__name__", name);
                if let Some((k, v)) = extra {
                    b.set(k, v);
                }
                b.build()
            };
            out.push((with("traces_service_graph_request_total", None), t.requests));
            out.push((with("traces_service_graph_request_failed_total", None), t.failed));
            if t.buckets.is_empty() {
                continue;
            }
            let count = t
                .buckets
                .values()
                .find(|(le, _)| le.is_infinite())
                .map_or(0.0, |b| b.1);
            for (le, n) in t.buckets.values() {
                let le = if le.is_infinite() {
                    "+Inf".to_owned()
                } else {
                    le.to_string()
                };
                out.push((
                    with(
                        "traces_service_graph_request_server_seconds_bucket",
                        Some(("le", le)),
                    ),
                    *n,
                ));
            }
            out.push((
                with("traces_service_graph_request_server_seconds_sum", None),
                t.sum_seconds,
            ));
            out.push((
                with("traces_service_graph_request_server_seconds_count", None),
                count,
            ));
        }
        out
    }
}

fn id(e: &Endpoint) -> String {
    format!("{}/{}/{}", e.cluster, e.namespace, e.workload)
}

fn pair_labels(edge: &FineEdge, client: String, server: String) -> Labels {
    Labels::from_pairs([
        ("client", client),
        ("server", server),
        ("client_cluster", edge.source.cluster.to_string()),
        ("server_cluster", edge.destination.cluster.to_string()),
        ("client_namespace", edge.source.namespace.to_string()),
        ("server_namespace", edge.destination.namespace.to_string()),
    ])
}
