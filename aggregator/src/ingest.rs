//! The relay sink: writes received samples into the store and tracks which clusters are connected.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use meshfed_model::Labels;
use meshfed_relay::decode::ResolvedSample;
use meshfed_relay::server::Ingest;
use meshfed_store::{SeriesRef, Store};

use crate::graph::EdgeTable;
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Stores relay batches and remembers connected collectors.
pub struct StoreIngest {
    store: Arc<Store>,
    graph: Arc<EdgeTable>,
    sessions: Mutex<BTreeMap<String, usize>>,
    control: Option<Arc<crate::controller::hub::ControlHub>>,
    metadata: Option<Arc<crate::metadata::MetadataStore>>,
    refused: Family<Vec<(String, String)>, Counter>,
    appended: Counter,
    /// Series registered since the last append that the graph may track: it looks at them at
    /// the next append, all at once, so that its allocations for them do not fall between the
    /// store's own for consecutive series (which would spread the store's per-series memory).
    unobserved: Mutex<Vec<u64>>,
    /// Whether `unobserved` may hold any, so an append takes its lock only after
    /// registrations. Set with the push and cleared once the graph has them, both under the
    /// lock: an append that reads `false` finds its series known to the graph.
    any_unobserved: AtomicBool,
}

impl StoreIngest {
    /// A sink writing into `store` and feeding the service graph's edge table.
    pub fn new(store: Arc<Store>, graph: Arc<EdgeTable>) -> Self {
        Self {
            store,
            graph,
            sessions: Mutex::new(BTreeMap::new()),
            control: None,
            metadata: None,
            refused: Family::default(),
            appended: Counter::default(),
            unobserved: Mutex::new(Vec::new()),
            any_unobserved: AtomicBool::new(false),
        }
    }

    /// Hands the series registered since the last call to the graph ([`Ingest::append`] does
    /// first). Holds the list's lock until the graph has them, so that an append on another
    /// stream never finds its series unknown to the graph while they are being looked at.
    pub fn observe_registered(&self) {
        if !self.any_unobserved.load(Ordering::Acquire) {
            return;
        }
        let mut unobserved = self.unobserved.lock();
        for r in unobserved.drain(..) {
            if let Some(labels) = self.store.labels(SeriesRef(r)) {
                self.graph.observe_series(r, &labels);
            }
        }
        self.any_unobserved.store(false, Ordering::Release);
    }

    /// Hands topology reports and config acks to the controller and serves its snapshots.
    pub fn with_control(mut self, hub: Arc<crate::controller::hub::ControlHub>) -> Self {
        self.control = Some(hub);
        self
    }

    /// Keeps the metric metadata collectors report in `store` (served at `/api/v1/metadata`).
    pub fn with_metadata(mut self, store: Arc<crate::metadata::MetadataStore>) -> Self {
        self.metadata = Some(store);
        self
    }

    /// Registers `meshfed_ingest_*` metrics.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("meshfed_ingest");
        r.register(
            "samples_appended",
            "Samples written to the store",
            self.appended.clone(),
        );
        r.register(
            "samples_refused",
            "Samples the store refused, by reason",
            self.refused.clone(),
        );
    }

    /// Clusters with at least one open collector session, with the session count.
    pub fn connected_clusters(&self) -> BTreeMap<String, usize> {
        self.sessions.lock().clone()
    }
}

impl Ingest for StoreIngest {
    fn register_series(&self, labels: &Labels) -> u64 {
        let r = self.store.get_or_create(labels).0;
        if self.graph.may_track(labels) {
            let mut unobserved = self.unobserved.lock();
            unobserved.push(r);
            self.any_unobserved.store(true, Ordering::Release);
        }
        r
    }

    fn append(&self, cluster: &str, samples: &[ResolvedSample]) -> Result<(), String> {
        // One allocation per batch, not per sample; no lock shared between streams once their
        // series are registered.
        self.observe_registered();
        let batch: Vec<_> = samples.iter().map(|&(r, t, v)| (SeriesRef(r), t, v)).collect();
        let stats = self.store.append_batch(&batch);
        // Acknowledge only what is durable: this waits for the WAL's (shared) fsync.
        self.store.commit().map_err(|e| e.to_string())?;
        self.appended.inc_by(stats.appended);
        // After the commit: the graph never shows what a crash could take back.
        self.graph.append(cluster, samples);
        let refused = [
            ("out_of_order", stats.out_of_order),
            ("duplicate", stats.duplicate),
            ("unknown_series", stats.unknown_series),
        ];
        for (reason, n) in refused {
            if n > 0 {
                self.refused
                    .get_or_create(&vec![("reason".into(), reason.into())])
                    .inc_by(n);
            }
        }
        if stats.unknown_series > 0 {
            // The store forgot a series this stream's dictionary still names (it had no data
            // left): fail the stream so the collector reconnects, defines its series again and
            // resends the unacknowledged batch.
            return Err(format!(
                "{} samples name series the store has forgotten; reconnect to redefine them",
                stats.unknown_series
            ));
        }
        Ok(())
    }

    fn metadata(&self, cluster: &str, entries: &[meshfed_relay::proto::MetricMetadata]) {
        if let Some(store) = &self.metadata {
            store.update(cluster, entries);
        }
    }

    fn topology(&self, cluster: &str, collector_id: &str, topology: meshfed_relay::proto::ClusterTopology) {
        if let Some(hub) = &self.control {
            hub.report_topology(cluster, collector_id, topology);
        }
    }

    fn config_ack(&self, cluster: &str, collector_id: &str, ack: meshfed_relay::proto::ConfigAck) {
        if let Some(hub) = &self.control {
            hub.record_ack(cluster, collector_id, ack);
        }
    }

    fn config_feed(&self, cluster: &str) -> Option<meshfed_relay::server::ConfigFeed> {
        self.control.as_ref().map(|hub| hub.feed(cluster))
    }

    fn session_opened(&self, cluster: &str, _collector_id: &str) {
        *self.sessions.lock().entry(cluster.to_owned()).or_default() += 1;
    }

    fn session_closed(&self, cluster: &str, _collector_id: &str) {
        let mut s = self.sessions.lock();
        if let Some(n) = s.get_mut(cluster) {
            *n -= 1;
            if *n == 0 {
                s.remove(cluster);
            }
        }
    }
}
