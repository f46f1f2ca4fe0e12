//! The collector's configuration file (YAML).
//!
//! ```yaml
//! cluster: cluster-1
//! relay:
//!   endpoints: [http://127.0.0.1:7070]
//! scrape:
//!   interval_secs: 5
//!   timeout_ms: 3000
//!   sample_limit: 50000            # limits fail the scrape, as in Prometheus; 0 = none
//!   label_limit: 64
//!   metric_relabel_configs:        # Prometheus syntax and semantics
//!     - source_labels: [__name__]
//!       regex: envoy_cluster_upstream_cx_.*
//!       action: drop
//!   reduce: {by_workload: true}    # sum per-pod counters/histograms to workload level
//! targets:
//!   static:
//!     - url: http://127.0.0.1:15020/stats/prometheus
//!       labels: {namespace: bookinfo, pod: productpage-v1-0}
//!   files: [/etc/meshfed/targets/*.json]   # Prometheus file_sd format
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use meshfed_relay::tls::TlsFiles;
use serde::Deserialize;

use crate::{Error, Result};

/// The whole collector configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// The cluster this collector reports for; stamped as the `cluster` label.
    pub cluster: String,
    /// This collector's id within the cluster.
    #[serde(default = "default_collector_id")]
    pub collector_id: String,
    /// Where to send samples.
    #[serde(default)]
    pub relay: RelayConfig,
    /// Scrape timing and limits.
    #[serde(default)]
    pub scrape: ScrapeConfig,
    /// What to scrape.
    #[serde(default)]
    pub targets: TargetsConfig,
    /// Address for the collector's own `/metrics` and health endpoints; none when absent.
    #[serde(default)]
    pub listen_addr: Option<String>,
    /// Where to read this cluster's topology for the failover controller; not reported when absent.
    #[serde(default)]
    pub topology: Option<crate::topology::TopologyConfig>,
    /// Where to apply the controller's config snapshots.
    #[serde(default)]
    pub agent: crate::agent::AgentConfig,
}

/// Relay client settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// Aggregator relay addresses (`https://host:port`), tried in turn.
    pub endpoints: Vec<String>,
    /// mTLS: the CA that signed the aggregator's certificate, and this cluster's certificate and
    /// key (its SPIFFE id or CN names the cluster). Required unless `insecure`.
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    /// The name the aggregator's certificate must carry, when it differs from the address's host.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Plaintext, for local experiments only.
    #[serde(default)]
    pub insecure: bool,
    /// Directory for batches not yet acknowledged by the aggregator; they survive restarts and
    /// are sent again after reconnecting. Memory only when absent.
    #[serde(default)]
    pub buffer_dir: Option<PathBuf>,
    /// Most bytes the disk buffer may hold; past it the oldest data is dropped (and counted).
    #[serde(default = "default_buffer_max_bytes")]
    pub buffer_max_bytes: u64,
    /// Longest wait between reconnect attempts (backoff doubles up to it, with jitter).
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// An aggregator that answers nothing, not even heartbeats, for this long is reconnected.
    #[serde(default = "default_peer_timeout_ms")]
    pub peer_timeout_ms: u64,
}

fn default_max_backoff_ms() -> u64 {
    10_000
}

fn default_peer_timeout_ms() -> u64 {
    20_000
}

fn default_buffer_max_bytes() -> u64 {
    256 << 20
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            endpoints: vec!["https://127.0.0.1:7070".into()],
            tls: None,
            server_name: None,
            insecure: false,
            buffer_dir: None,
            buffer_max_bytes: default_buffer_max_bytes(),
            max_backoff_ms: default_max_backoff_ms(),
            peer_timeout_ms: default_peer_timeout_ms(),
        }
    }
}

/// Scrape timing and limits, applied to every target.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScrapeConfig {
    /// Time between scrapes of one target.
    pub interval_secs: f64,
    /// Per-scrape timeout.
    pub timeout_ms: u64,
    /// The `job` label of scraped series.
    pub job: String,
    /// Largest accepted (decompressed) body.
    pub max_body_bytes: usize,
    /// Largest accepted number of samples per scrape (after relabelling); 0 for no limit.
    pub sample_limit: usize,
    /// Most labels a series may have (`__name__` and target labels included); 0 for no limit.
    pub label_limit: usize,
    /// Longest label name, in bytes; 0 for no limit.
    pub label_name_length_limit: usize,
    /// Longest label value, in bytes; 0 for no limit.
    pub label_value_length_limit: usize,
    /// Prometheus `metric_relabel_configs`, applied to every scraped series after target labels.
    pub metric_relabel_configs: Vec<crate::relabel::RelabelConfig>,
    /// Edge reduction of counters and histograms to workload level; off when absent.
    pub reduce: Option<crate::reduce::ReduceConfig>,
    /// Keep each target's HTTP connection open between scrapes, as Prometheus does (default): a
    /// new connection per target and interval cost the collector 11–40% more CPU per scrape. A
    /// plain-HTTP connection's read buffer is capped at 16 KiB, so an idle one costs little memory.
    pub keep_alive: bool,
}

