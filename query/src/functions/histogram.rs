//! `histogram_quantile` over classic `le` buckets (Prometheus' bucketQuantile).

use std::collections::HashMap;

use meshfed_model::Labels;
use promql_parser::parser::Expr;

use super::{arg, vector_arg};
use crate::engine::Evaluator;
use crate::error::Result;
use crate::value::{StepSeries, Val};

/// Relative tolerance under which neighbouring bucket counts are treated as equal.
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

pub(crate) fn histogram_quantile(ev: &mut Evaluator<'_>, args: &[&Expr]) -> Result<Val> {
    let q = ev.eval_scalar(arg(args, 0)?)?;
    let v = vector_arg(ev, arg(args, 1)?)?;
    // Group bucket series by their labels without `le`.
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<(Labels, Vec<(f64, usize)>)> = Vec::new();
    for (i, s) in v.iter().enumerate() {
        let Some(upper) = s.labels.get("le").and_then(parse_le) else {
            continue;
        };
        let key = s.labels.drop_names(&["le"]);
        let g = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push((upper, i));
    }
    let mut out = Vec::with_capacity(groups.len());
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for (key, members) in groups {
        let mut s = StepSeries::new(key, true, ev.steps);
        for (k, &qk) in q.iter().enumerate().take(ev.steps) {
            buckets.clear();
            buckets.extend(
                members
                    .iter()
                    .filter_map(|&(ub, i)| v[i].vals[k].map(|c| (ub, c))),
            );
            if buckets.is_empty() {
                continue;
            }
            s.vals[k] = Some(bucket_quantile(qk, &mut buckets));
        }
        if !s.is_empty() {
            out.push(s);
        }
    }
    Ok(Val::Vector(out))
}

/// Parses an `le` value like Go's `strconv.ParseFloat`.
fn parse_le(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => s.parse::<f64>().ok(),
    }
}

/// The `q` quantile of `(upper_bound, cumulative_count)` buckets.
pub(crate) fn bucket_quantile(q: f64, buckets: &mut Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    coalesce(buckets);
    ensure_monotonic(buckets);
    if buckets.len() < 2 {
        return f64::NAN;
    }
    let observations = buckets[buckets.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let n = buckets.len() - 1;
    let b = buckets[..n].partition_point(|x| x.1 < rank);
    if b == n {
        return buckets[n - 1].0;
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return buckets[0].0;
    }
    let mut start = 0.0;
    let end = buckets[b].0;
    let mut count = buckets[b].1;
    if b > 0 {
        start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

fn coalesce(buckets: &mut Vec<(f64, f64)>) {
    let mut out = 0;
    for i in 1..buckets.len() {
        if buckets[i].0 == buckets[out].0 {
            buckets[out].1 += buckets[i].1;
        } else {
            out += 1;
            buckets[out] = buckets[i];
        }
    }
    buckets.truncate(out + 1);
}

fn ensure_monotonic(buckets: &mut [(f64, f64)]) {
    let mut prev = buckets[0].1;
    for b in buckets.iter_mut().skip(1) {
        let curr = b.1;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, SMALL_DELTA_TOLERANCE) || curr < prev {
            b.1 = prev;
            continue;
        }
        prev = curr;
    }
}

fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    let min_normal = f64::from_bits(0x0010_0000_0000_0000);
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < min_normal {
        return diff < epsilon * min_normal;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}
