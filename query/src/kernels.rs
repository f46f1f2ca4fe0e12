//! The numeric kernels of PromQL functions, for callers that keep their own samples.
//!
//! The aggregator's incrementally maintained service graph computes `rate()` and
//! `histogram_quantile()` without going through a query; using these functions guarantees it
//! computes exactly what the engine computes for the equivalent PromQL.

use meshfed_model::Sample;

use crate::engine::Window;

/// `rate()` of a counter over the range `(range_start_ms, range_end_ms]`, given the non-stale
/// samples inside it in time order: Prometheus' extrapolated rate with counter-reset handling.
/// `None` with fewer than two samples.
pub fn counter_rate(samples: &[Sample], range_start_ms: i64, range_end_ms: i64) -> Option<f64> {
    let w = Window {
        samples,
        range_start: range_start_ms,
        range_end: range_end_ms,
        step_ts: range_end_ms,
        k: 0,
        range_ms: range_end_ms - range_start_ms,
    };
    crate::functions::rate::extrapolated_rate(&w, true, true)
}

/// `histogram_quantile(q, …)` over `(upper_bound, cumulative_count)` buckets (any order; `+Inf`
/// required), with Prometheus' interpolation and monotonicity fix-ups. NaN without data.
pub fn bucket_quantile(q: f64, buckets: &mut Vec<(f64, f64)>) -> f64 {
    crate::functions::histogram::bucket_quantile(q, buckets)
}