impl Default for ScrapeConfig {
    fn default() -> Self {
        Self {
            interval_secs: 15.0,
            timeout_ms: 10_000,
            job: "envoy-stats".into(),
            max_body_bytes: 64 << 20,
            sample_limit: 0,
            label_limit: 0,
            label_name_length_limit: 0,
            label_value_length_limit: 0,
            metric_relabel_configs: Vec::new(),
            reduce: None,
            keep_alive: true,
        }
    }
}

/// Target sources.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetsConfig {
    /// Targets listed in the config.
    #[serde(default, rename = "static")]
    pub static_targets: Vec<StaticTarget>,
    /// Prometheus `file_sd` JSON or YAML files, re-read when they change.
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// How often target files are checked for changes.
    #[serde(default = "default_refresh_secs")]
    pub refresh_secs: f64,
}

/// One target from the config.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticTarget {
    /// Full URL to scrape, e.g. `http://10.0.0.5:15020/stats/prometheus`.
    pub url: String,
    /// Extra target labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn default_collector_id() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "collector-0".into())
}

fn default_refresh_secs() -> f64 {
    5.0
}

impl CollectorConfig {
    /// Reads and validates a YAML config file.
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

    /// Checks values serde cannot.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.cluster.is_empty() {
            return Err("cluster must not be empty".into());
        }
        if self.relay.endpoints.is_empty() {
            return Err("relay.endpoints must name at least one aggregator".into());
        }
        if self.scrape.interval_secs.is_nan() || self.scrape.interval_secs <= 0.0 {
            return Err(format!(
                "scrape.interval_secs must be positive, got {}",
                self.scrape.interval_secs
            ));
        }
        if self.relay.tls.is_none() && !self.relay.insecure {
            return Err("relay.tls is not configured (ca_file, cert_file, key_file); \
                        set relay.insecure: true only for a plaintext experiment"
                .into());
        }
        if self.scrape.timeout_ms == 0 {
            return Err("scrape.timeout_ms must be positive".into());
        }
        crate::relabel::RelabelRule::compile(&self.scrape.metric_relabel_configs)
            .map_err(|e| format!("scrape.{e}"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_example() {
        let c: CollectorConfig = serde_norway::from_str(
            "cluster: c1\nrelay: {endpoints: [x], insecure: true}\nscrape: {interval_secs: 5}\ntargets:\n  static:\n    - url: http://x/m\n      labels: {pod: p}\n",
        )
        .unwrap();
        assert_eq!(c.cluster, "c1");
        assert_eq!(c.scrape.interval_secs, 5.0);
        assert_eq!(c.scrape.timeout_ms, 10_000);
        assert_eq!(c.targets.static_targets[0].labels["pod"], "p");
        assert!(c.validate().is_ok());
    }

    #[test]
    fn parses_limits_relabelling_and_reduction() {
        let c: CollectorConfig = serde_norway::from_str(
            "cluster: c1\nrelay: {endpoints: [x], insecure: true}\nscrape:\n  label_limit: 30\n  label_value_length_limit: 200\n  metric_relabel_configs:\n    - {source_labels: [__name__], regex: 'envoy_.*', action: drop}\n  reduce: {by_workload: true}\n",
        )
        .unwrap();
        assert_eq!(c.scrape.label_limit, 30);
        assert_eq!(c.scrape.metric_relabel_configs.len(), 1);
        assert!(c.scrape.reduce.as_ref().is_some_and(|r| r.by_workload));
        assert!(c.validate().is_ok());
        let bad: CollectorConfig = serde_norway::from_str(
            "cluster: c1\nrelay: {endpoints: [x], insecure: true}\nscrape:\n  metric_relabel_configs: [{regex: '(', action: drop}]\n",
        )
        .unwrap();
        assert!(bad.validate().unwrap_err().contains("metric_relabel_configs[0]"));
    }

    #[test]
    fn rejects_unknown_fields_and_empty_cluster() {
        assert!(serde_norway::from_str::<CollectorConfig>("cluster: c\nbogus: 1\n").is_err());
        let c: CollectorConfig = serde_norway::from_str("cluster: ''\n").unwrap();
        assert!(c.validate().unwrap_err().contains("cluster"));
    }
}
