//! Range-vector functions: rates, `deriv`, `predict_linear`, `resets`, `changes`,
//! `double_exponential_smoothing` and the `*_over_time` family.

use meshfed_model::Sample;
use promql_parser::parser::Expr;

use super::arg;
use super::rate::{extrapolated_rate, instant_value};
use super::stats::{Mean, kahan_inc, quantile, variance};
use crate::engine::{Evaluator, Window};
use crate::error::{QueryError, Result};
use crate::value::Val;

/// A per-window function producing at most one value.
type RangeFn<'a> = Box<dyn FnMut(&Window<'_>) -> Option<f64> + 'a>;

/// Evaluates `name` if it is a range-vector function; `None` otherwise.
pub(crate) fn eval(ev: &mut Evaluator<'_>, name: &str, args: &[&Expr]) -> Result<Option<Val>> {
    let f: RangeFn<'_> = match name {
        "rate" => Box::new(|w| extrapolated_rate(w, true, true)),
        "increase" => Box::new(|w| extrapolated_rate(w, true, false)),
        "delta" => Box::new(|w| extrapolated_rate(w, false, false)),
        "irate" => Box::new(|w| instant_value(w, true)),
        "idelta" => Box::new(|w| instant_value(w, false)),
        "deriv" => Box::new(|w| {
            (w.samples.len() >= 2).then(|| linear_regression(w.samples, w.samples[0].timestamp_ms).0)
        }),
        "predict_linear" => {
            let d = ev.eval_scalar(arg(args, 1)?)?;
            Box::new(move |w| {
                (w.samples.len() >= 2).then(|| {
                    let (slope, intercept) = linear_regression(w.samples, w.step_ts);
                    slope * d[w.k] + intercept
                })
            })
        }
        "resets" => Box::new(|w| {
            non_empty(w).map(|s| s.windows(2).filter(|p| p[1].value < p[0].value).count() as f64)
        }),
        "changes" => Box::new(|w| {
            non_empty(w).map(|s| {
                s.windows(2)
                    .filter(|p| !(p[1].value == p[0].value || (p[1].value.is_nan() && p[0].value.is_nan())))
                    .count() as f64
            })
        }),
        "avg_over_time" => Box::new(|w| {
            non_empty(w).map(|s| {
                let mut m = Mean::default();
                s.iter().for_each(|p| m.add(p.value));
                m.value()
            })
        }),
        "sum_over_time" => Box::new(|w| {
            non_empty(w).map(|s| {
                let (sum, c) = s
                    .iter()
                    .fold((0.0, 0.0), |(sum, c), p| kahan_inc(p.value, sum, c));
                sum + c
            })
        }),
        "count_over_time" => Box::new(|w| non_empty(w).map(|s| s.len() as f64)),
        "min_over_time" => Box::new(|w| {
            non_empty(w).map(|s| {
                s.iter().fold(
                    f64::NAN,
                    |m, p| if p.value < m || m.is_nan() { p.value } else { m },
                )
            })
        }),
        "max_over_time" => Box::new(|w| {
            non_empty(w).map(|s| {
                s.iter().fold(
                    f64::NAN,
                    |m, p| if p.value > m || m.is_nan() { p.value } else { m },
                )
            })
        }),
        "stdvar_over_time" => Box::new(|w| non_empty(w).map(|s| variance(s.iter().map(|p| p.value)))),
        "stddev_over_time" => Box::new(|w| non_empty(w).map(|s| variance(s.iter().map(|p| p.value)).sqrt())),
        "last_over_time" => Box::new(|w| w.samples.last().map(|p| p.value)),
        "first_over_time" => Box::new(|w| w.samples.first().map(|p| p.value)),
        "present_over_time" => Box::new(|w| non_empty(w).map(|_| 1.0)),
        "ts_of_last_over_time" => Box::new(|w| w.samples.last().map(|p| p.timestamp_ms as f64 / 1000.0)),
        "ts_of_first_over_time" => Box::new(|w| w.samples.first().map(|p| p.timestamp_ms as f64 / 1000.0)),
        "ts_of_max_over_time" => Box::new(|w| ts_of_extreme(w, |a, b| a >= b)),
        "ts_of_min_over_time" => Box::new(|w| ts_of_extreme(w, |a, b| a <= b)),
        "mad_over_time" => {
            let mut scratch = Vec::new();
            Box::new(move |w| {
                let s = non_empty(w)?;
                if s.iter().any(|p| p.value.is_nan()) {
                    return Some(f64::NAN);
                }
                scratch.clear();
                scratch.extend(s.iter().map(|p| p.value));
                let median = quantile(0.5, &mut scratch);
                scratch.clear();
                scratch.extend(s.iter().map(|p| (p.value - median).abs()));
                Some(quantile(0.5, &mut scratch))
            })
        }
        "quantile_over_time" => {
            let q = ev.eval_scalar(arg(args, 0)?)?;
            let mut scratch = Vec::new();
            let f = move |w: &Window<'_>| {
                let s = non_empty(w)?;
                scratch.clear();
                scratch.extend(s.iter().map(|p| p.value));
                Some(quantile(q[w.k], &mut scratch))
            };
            let v = ev.eval_range_fn(arg(args, 1)?, true, &mut { f })?;
            return Ok(Some(Val::Vector(v)));
        }
        "double_exponential_smoothing" | "holt_winters" => {
            let sf = ev.eval_scalar(arg(args, 1)?)?;
            let tf = ev.eval_scalar(arg(args, 2)?)?;
            for k in 0..ev.steps {
                if sf[k] <= 0.0 || sf[k] >= 1.0 {
                    return Err(QueryError::exec(format!(
                        "invalid smoothing factor. Expected: 0 < sf < 1, got: {}",
                        sf[k]
                    )));
                }
                if tf[k] <= 0.0 || tf[k] >= 1.0 {
                    return Err(QueryError::exec(format!(
                        "invalid trend factor. Expected: 0 < tf < 1, got: {}",
                        tf[k]
                    )));
                }
            }
            Box::new(move |w| double_exponential_smoothing(w.samples, sf[w.k], tf[w.k]))
        }
        _ => return Ok(None),
    };
    let keep_name = matches!(name, "last_over_time" | "first_over_time");
    let mut f = f;
    let v = ev.eval_range_fn(arg(args, 0)?, !keep_name, &mut *f)?;
    Ok(Some(Val::Vector(v)))
}

