//! The relay: the one link between each cluster's collector and the central aggregator.
//!
//! The collector always dials out and opens one bidirectional gRPC stream
//! (`meshfed.relay.v1.Relay/Session`). Upstream it sends a [`proto::Hello`] and then
//! [`proto::SampleBatch`]es, which define each series once per stream and then name it by a
//! stream-local ref. Downstream the aggregator acknowledges stored batches.
//!
//! - [`encode`]: the collector-side series dictionary that turns samples into batches.
//! - [`decode`]: the aggregator-side validation and ref resolution of batches.
//! - [`client`]: the collector's connection loop with reconnect and backoff.
//! - [`server`]: the aggregator's gRPC service, handing decoded samples to an [`server::Ingest`].

pub mod buffer;
pub mod client;
pub mod client_metrics;
pub mod columns;
pub mod decode;
pub mod encode;
pub mod error;
pub mod prompb;
pub mod server;
pub mod tls;

/// Generated protobuf and gRPC code for `meshfed.relay.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("meshfed.relay.v1");
}

pub use error::{Error, Result};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The label the aggregator stamps on every series with the sending collector's cluster.
pub const CLUSTER_LABEL: &str = "cluster";
