//! The aggregator's configuration file (YAML).
//!
//! ```yaml
//! relay_listen: 0.0.0.0:7070
//! http_listen: 0.0.0.0:9090
//! graph:
//!   windows: [1m, 5m, 10m]
//! health:
//!   error_rate_failing_percent: 5
//!   overrides:
//!     - {service: payments/checkout, latency_p99_failing_ms: 800}
//! ```

use std::path::{Path, PathBuf};

use meshfed_relay::tls::TlsFiles;
use serde::Deserialize;

use crate::health::HealthPolicy;
use crate::{Error, Result};

/// The whole aggregator configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AggregatorConfig {
    /// Where collectors connect (gRPC relay).
    pub relay_listen: String,
    /// Where the Prometheus API, graph and metrics are served.
    pub http_listen: String,
    /// Largest relay message accepted from a collector.
    pub max_relay_message_bytes: usize,
    /// mTLS for the relay: the CA that signs collector certificates, and the aggregator's own
    /// certificate and key. Required unless `insecure`.
    pub tls: Option<TlsFiles>,
    /// Accept plaintext relay connections and believe the cluster a collector names. For local
    /// experiments only; logged as a warning.
    pub insecure: bool,
    /// Where the store keeps its WAL and blocks. Without it data lives in memory only and is lost
    /// on restart (the relay then acknowledges batches as soon as they are in memory).
    pub data_dir: Option<PathBuf>,
    /// Keep samples this many days (persistent store only).
    pub retention_days: f64,
    /// Most series one collector stream may define.
    pub max_series_per_collector: usize,
    /// Samples per second one collector may send before it is slowed down (0: unlimited). The
    /// default is several times what a 300-pod cluster scraped every 5 s produces.
    pub max_samples_per_sec_per_collector: u64,
    /// The service graph.
    pub graph: GraphConfig,
    /// Health thresholds and hysteresis.
    pub health: HealthPolicy,
    /// The failover and routing controller.
    pub controller: crate::controller::ControllerConfig,
}

/// How the service graph is kept.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphConfig {
    /// Keep the service graph at all. Off, ingest does no graph work (no edge table, no
    /// snapshots, no health inputs or derived series) and the graph API answers with empty
    /// graphs: for an aggregator used only as a store, or to measure what the graph costs.
    pub enabled: bool,
    /// Rate windows kept up to date (PromQL durations).
    pub windows: Vec<String>,
    /// How often the window snapshots are refreshed.
    pub refresh_ms: u64,
    /// How often health is evaluated.
    pub health_interval_ms: u64,
    /// Write `traces_service_graph_*` and `meshfed_service_health` into the store.
    pub derived_series: bool,
    /// How often the derived series are written (Tempo's metrics-generator writes its
    /// service-graph series every 15 s by default). Above Prometheus' 5 minute lookback they
    /// go stale between writes.
    pub derived_interval_ms: u64,
}

impl Default for GraphConfig {
    fn default() -> Self {
        Self {
            windows: crate::graph::DEFAULT_WINDOWS
                .iter()
                .map(|w| (*w).to_owned())
                .collect(),
            enabled: true,
            refresh_ms: 5_000,
            health_interval_ms: 1_000,
            derived_series: true,
            derived_interval_ms: 15_000,
        }
    }
}

impl Default for AggregatorConfig {
    fn default() -> Self {
        Self {
            relay_listen: "127.0.0.1:7070".into(),
            http_listen: "127.0.0.1:9090".into(),
            max_relay_message_bytes: 16 << 20,
            tls: None,
            insecure: false,
            data_dir: None,
            retention_days: 15.0,
            max_series_per_collector: 4_000_000,
            max_samples_per_sec_per_collector: 500_000,
            graph: GraphConfig::default(),
            health: HealthPolicy::default(),
            controller: Default::default(),
        }
    }
}

impl AggregatorConfig {
    /// Reads a YAML config file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let err = |reason: String| Error::Config {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let config: Self = serde_norway::from_str(&text).map_err(|e| err(e.to_string()))?;
        config.validate().map_err(err)?;
        Ok(config)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.tls.is_none() && !self.insecure {
            return Err(
                "relay TLS is not configured: set tls {ca_file, cert_file, key_file} \
                        (or run with --insecure for a plaintext experiment)"
                    .into(),
            );
        }
        for w in &self.graph.windows {
            crate::graph::parse_window(w).map_err(|e| format!("graph.windows: {e}"))?;
        }
        if self.graph.windows.is_empty() {
            return Err("graph.windows must name at least one window".into());
        }
        if self.graph.refresh_ms == 0
            || self.graph.health_interval_ms == 0
            || self.graph.derived_interval_ms == 0
        {
            return Err(
                "graph.refresh_ms, graph.health_interval_ms and graph.derived_interval_ms must be positive"
                    .into(),
            );
        }
        self.health.validate()
    }
}
