//! What the health model consumes from the edge table: per-service increments of requests,
//! errors and latency buckets since the last evaluation, taken from the same primary-reporter
//! series as the graph.

use std::collections::HashMap;

use crate::graph::istio::ServiceKey;
use crate::graph::stats::EdgeStats;

/// Increments per service since the previous [`crate::graph::table::EdgeTable::take_health_inputs`].
#[derive(Debug, Default)]
pub struct HealthInputs {
    /// Per destination service (in the destination's cluster).
    pub services: HashMap<ServiceKey, ServiceIncrements>,
}

/// Increments of one service; `stats` holds counts (not rates) in the same shape as an edge's.
#[derive(Clone, Debug, Default)]
pub struct ServiceIncrements {
    /// Requests, errors and latency bucket counts added since the last evaluation.
    pub stats: EdgeStats,
    /// Newest sample timestamp seen, ms.
    pub newest_ms: i64,
}
