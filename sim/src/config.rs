//! Simulator configuration (serde, YAML-loadable). Every field is optional:
//!
//! ```yaml
//! seed: 42
//! clusters: 3
//! pods_per_workload: 2
//! extra_namespaces: 0          # copies of the web app: web-2, web-3, ...
//! envoy_upstream_series: 0     # per-upstream-cluster envoy_cluster_* series per pod (0 = none)
//! rate_scale: 1.0
//! edge_rates: {"frontend->web-api": 40}
//! record_scrapes: 0
//! control_listen: 127.0.0.1:0  # null disables the control API
//! scenario:                    # omit for the default scenario, [] for none
//!   - at_secs: 30
//!     duration_secs: 60
//!     fault: {kind: cluster_dark, cluster: cluster-2}
//! file_sd_path: /tmp/meshfed-sim-targets.json
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::scenario::ScheduledFault;
use crate::{Result, SimError};

/// Everything that shapes a simulated mesh. Unknown YAML keys are rejected so typos surface.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Seed for every random choice (pod names, per-service latency and size jitter).
    pub seed: u64,
    /// Number of clusters, named `cluster-1..cluster-K`.
    pub clusters: usize,
    /// Pods per workload instance (per cluster).
    pub pods_per_workload: usize,
    /// Scale knob: extra copies of the web app in namespaces `web-2`, `web-3`, … (0 = only `web`).
    pub extra_namespaces: usize,
    /// Scale knob: this many extra `envoy_cluster_<stat>{cluster_name="outbound|…"}` series per
    /// pod, what a sidecar without `Sidecar` scoping exposes for every upstream cluster in the mesh
    /// (60 stats per cluster; real sidecars show 1,000–5,000 series). 0 (the default) = none.
    pub envoy_upstream_series: usize,
    /// Multiplies every configured edge rate.
    pub rate_scale: f64,
    /// Per-edge rate overrides in requests (or TCP connections) per second per source workload
    /// instance, keyed `"<source workload>-><destination service>"`, e.g. `"productpage-v1->reviews"`,
    /// `"unknown->frontend"`, `"istio-ingressgateway->productpage"`.
    pub edge_rates: BTreeMap<String, f64>,
    /// Keep the last N scrapes served per pod with their exact samples (0 = off).
    pub record_scrapes: usize,
    /// Host the pod endpoints bind to (port 0 = ephemeral per pod).
    pub listen_host: String,
    /// Gzip scrape responses when the client sends `Accept-Encoding: gzip` (Envoy's admin endpoint
    /// does not, so this is off by default).
    pub gzip: bool,
    /// Address of the HTTP control API; `None` disables it.
    pub control_listen: Option<String>,
    /// Faults scheduled relative to start; `None` means the default scenario
    /// ([`crate::scenario::default_scenario`]), `Some(vec![])` means none.
    pub scenario: Option<Vec<ScheduledFault>>,
    /// A scenario YAML file (a list of `{at_secs, duration_secs, fault}`); replaces `scenario`.
    pub scenario_file: Option<PathBuf>,
    /// Where [`crate::run`] writes Prometheus file_sd JSON for all targets (rewritten atomically).
    pub file_sd_path: Option<PathBuf>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            clusters: 3,
            pods_per_workload: 2,
            extra_namespaces: 0,
            envoy_upstream_series: 0,
            rate_scale: 1.0,
            edge_rates: BTreeMap::new(),
            record_scrapes: 0,
            listen_host: "127.0.0.1".to_string(),
            gzip: false,
            control_listen: Some("127.0.0.1:0".to_string()),
            scenario: None,
            scenario_file: None,
            file_sd_path: None,
        }
    }
}

impl SimConfig {
    /// Parses a YAML document.
    pub fn from_yaml_str(s: &str) -> Result<Self> {
        let cfg: Self = serde_norway::from_str(s).map_err(|e| SimError::Yaml {
            path: None,
            message: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and parses a YAML file.
    pub fn from_yaml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| SimError::Io {
            context: format!("reading {}", path.display()),
            source,
        })?;
        let cfg: Self = serde_norway::from_str(&text).map_err(|e| SimError::Yaml {
            path: Some(path.to_path_buf()),
            message: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The default configuration with no scheduled faults (what most tests want).
    pub fn quiet() -> Self {
        Self {
            scenario: Some(Vec::new()),
            ..Self::default()
        }
    }

    /// Checks ranges that would otherwise produce an empty or nonsensical mesh.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(SimError::Config(m.to_string()));
        if self.clusters == 0 || self.clusters > 64 {
            return bad("clusters must be between 1 and 64");
        }
        if self.pods_per_workload == 0 || self.pods_per_workload > 1000 {
            return bad("pods_per_workload must be between 1 and 1000");
        }
        if self.envoy_upstream_series > 100_000 {
            return bad("envoy_upstream_series must be at most 100000");
        }
        if !(self.rate_scale.is_finite() && self.rate_scale >= 0.0) {
            return bad("rate_scale must be a finite number >= 0");
        }
        if let Some((k, _)) = self
            .edge_rates
            .iter()
            .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
        {
            return Err(SimError::Config(format!(
                "edge_rates[{k}] must be a finite number >= 0"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_example_parses() {
        let doc = include_str!("config.rs");
        let yaml: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```yaml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| {
                format!(
                    "{}\n",
                    l.trim_start_matches("//!").strip_prefix(' ').unwrap_or("")
                )
            })
            .collect();
        let cfg = SimConfig::from_yaml_str(&yaml).expect("example parses");
        assert_eq!(cfg.scenario.as_ref().map(Vec::len), Some(1));
        assert_eq!(cfg.edge_rates.get("frontend->web-api"), Some(&40.0));
    }

    #[test]
    fn yaml_round_trip_and_defaults() {
        let cfg = SimConfig::from_yaml_str("seed: 7\nclusters: 2\nedge_rates: {\"frontend->web-api\": 5}\n")
            .expect("valid yaml");
        assert_eq!(cfg.seed, 7);
        assert_eq!(cfg.clusters, 2);
        assert_eq!(cfg.pods_per_workload, 2);
        assert_eq!(cfg.edge_rates.get("frontend->web-api"), Some(&5.0));
        assert!(SimConfig::from_yaml_str("clusterz: 2").is_err());
        assert!(SimConfig::from_yaml_str("clusters: 0").is_err());
    }
}
