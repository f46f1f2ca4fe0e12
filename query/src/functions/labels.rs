//! `label_replace`, `label_join` and the `sort*` functions.

use std::collections::HashMap;

use meshfed_model::{Labels, METRIC_NAME};
use promql_parser::parser::Expr;
use regex::Regex;

use super::{arg, string_arg, vector_arg};
use crate::engine::Evaluator;
use crate::error::{QueryError, Result};
use crate::value::{StepSeries, Val};

pub(crate) fn label_replace(ev: &mut Evaluator<'_>, args: &[&Expr]) -> Result<Val> {
    let v = vector_arg(ev, arg(args, 0)?)?;
    let dst = string_arg(ev, arg(args, 1)?)?;
    let repl = string_arg(ev, arg(args, 2)?)?;
    let src = string_arg(ev, arg(args, 3)?)?;
    let pattern = string_arg(ev, arg(args, 4)?)?;
    let re = Regex::new(&format!("^(?s:{pattern})$")).map_err(|_| {
        QueryError::exec(format!(
            "invalid regular expression in label_replace(): {pattern}"
        ))
    })?;
    if dst.is_empty() {
        return Err(QueryError::exec(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let mut out = Vec::with_capacity(v.len());
    for mut s in v {
        let value = s.labels.get(&src).unwrap_or("");
        if let Some(caps) = re.captures(value) {
            let mut res = String::new();
            caps.expand(&repl, &mut res);
            let mut b = s.labels.to_builder();
            b.set(dst.clone(), res);
            s.labels = b.build();
            if dst == METRIC_NAME {
                s.drop_name = false;
            }
        }
        out.push(s);
    }
    Ok(Val::Vector(merge(out, ev.steps)?))
}

pub(crate) fn label_join(ev: &mut Evaluator<'_>, args: &[&Expr]) -> Result<Val> {
    let v = vector_arg(ev, arg(args, 0)?)?;
    let dst = string_arg(ev, arg(args, 1)?)?;
    let sep = string_arg(ev, arg(args, 2)?)?;
    let mut srcs = Vec::new();
    for a in args.iter().skip(3) {
        srcs.push(string_arg(ev, a)?);
    }
    if dst.is_empty() {
        return Err(QueryError::exec(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    let mut out = Vec::with_capacity(v.len());
    for mut s in v {
        let joined: Vec<&str> = srcs.iter().map(|n| s.labels.get(n).unwrap_or("")).collect();
        let joined = joined.join(&sep);
        let mut b = s.labels.to_builder();
        b.set(dst.clone(), joined);
        s.labels = b.build();
        if dst == METRIC_NAME {
            s.drop_name = false;
        }
        out.push(s);
    }
    Ok(Val::Vector(merge(out, ev.steps)?))
}

/// Merges series whose labels became equal; two values at the same step are an error.
fn merge(series: Vec<StepSeries>, steps: usize) -> Result<Vec<StepSeries>> {
    let mut out: Vec<StepSeries> = Vec::with_capacity(series.len());
    let mut index: HashMap<(Labels, bool), usize> = HashMap::new();
    for s in series {
        let key = (s.labels.clone(), s.drop_name);
        match index.get(&key) {
            None => {
                index.insert(key, out.len());
                out.push(s);
            }
            Some(&i) => {
                for k in 0..steps {
                    if let Some(x) = s.vals[k] {
                        if out[i].vals[k].is_some() {
                            return Err(QueryError::exec(
                                "vector cannot contain metrics with the same labelset",
                            ));
                        }
                        out[i].vals[k] = Some(x);
                    }
                }
            }
        }
    }
    Ok(out)
}

pub(crate) fn sort(ev: &mut Evaluator<'_>, name: &str, args: &[&Expr]) -> Result<Val> {
    let mut v = vector_arg(ev, arg(args, 0)?)?;
    let mut names = Vec::new();
    for a in args.iter().skip(1) {
        names.push(string_arg(ev, a)?);
    }
    // Ordering only means something for an instant result.
    if ev.steps != 1 {
        return Ok(Val::Vector(v));
    }
    let val = |s: &StepSeries| s.vals[0].unwrap_or(f64::NAN);
    match name {
        "sort" => v.sort_by(|a, b| nan_last(val(a), val(b), false)),
        "sort_desc" => v.sort_by(|a, b| nan_last(val(a), val(b), true)),
        _ => {
            let desc = name == "sort_by_label_desc";
            v.sort_by(|a, b| {
                let mut ord = std::cmp::Ordering::Equal;
                for n in &names {
                    ord = natural_cmp(a.labels.get(n).unwrap_or(""), b.labels.get(n).unwrap_or(""));
                    if ord.is_ne() {
                        break;
                    }
                }
                let ord = ord.then_with(|| a.labels.cmp(&b.labels));
                if desc { ord.reverse() } else { ord }
            });
        }
    }
    Ok(Val::Vector(v))
}

fn nan_last(a: f64, b: f64, desc: bool) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Equal,
        (true, false) => Greater,
        (false, true) => Less,
        _ => {
            let o = a.partial_cmp(&b).unwrap_or(Equal);
            if desc { o.reverse() } else { o }
        }
    }
}

/// Natural order: digit runs compare by numeric value (`cpu2` < `cpu10`).
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, _) => return std::cmp::Ordering::Less,
            (_, None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (da, db) = (trim_zeros(&a[..na]), trim_zeros(&b[..nb]));
                let ord = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
                if ord.is_ne() {
                    return ord;
                }
                a = &a[na..];
                b = &b[nb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let n = d.iter().take_while(|&&c| c == b'0').count();
    &d[n.min(d.len().saturating_sub(1))..]
}
