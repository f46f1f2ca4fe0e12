//! PromQL function calls, dispatched by name.

pub(crate) mod histogram;
mod labels;
pub(crate) mod math;
mod over_time;
pub(crate) mod rate;
pub(crate) mod stats;

use meshfed_model::{Labels, LabelsBuilder, METRIC_NAME, MatchOp};
use promql_parser::parser::{Call, Expr};

use crate::engine::Evaluator;
use crate::engine::{matcher_sets, unwrap_parens as unwrap};
use crate::error::{QueryError, Result};
use crate::value::{StepSeries, Val};

/// Evaluates a function call.
pub(crate) fn eval_call(ev: &mut Evaluator<'_>, c: &Call) -> Result<Val> {
    let name = c.func.name;
    let args: Vec<&Expr> = c.args.args.iter().map(|a| a.as_ref()).collect();
    match name {
        "time" => Ok(Val::Scalar(
            (0..ev.steps).map(|k| ev.ts(k) as f64 / 1000.0).collect(),
        )),
        "start" => Ok(Val::Scalar(vec![ev.state.query_start as f64 / 1000.0; ev.steps])),
        "end" => Ok(Val::Scalar(vec![ev.state.query_end as f64 / 1000.0; ev.steps])),
        "range" => Ok(Val::Scalar(vec![
            (ev.state.query_end - ev.state.query_start)
                as f64
                / 1000.0;
            ev.steps
        ])),
        "step" => Ok(Val::Scalar(vec![ev.state.query_step as f64 / 1000.0; ev.steps])),
        "min_of" | "max_of" => {
            let a = ev.eval_scalar(arg(&args, 0)?)?;
            let b = ev.eval_scalar(arg(&args, 1)?)?;
            let f = if name == "min_of" {
                math::go_min
            } else {
                math::go_max
            };
            Ok(Val::Scalar(a.iter().zip(&b).map(|(x, y)| f(*x, *y)).collect()))
        }
        "pi" => Ok(Val::Scalar(vec![std::f64::consts::PI; ev.steps])),
        "vector" => {
            let v = ev.eval_scalar(arg(&args, 0)?)?;
            let mut s = StepSeries::new(Labels::empty(), false, ev.steps);
            s.vals = v.into_iter().map(Some).collect();
            Ok(Val::Vector(vec![s]))
        }
        "scalar" => {
            let v = vector_arg(ev, arg(&args, 0)?)?;
            Ok(Val::Scalar(
                (0..ev.steps)
                    .map(|k| {
                        let mut it = v.iter().filter_map(|s| s.vals[k]);
                        match (it.next(), it.next()) {
                            (Some(x), None) => x,
                            _ => f64::NAN,
                        }
                    })
                    .collect(),
            ))
        }
        "absent" => {
            let a = arg(&args, 0)?;
            let v = vector_arg(ev, a)?;
            let present: Vec<bool> = (0..ev.steps)
                .map(|k| v.iter().any(|s| s.vals[k].is_some()))
                .collect();
            Ok(Val::Vector(absent_result(ev.steps, &present, absent_labels(a)?)))
        }
        "absent_over_time" => {
            let a = arg(&args, 0)?;
            let v = ev.eval_range_fn(a, false, &mut |w| (!w.samples.is_empty()).then_some(1.0))?;
            let present: Vec<bool> = (0..ev.steps)
                .map(|k| v.iter().any(|s| s.vals[k].is_some()))
                .collect();
            Ok(Val::Vector(absent_result(ev.steps, &present, absent_labels(a)?)))
        }
        "timestamp" => {
            let a = arg(&args, 0)?;
            if let Expr::VectorSelector(vs) = unwrap(a) {
                let mut v = ev.eval_vector_selector(vs, true)?;
                v.iter_mut().for_each(|s| s.drop_name = true);
                return Ok(Val::Vector(v));
            }
            let mut v = vector_arg(ev, a)?;
            for s in &mut v {
                s.drop_name = true;
                for (k, slot) in s.vals.iter_mut().enumerate() {
                    if slot.is_some() {
                        *slot = Some((ev.start + k as i64 * ev.step) as f64 / 1000.0);
                    }
                }
            }
            Ok(Val::Vector(v))
        }
        "histogram_quantile" => histogram::histogram_quantile(ev, &args),
        "label_replace" => labels::label_replace(ev, &args),
        "label_join" => labels::label_join(ev, &args),
        "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc" => labels::sort(ev, name, &args),
        "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_fraction" | "histogram_stddev"
        | "histogram_stdvar" => Err(QueryError::Unsupported(format!(
            "native histogram function {name}()"
        ))),
        _ => {
            if let Some(v) = over_time::eval(ev, name, &args)? {
                return Ok(v);
            }
            if let Some(v) = math::eval(ev, name, &args)? {
                return Ok(v);
            }
            Err(QueryError::Unsupported(format!("function {name}()")))
        }
    }
}

pub(crate) fn arg<'e>(args: &[&'e Expr], i: usize) -> Result<&'e Expr> {
    args.get(i)
        .copied()
        .ok_or_else(|| QueryError::bad(format!("missing argument {i}")))
}

pub(crate) fn vector_arg(ev: &mut Evaluator<'_>, e: &Expr) -> Result<Vec<StepSeries>> {
    match ev.eval(e)? {
        Val::Vector(v) => Ok(v),
        other => Err(QueryError::bad(format!(
            "expected instant vector argument, got {}",
            other.type_name()
        ))),
    }
}

pub(crate) fn string_arg(ev: &mut Evaluator<'_>, e: &Expr) -> Result<String> {
    match ev.eval(e)? {
        Val::Str(s) => Ok(s),
        other => Err(QueryError::bad(format!(
            "expected string argument, got {}",
            other.type_name()
        ))),
    }
}

/// Labels of `absent(x{a="b"})`: the equality matchers, except names matched more than once.
fn absent_labels(e: &Expr) -> Result<Labels> {
    let vs = match unwrap(e) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Ok(Labels::empty()),
    };
    let sets = matcher_sets(vs)?;
    let mut b = LabelsBuilder::new();
    let mut has = std::collections::HashSet::new();
    if let Some(set) = sets.first() {
        for m in set {
            if m.name == METRIC_NAME {
                continue;
            }
            if m.op == MatchOp::Equal && !has.contains(&m.name) {
                b.set(m.name.clone(), m.value.clone());
                has.insert(m.name.clone());
            } else {
                b.del(&m.name);
            }
        }
    }
    Ok(b.build())
}

fn absent_result(steps: usize, present: &[bool], labels: Labels) -> Vec<StepSeries> {
    let mut s = StepSeries::new(labels, false, steps);
    for (slot, &p) in s.vals.iter_mut().zip(present) {
        if !p {
            *slot = Some(1.0);
        }
    }
    if s.is_empty() { Vec::new() } else { vec![s] }
}
