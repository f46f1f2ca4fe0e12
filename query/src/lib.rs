//! meshfed query: a PromQL engine over the [`meshfed_store::Store`] and the Prometheus HTTP API.
//!
//! [`Engine`] parses PromQL with `promql-parser` and evaluates it with Prometheus 3 semantics
//! (5m lookback, staleness markers, `offset` and `@`, step-aligned range evaluation, delayed
//! `__name__` removal). [`http::router`] serves the subset of the Prometheus HTTP API that
//! Grafana's Prometheus data source uses. [`sql`] runs read-only SQL over the same store through
//! DataFusion (`POST /api/v1/sql`).

pub mod engine;
pub mod error;
mod functions;
pub mod http;
pub mod kernels;
pub mod metadata;
pub mod sql;
pub mod value;

pub use engine::{Engine, EngineOptions};
pub use error::{QueryError, Result};
pub use http::{router, router_with_sql};
pub use metadata::{MetadataSource, MetricMetadata};
pub use sql::{SqlEngine, SqlOptions};
pub use value::{Series, Value};
