//! Scrape targets and Prometheus file-based service discovery.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{Result, SimError};

/// One pod endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Cluster name.
    pub cluster: String,
    /// Namespace.
    pub namespace: String,
    /// Workload name.
    pub workload: String,
    /// Pod name.
    pub pod: String,
    /// `host:port`.
    pub address: String,
    /// `http://host:port/stats/prometheus`.
    pub url: String,
}

/// Prometheus file_sd JSON for the targets, optionally only those of one cluster.
pub fn file_sd(targets: &[Target], cluster: Option<&str>) -> serde_json::Value {
    let groups: Vec<serde_json::Value> = targets
        .iter()
        .filter(|t| cluster.is_none_or(|c| c == t.cluster))
        .map(|t| {
            json!({
                "targets": [t.address],
                "labels": {
                    "__metrics_path__": "/stats/prometheus",
                    "cluster": t.cluster,
                    "namespace": t.namespace,
                    "pod": t.pod,
                }
            })
        })
        .collect();
    serde_json::Value::Array(groups)
}

/// Writes [`file_sd`] to `path` atomically (temp file and rename), as file watchers expect.
pub fn write_file_sd(path: &Path, targets: &[Target], cluster: Option<&str>) -> Result<()> {
    let io = |context: String| move |source| SimError::Io { context, source };
    let body = serde_json::to_vec_pretty(&file_sd(targets, cluster))
        .map_err(|e| SimError::Config(format!("serializing file_sd: {e}")))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, body).map_err(io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io(format!("renaming to {}", path.display())))
}
