//! What the health model consumes from the edge table: per-service increments of requests,
//! errors and latency buckets since the last evaluation, taken from the same primary-reporter
//! series as the graph.

use std::collections::HashMap;

use crate::graph::istio::{Measure, ServiceKey};
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

impl ServiceIncrements {
    /// Adds a counter increment of a primary series.
    pub(crate) fn add(&mut self, measure: Measure, inc: f64, t: i64) {
        self.newest_ms = self.newest_ms.max(t);
        let s = &mut self.stats;
        match measure {
            Measure::Requests { class, error } => {
                s.requests += inc;
                s.by_class[class as usize] += inc;
                if error {
                    s.errors += inc;
                }
            }
            Measure::DurationBucket { le } => s.add_bucket(le, inc),
            Measure::DurationSum => s.duration_sum_ms += inc,
            _ => {}
        }
    }
}
