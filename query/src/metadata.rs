//! Metric metadata (`# HELP`, `# TYPE`, `# UNIT` of each scraped family) behind
//! `/api/v1/metadata`.
//!
//! The query crate does not collect metadata itself: the program embedding it (the aggregator,
//! fed by its collectors through the relay) implements [`MetadataSource`] and hands it to the
//! engine with [`crate::Engine::with_metadata`]. Without a source the endpoint answers `{}`.

use serde::Serialize;

/// One distinct metadata entry of a metric family, as Prometheus' API returns it.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct MetricMetadata {
    /// `counter`, `gauge`, `histogram`, `gaugehistogram`, `summary`, `info`, `stateset` or
    /// `unknown`.
    #[serde(rename = "type")]
    pub metric_type: String,
    /// The HELP text, unescaped.
    pub help: String,
    /// The UNIT (OpenMetrics), or empty.
    pub unit: String,
}

/// Where `/api/v1/metadata` reads from.
pub trait MetadataSource: Send + Sync {
    /// The distinct entries of every metric family, or only of `metric` when given, in family
    /// name order. Identical entries reported by several targets or clusters appear once.
    fn metadata(&self, metric: Option<&str>) -> Vec<(String, Vec<MetricMetadata>)>;
}
