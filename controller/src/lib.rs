//! The pure half of meshfed's failover-and-routing controller.
//!
//! A [`VirtualDestination`] names a global host (`web-api.global`) and the
//! services in several clusters that back it. From it, the clusters' [`Topology`]
//! and the health model's [`HealthView`], this crate
//! - [validates](validate) it with field-precise errors,
//! - [decides](decide::decide) the routing (priority failover, health-driven weights with
//!   hysteresis and cooldown, fail-static on stale or hopeless data) as a pure function of its inputs
//!   and the time,
//! - [renders](render::render) Istio `ServiceEntry`, `WorkloadEntry`, `DestinationRule` and
//!   `VirtualService` objects for exactly the clusters that need them, byte-identical when nothing
//!   changed,
//! - and [writes](gitops::write_snapshot) a cluster's snapshot to a directory for GitOps.
//!
//! [`reconcile::reconcile`] ties these together for a set of resources. Nothing here does I/O except
//! [`gitops`], and nothing reads a clock: time is a plain `i64` of milliseconds.

pub mod crd;
pub mod decide;
pub mod duration;
pub mod files;
pub mod gitops;
pub mod health;
pub mod reconcile;
pub mod render;
pub mod spec;
pub mod status;
pub mod topology;
pub mod validate;

use std::path::PathBuf;

pub use decide::{Decision, decide};
pub use files::{load_dir, parse_resources};
pub use health::{HealthState, HealthView, ServiceHealth};
pub use reconcile::{Inputs, Outcome, reconcile};
pub use render::{IstioObject, Kind, placement, render};
pub use spec::{VirtualDestination, VirtualDestinationSpec, VirtualDestinationStatus};
pub use topology::{Clients, ClusterTopology, Endpoint, Locality, ServiceTopology, Topology};
pub use validate::{validate_set, validate_spec, validate_with_topology};

/// Errors of the controller's effectful edges (file output, parsing resource files).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A resource file is not a valid `VirtualDestination` document.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the YAML parser said.
        message: String,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
