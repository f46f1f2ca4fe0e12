//! The collector's own telemetry, `meshfed_collector_*`, served on its `/metrics`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

type LabelPairs = Vec<(String, String)>;

/// Counters shared by every scrape loop. Cheap to clone (handles to the same cells).
#[derive(Clone, Debug, Default)]
pub struct CollectorMetrics {
    /// Targets currently being scraped.
    pub targets: Gauge,
    /// Scrapes by `result` (`success`/`failure`).
    pub scrapes: Family<LabelPairs, Counter>,
    /// Failed scrapes by bounded `reason`.
    pub scrape_errors: Family<LabelPairs, Counter>,
    /// Samples exposed by targets.
    pub samples_scraped: Counter,
    /// Samples handed to the relay, including staleness markers and synthetic series.
    pub samples_forwarded: Counter,
    /// Samples dropped because the relay had stopped.
    pub samples_dropped: Counter,
    /// Target files that could not be read, per refresh.
    pub discovery_errors: Counter,
    /// Edge reduction: per-pod series feeding reduced series, at the last flush.
    pub reduction_series_in: Gauge,
    /// Edge reduction: workload-level series emitted at the last flush.
    pub reduction_series_out: Gauge,
    /// Edge reduction: `series_in / series_out` at the last flush (0 before the first).
    pub reduction_ratio: Gauge<f64, AtomicU64>,
    /// Version of the last config snapshot the agent applied (0 before the first).
    pub config_version: Gauge,
    /// Objects (or whole snapshots) the agent failed to apply.
    pub config_apply_errors: Counter,
    /// Topology reports that could not be read.
    pub topology_errors: Counter,
}

impl CollectorMetrics {
    /// Registers everything under `meshfed_collector_*`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("meshfed_collector");
        r.register("targets", "Targets currently scraped", self.targets.clone());
        r.register("scrapes", "Scrapes by result", self.scrapes.clone());
        r.register(
            "scrape_errors",
            "Failed scrapes by reason",
            self.scrape_errors.clone(),
        );
        r.register(
            "samples_scraped",
            "Samples exposed by targets",
            self.samples_scraped.clone(),
        );
        r.register(
            "samples_forwarded",
            "Samples handed to the relay",
            self.samples_forwarded.clone(),
        );
        r.register(
            "samples_dropped",
            "Samples dropped after the relay stopped",
            self.samples_dropped.clone(),
        );
        r.register(
            "discovery_errors",
            "Target files that could not be read",
            self.discovery_errors.clone(),
        );
        r.register(
            "reduction_series_in",
            "Per-pod series summed by edge reduction",
            self.reduction_series_in.clone(),
        );
        r.register(
            "reduction_series_out",
            "Workload-level series produced by edge reduction",
            self.reduction_series_out.clone(),
        );
        r.register(
            "reduction_ratio",
            "Series in per series out of edge reduction",
            self.reduction_ratio.clone(),
        );
        r.register(
            "config_version",
            "Version of the last config snapshot applied",
            self.config_version.clone(),
        );
        r.register(
            "config_apply_errors",
            "Config objects or snapshots that failed to apply",
            self.config_apply_errors.clone(),
        );
        r.register(
            "topology_errors",
            "Topology reports that could not be read",
            self.topology_errors.clone(),
        );
    }

    /// Records the series counts of one reduction flush.
    pub fn reduction_flushed(&self, stats: crate::reduce::ReduceStats) {
        self.reduction_series_in.set(stats.series_in as i64);
        self.reduction_series_out.set(stats.series_out as i64);
        let ratio = if stats.series_out == 0 {
            0.0
        } else {
            stats.series_in as f64 / stats.series_out as f64
        };
        self.reduction_ratio.set(ratio);
    }

    /// Counts one scrape's outcome.
    pub fn scrape_done(&self, error: Option<&'static str>, scraped: usize) {
        let result = if error.is_some() { "failure" } else { "success" };
        self.scrapes
            .get_or_create(&vec![("result".into(), result.into())])
            .inc();
        if let Some(reason) = error {
            self.scrape_errors
                .get_or_create(&vec![("reason".into(), reason.into())])
                .inc();
        }
        self.samples_scraped.inc_by(scraped as u64);
    }
}
