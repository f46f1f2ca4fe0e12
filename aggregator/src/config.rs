//! The aggregator's configuration file (YAML).
//!
//! ```yaml
//! relay_listen: 0.0.0.0:7070
//! http_listen: 0.0.0.0:9090
//! ```

use std::path::Path;

use serde::Deserialize;

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
}

impl Default for AggregatorConfig {
    fn default() -> Self {
        Self {
            relay_listen: "127.0.0.1:7070".into(),
            http_listen: "127.0.0.1:9090".into(),
            max_relay_message_bytes: 16 << 20,
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
        serde_norway::from_str(&text).map_err(|e| err(e.to_string()))
    }
}