fn non_empty<'s>(w: &Window<'s>) -> Option<&'s [Sample]> {
    (!w.samples.is_empty()).then_some(w.samples)
}

fn ts_of_extreme(w: &Window<'_>, better: fn(f64, f64) -> bool) -> Option<f64> {
    let s = non_empty(w)?;
    let mut best = s[0];
    for p in &s[1..] {
        if better(p.value, best.value) || best.value.is_nan() {
            best = *p;
        }
    }
    Some(best.timestamp_ms as f64 / 1000.0)
}

/// Least-squares fit with x in seconds relative to `intercept_ms` (Prometheus' linearRegression).
pub(crate) fn linear_regression(s: &[Sample], intercept_ms: i64) -> (f64, f64) {
    let (mut n, mut sum_x, mut cx, mut sum_y, mut cy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sum_xy, mut cxy, mut sum_x2, mut cx2) = (0.0, 0.0, 0.0, 0.0);
    let init_y = s[0].value;
    let mut const_y = true;
    for (i, p) in s.iter().enumerate() {
        if const_y && i > 0 && p.value != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (p.timestamp_ms - intercept_ms) as f64 / 1e3;
        (sum_x, cx) = kahan_inc(x, sum_x, cx);
        (sum_y, cy) = kahan_inc(p.value, sum_y, cy);
        (sum_xy, cxy) = kahan_inc(x * p.value, sum_xy, cxy);
        (sum_x2, cx2) = kahan_inc(x * x, sum_x2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    sum_x += cx;
    sum_y += cy;
    sum_xy += cxy;
    sum_x2 += cx2;
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    (slope, sum_y / n - slope * sum_x / n)
}

fn double_exponential_smoothing(s: &[Sample], sf: f64, tf: f64) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let (mut s0, mut s1) = (0.0, s[0].value);
    let mut b = s[1].value - s[0].value;
    for (i, p) in s.iter().enumerate().skip(1) {
        let x = sf * p.value;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        (s0, s1) = (s1, x + y);
    }
    Some(s1)
}
