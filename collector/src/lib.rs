//! The per-cluster collector: finds scrape targets, scrapes them, and forwards the samples to the
//! aggregator over the relay.
//!
//! - [`config`]: the YAML configuration.
//! - [`discovery`]: static targets and Prometheus `file_sd` files.
//! - [`scrape`]: one target's scrape: HTTP, parsing through a series cache, target labels, limits,
//!   staleness, synthetic series.
//! - [`relabel`]: `metric_relabel_configs` with Prometheus semantics.
//! - [`reduce`]: edge reduction of per-pod counters and histograms to workload level.
//! - [`manager`]: one loop per target, started and stopped as discovery changes.
//! - [`forward`]: coalesces the loops' samples into larger relay batches.
//! - [`metrics`]: the collector's own telemetry.
//! - [`topology`]: reports the cluster's services, endpoints and gateways to the controller.
//! - [`agent`]: applies the controller's config snapshots (GitOps directory, simulator).
//! - [`run`]: wiring it all together until shutdown.

pub mod agent;
pub mod config;
pub mod discovery;
pub mod forward;
pub mod manager;
pub mod metrics;
pub mod reduce;
pub mod relabel;
pub mod run;
pub mod scrape;
pub mod topology;

pub use config::CollectorConfig;
pub use run::run;

/// Errors of the collector.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration file could not be read or is invalid.
    #[error("config {path}: {reason}")]
    Config {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A discovery file could not be read.
    #[error("target file {path}: {reason}")]
    TargetFile {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The HTTP listener failed.
    #[error("listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Result with the collector [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
