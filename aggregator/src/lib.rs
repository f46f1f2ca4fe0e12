//! The central aggregator: accepts collector relay streams, stores their samples, and serves the
//! Prometheus HTTP API, the cross-cluster service graph and its own telemetry.
//!
//! - [`config`]: listen addresses and limits.
//! - [`ingest`]: the relay sink writing into the store, tracking connected clusters.
//! - [`metadata`]: metric HELP/TYPE/UNIT reported by collectors, for `/api/v1/metadata`.
//! - [`graph`]: the service graph over the stored Istio series.
//! - [`controller`]: the failover and routing controller's loop and its relay hub.
//! - [`http`]: the HTTP router (Prometheus API, graph, metrics, health).
//! - [`server`]: starting and stopping it all.

pub mod config;
pub mod controller;
pub mod graph;
pub mod graph_http;
pub mod health;
pub mod http;
pub mod ingest;
pub mod metadata;
pub mod server;

pub use config::AggregatorConfig;
pub use server::{Aggregator, run};

/// Errors of the aggregator.
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
    /// A listener could not bind.
    #[error("listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Result with the aggregator [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
