//! Aggregation operators with `by`/`without`, evaluated per group per step.

use std::collections::HashMap;

use meshfed_model::{Labels, METRIC_NAME};
use promql_parser::parser::token;
use promql_parser::parser::{AggregateExpr, LabelModifier};

use super::Evaluator;
use crate::error::{QueryError, Result};
use crate::functions::stats::{Mean, kahan_inc, quantile};
use crate::value::{StepSeries, Val};

impl Evaluator<'_> {
    pub fn eval_aggregate(&mut self, a: &AggregateExpr) -> Result<Val> {
        if let Some(v) = self.try_fused_aggregate(a)? {
            return Ok(v);
        }
        let op = a.op.id();
        let mut scalar_param = None;
        let mut string_param = None;
        if let Some(p) = &a.param {
            match self.eval(p)? {
                Val::Scalar(v) => scalar_param = Some(v),
                Val::Str(s) => string_param = Some(s),
                other => {
                    return Err(QueryError::bad(format!(
                        "unexpected parameter type {}",
                        other.type_name()
                    )));
                }
            }
        }
        let input = match self.eval(&a.expr)? {
            Val::Vector(v) => v,
            other => {
                return Err(QueryError::bad(format!(
                    "expected type instant vector in aggregation expression, got {}",
                    other.type_name()
                )));
            }
        };
        let (by, names): (bool, Vec<String>) = match &a.modifier {
            None => (true, Vec::new()),
            Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
            Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
        };
        let key_of = |l: &Labels| -> Labels {
            if by {
                l.keep(&names)
            } else {
                let mut drop: Vec<&str> = names.iter().map(String::as_str).collect();
                drop.push(METRIC_NAME);
                l.drop_names(&drop)
            }
        };
        let mut group_index: HashMap<Labels, usize> = HashMap::new();
        let mut groups: Vec<(Labels, Vec<usize>)> = Vec::new();
        for (i, s) in input.iter().enumerate() {
            let key = key_of(&s.labels);
            let g = *group_index.entry(key.clone()).or_insert_with(|| {
                groups.push((key, Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push(i);
        }
        let steps = self.steps;
        match op {
            token::T_TOPK | token::T_BOTTOMK | token::T_LIMITK => {
                let k_param = scalar_param.ok_or_else(|| QueryError::bad("missing parameter"))?;
                return Ok(Val::Vector(select_k(op, &input, &groups, &k_param, steps)?));
            }
            token::T_COUNT_VALUES => {
                let label = string_param.ok_or_else(|| QueryError::bad("missing parameter"))?;
                return Ok(Val::Vector(count_values(&label, &input, &groups, steps)?));
            }
            token::T_LIMIT_RATIO => {
                let ratio = scalar_param.ok_or_else(|| QueryError::bad("missing parameter"))?;
                return Ok(Val::Vector(super::ratio::limit_ratio(&input, &ratio, steps)));
            }
            _ => {}
        }
        let mut out = Vec::with_capacity(groups.len());
        let mut scratch: Vec<f64> = Vec::new();
        for (key, members) in &groups {
            let drop_name = key.get(METRIC_NAME).is_some() && members.iter().any(|&i| input[i].drop_name);
            let mut s = StepSeries::new(key.clone(), drop_name, steps);
            for k in 0..steps {
                scratch.clear();
                scratch.extend(members.iter().filter_map(|&i| input[i].vals[k]));
                if scratch.is_empty() {
                    continue;
                }
                let q = scalar_param.as_ref().map(|p| p[k]).unwrap_or(f64::NAN);
                s.vals[k] = Some(aggregate(op, &mut scratch, q)?);
            }
            if !s.is_empty() {
                out.push(s);
            }
        }
        Ok(Val::Vector(out))
    }
}

/// One group's value at one step for the simple aggregations.
fn aggregate(op: token::TokenId, vals: &mut [f64], q: f64) -> Result<f64> {
    let n = vals.len() as f64;
    Ok(match op {
        token::T_SUM => {
            let (mut sum, mut c) = (0.0, 0.0);
            for &v in vals.iter() {
                (sum, c) = kahan_inc(v, sum, c);
            }
            sum + c
        }
        token::T_AVG => {
            let mut m = Mean::default();
            vals.iter().for_each(|&v| m.add(v));
            m.value()
        }
        token::T_COUNT => n,
        token::T_GROUP => 1.0,
        token::T_MIN => vals
            .iter()
            .fold(f64::NAN, |acc, &v| if acc > v || acc.is_nan() { v } else { acc }),
        token::T_MAX => vals
            .iter()
            .fold(f64::NAN, |acc, &v| if acc < v || acc.is_nan() { v } else { acc }),
        token::T_STDDEV | token::T_STDVAR => {
            let (mut count, mut mean, mut sq) = (0.0, 0.0, 0.0);
            for &v in vals.iter() {
                count += 1.0;
                let delta = v - mean;
                mean += delta / count;
                sq += delta * (v - mean);
            }
            let var = sq / count;
            if op == token::T_STDDEV { var.sqrt() } else { var }
        }
        token::T_QUANTILE => quantile(q, vals),
        _ => return Err(QueryError::Unsupported(format!("aggregation {}", token_name(op)))),
    })
}

fn token_name(op: token::TokenId) -> String {
    token::TokenType::new(op).to_string()
}

fn select_k(
    op: token::TokenId,
    input: &[StepSeries],
    groups: &[(Labels, Vec<usize>)],
    k_param: &[f64],
    steps: usize,
) -> Result<Vec<StepSeries>> {
    let mut out: Vec<StepSeries> = Vec::new();
    let mut out_of: HashMap<usize, usize> = HashMap::new();
    let mut scratch: Vec<(f64, usize)> = Vec::new();
    for (step, &kf) in k_param.iter().enumerate().take(steps) {
        if kf.is_nan() {
            return Err(QueryError::exec("Parameter value is NaN"));
        }
        let k = if kf >= usize::MAX as f64 {
            usize::MAX
        } else if kf < 1.0 {
            0
        } else {
            kf as usize
        };
        if k == 0 {
            continue;
        }
        for (_, members) in groups {
            scratch.clear();
            scratch.extend(
                members
                    .iter()
                    .filter_map(|&i| input[i].vals[step].map(|v| (v, i))),
            );
            match op {
                token::T_TOPK => scratch.sort_by(|a, b| cmp_nan_low(b.0, a.0)),
                token::T_BOTTOMK => scratch.sort_by(|a, b| cmp_nan_high(a.0, b.0)),
                _ => {}
            }
            for &(v, i) in scratch.iter().take(k) {
                let o = *out_of.entry(i).or_insert_with(|| {
                    out.push(StepSeries::new(
                        input[i].labels.clone(),
                        input[i].drop_name,
                        steps,
                    ));
                    out.len() - 1
                });
                out[o].vals[step] = Some(v);
            }
        }
    }
    Ok(out)
}

/// Orders with NaN below every number (so `topk` puts NaN last).
fn cmp_nan_low(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal),
    }
}

/// Orders with NaN above every number (so `bottomk` puts NaN last).
fn cmp_nan_high(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal),
    }
}

fn count_values(
    label: &str,
    input: &[StepSeries],
    groups: &[(Labels, Vec<usize>)],
    steps: usize,
) -> Result<Vec<StepSeries>> {
    if label.is_empty() {
        return Err(QueryError::exec(format!("invalid label name {label:?}")));
    }
    let mut out: Vec<StepSeries> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for step in 0..steps {
        for (key, members) in groups {
            for &i in members {
                let Some(v) = input[i].vals[step] else { continue };
                let mut b = key.to_builder();
                b.set(label, crate::value::format_float(v));
                let labels = b.build();
                let o = *index.entry(labels.clone()).or_insert_with(|| {
                    out.push(StepSeries::new(labels, false, steps));
                    out.len() - 1
                });
                let slot = &mut out[o].vals[step];
                *slot = Some(slot.unwrap_or(0.0) + 1.0);
            }
        }
    }
    Ok(out)
}
