//! Element-wise functions: math, trigonometry, `clamp*`, `round` and the calendar functions.

use promql_parser::parser::Expr;

use super::{arg, vector_arg};
use crate::engine::Evaluator;
use crate::error::Result;
use crate::value::{StepSeries, Val};

/// Evaluates `name` if it is an element-wise function; `None` otherwise.
pub(crate) fn eval(ev: &mut Evaluator<'_>, name: &str, args: &[&Expr]) -> Result<Option<Val>> {
    if let Some(f) = simple(name) {
        let v = vector_arg(ev, arg(args, 0)?)?;
        return Ok(Some(Val::Vector(map(v, |x, _| Some(f(x))))));
    }
    if let Some(f) = calendar(name) {
        let v = match args.first() {
            Some(a) => vector_arg(ev, a)?,
            None => {
                let mut s = StepSeries::new(Default::default(), false, ev.steps);
                s.vals = (0..ev.steps).map(|k| Some(ev.ts(k) as f64 / 1000.0)).collect();
                vec![s]
            }
        };
        return Ok(Some(Val::Vector(map(v, |x, _| {
            if x.is_nan() || x.is_infinite() {
                None
            } else {
                Some(f(x.floor() as i64))
            }
        }))));
    }
    let v = match name {
        "clamp" => {
            let v = vector_arg(ev, arg(args, 0)?)?;
            let lo = ev.eval_scalar(arg(args, 1)?)?;
            let hi = ev.eval_scalar(arg(args, 2)?)?;
            map(v, |x, k| {
                // Empty only when max < min; NaN bounds propagate NaN, as in Prometheus.
                (hi[k] >= lo[k] || hi[k].is_nan() || lo[k].is_nan()).then(|| go_max(lo[k], go_min(hi[k], x)))
            })
        }
        "clamp_min" => {
            let v = vector_arg(ev, arg(args, 0)?)?;
            let lo = ev.eval_scalar(arg(args, 1)?)?;
            map(v, |x, k| Some(go_max(lo[k], x)))
        }
        "clamp_max" => {
            let v = vector_arg(ev, arg(args, 0)?)?;
            let hi = ev.eval_scalar(arg(args, 1)?)?;
            map(v, |x, k| Some(go_min(hi[k], x)))
        }
        "round" => {
            let v = vector_arg(ev, arg(args, 0)?)?;
            let to = match args.get(1) {
                Some(a) => ev.eval_scalar(a)?,
                None => vec![1.0; ev.steps],
            };
            map(v, |x, k| {
                let inv = 1.0 / to[k];
                Some((x * inv + 0.5).floor() / inv)
            })
        }
        _ => return Ok(None),
    };
    Ok(Some(Val::Vector(v)))
}

/// Applies `f(value, step)` to every present value and marks the series for name removal.
fn map(mut v: Vec<StepSeries>, f: impl Fn(f64, usize) -> Option<f64>) -> Vec<StepSeries> {
    for s in &mut v {
        s.drop_name = true;
        for (k, slot) in s.vals.iter_mut().enumerate() {
            if let Some(x) = *slot {
                *slot = f(x, k);
            }
        }
    }
    v.retain(|s| !s.is_empty());
    v
}

/// Go's `math.Max`: NaN wins.
pub(crate) fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Go's `math.Min`: NaN wins.
pub(crate) fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

fn simple(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => |x| x * 180.0 / std::f64::consts::PI,
        "rad" => |x| x * std::f64::consts::PI / 180.0,
        "sgn" => |x| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                x
            }
        },
        _ => return None,
    })
}

fn calendar(name: &str) -> Option<fn(i64) -> f64> {
    Some(match name {
        "minute" => |t| (t.rem_euclid(3600) / 60) as f64,
        "hour" => |t| (t.rem_euclid(86400) / 3600) as f64,
        "day_of_week" => |t| (t.div_euclid(86400) + 4).rem_euclid(7) as f64,
        "day_of_month" => |t| civil(t.div_euclid(86400)).2 as f64,
        "month" => |t| civil(t.div_euclid(86400)).1 as f64,
        "year" => |t| civil(t.div_euclid(86400)).0 as f64,
        "day_of_year" => |t| {
            let days = t.div_euclid(86400);
            let (y, _, _) = civil(days);
            (days - days_from_civil(y, 1, 1) + 1) as f64
        },
        "days_in_month" => |t| {
            let (y, m, _) = civil(t.div_euclid(86400));
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            match m {
                2 if leap => 29.0,
                2 => 28.0,
                4 | 6 | 9 | 11 => 30.0,
                _ => 31.0,
            }
        },
        _ => return None,
    })
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
pub(crate) fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
