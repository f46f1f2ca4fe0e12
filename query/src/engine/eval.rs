//! The evaluator: walks the AST and produces step-major values over its grid.

use std::time::{Instant, SystemTime};

use meshfed_model::Sample;
use meshfed_store::Store;
use promql_parser::parser::{AtModifier, Expr, Offset, SubqueryExpr};

use super::{EngineOptions, QueryState};
use crate::error::{QueryError, Result};
use crate::functions;
use crate::value::{RangeSeries, Val};

/// Evaluates expressions over the grid `start, start+step, …, end`.
pub(crate) struct Evaluator<'a> {
    pub store: &'a Store,
    pub opts: &'a EngineOptions,
    pub state: &'a QueryState,
    pub start: i64,
    pub step: i64,
    pub steps: usize,
    /// Reused sample buffer for series reads.
    pub buf: Vec<Sample>,
}

impl<'a> Evaluator<'a> {
    pub fn new(
        store: &'a Store,
        opts: &'a EngineOptions,
        state: &'a QueryState,
        start: i64,
        end: i64,
        step: i64,
    ) -> Self {
        let step = step.max(1);
        let steps = if end < start {
            0
        } else {
            ((end - start) / step) as usize + 1
        };
        Self {
            store,
            opts,
            state,
            start,
            step,
            steps,
            buf: Vec::new(),
        }
    }

    /// Timestamp of step `k`.
    pub fn ts(&self, k: usize) -> i64 {
        self.start + k as i64 * self.step
    }

    /// Resolves an `@` modifier to milliseconds.
    pub fn at_ms(&self, at: &Option<AtModifier>) -> Option<i64> {
        match at {
            None => None,
            Some(AtModifier::Start) => Some(self.state.query_start),
            Some(AtModifier::End) => Some(self.state.query_end),
            Some(AtModifier::At(t)) => Some(system_time_ms(*t)),
        }
    }

    /// The time a selector reads at for step `k`.
    pub fn eval_time(&self, k: usize, at: Option<i64>, offset_ms: i64) -> i64 {
        at.unwrap_or_else(|| self.ts(k)) - offset_ms
    }

    pub fn check_deadline(&self) -> Result<()> {
        if Instant::now() > self.state.deadline {
            return Err(QueryError::Timeout("query execution".into()));
        }
        Ok(())
    }

    pub fn count_samples(&self, n: usize) -> Result<()> {
        let total = self.state.samples.get() + n;
        self.state.samples.set(total);
        if total > self.opts.max_samples {
            return Err(QueryError::exec(
                "query processing would load too many samples into memory in query execution",
            ));
        }
        Ok(())
    }

    /// Evaluates `expr` on this evaluator's grid.
    pub fn eval(&mut self, expr: &Expr) -> Result<Val> {
        self.check_deadline()?;
        match expr {
            Expr::NumberLiteral(n) => Ok(Val::Scalar(vec![n.val; self.steps])),
            Expr::StringLiteral(s) => Ok(Val::Str(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr),
            Expr::Unary(u) => match self.eval(&u.expr)? {
                Val::Scalar(mut v) => {
                    v.iter_mut().for_each(|x| *x = -*x);
                    Ok(Val::Scalar(v))
                }
                Val::Vector(mut vs) => {
                    for s in &mut vs {
                        s.drop_name = true;
                        s.vals.iter_mut().flatten().for_each(|x| *x = -*x);
                    }
                    Ok(Val::Vector(vs))
                }
                other => Err(QueryError::bad(format!(
                    "unary expression only allowed on expressions of type scalar or instant vector, got {}",
                    other.type_name()
                ))),
            },
            Expr::VectorSelector(vs) => Ok(Val::Vector(self.eval_vector_selector(vs, false)?)),
            Expr::MatrixSelector(_) | Expr::Subquery(_) => {
                if self.steps != 1 {
                    return Err(QueryError::bad(
                        "range vector is only allowed in an instant query",
                    ));
                }
                self.eval_range_instant(expr).map(Val::Matrix)
            }
            Expr::Binary(b) => self.eval_binary(b),
            Expr::Aggregate(a) => self.eval_aggregate(a),
            Expr::Call(c) => functions::eval_call(self, c),
            Expr::Extension(_) => Err(QueryError::Unsupported("extension expressions".into())),
        }
    }

    /// Evaluates an argument that must be a scalar, one value per step.
    pub fn eval_scalar(&mut self, expr: &Expr) -> Result<Vec<f64>> {
        match self.eval(expr)? {
            Val::Scalar(v) => Ok(v),
            other => Err(QueryError::bad(format!(
                "expected scalar, got {}",
                other.type_name()
            ))),
        }
    }

    /// Evaluates a subquery's inner expression on its own grid. Returns the series (samples at
    /// the inner steps) plus the subquery's range, `@` and offset.
    pub fn eval_subquery(&mut self, sq: &SubqueryExpr) -> Result<(Vec<RangeSeries>, SubqueryWindow)> {
        let offset = offset_ms(&sq.offset);
        let range = duration_ms(&sq.range);
        let step = match sq.step {
            Some(d) if duration_ms(&d) > 0 => duration_ms(&d),
            _ => self.opts.default_subquery_step_ms,
        };
        let at = self.at_ms(&sq.at);
        let window = SubqueryWindow { range, offset, at };
        if self.steps == 0 {
            return Ok((Vec::new(), window));
        }
        let first = self.eval_time(0, at, offset);
        let last = self.eval_time(self.steps - 1, at, offset);
        let lower = first - range;
        // Same alignment as Prometheus (Go's truncating division included).
        let mut inner_start = step * (lower / step);
        if inner_start <= lower {
            inner_start += step;
        }
        if (last - inner_start) / step >= self.opts.max_samples as i64 {
            return Err(QueryError::exec(
                "query processing would load too many samples into memory in subquery evaluation",
            ));
        }
        let mut inner = Evaluator::new(self.store, self.opts, self.state, inner_start, last, step);
        let val = inner.eval(&sq.expr)?;
        let ts = |k: usize| inner_start + k as i64 * step;
        let out = match val {
            Val::Vector(vs) => vs
                .into_iter()
                .map(|s| RangeSeries {
                    samples: s
                        .vals
                        .iter()
                        .enumerate()
                        .filter_map(|(k, v)| v.map(|v| Sample::new(ts(k), v)))
                        .collect(),
                    labels: s.labels,
                    drop_name: s.drop_name,
                })
                .filter(|s| !s.samples.is_empty())
                .collect(),
            Val::Scalar(v) => vec![RangeSeries {
                labels: Default::default(),
                drop_name: false,
                samples: v
                    .iter()
                    .enumerate()
                    .map(|(k, v)| Sample::new(ts(k), *v))
                    .collect(),
            }],
            other => {
                return Err(QueryError::bad(format!(
                    "subquery is only allowed on instant vector, got {} instead",
                    other.type_name()
                )));
            }
        };
        self.count_samples(out.iter().map(|s| s.samples.len()).sum())?;
        Ok((out, window))
    }
}

/// Range, `@` and offset of a subquery, for windowing its materialised samples.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SubqueryWindow {
    pub range: i64,
    pub offset: i64,
    pub at: Option<i64>,
}

/// Every time, duration and `@` value is clamped to ±this (about 3 million years), so that
/// sums of a few of them can never overflow.
pub(crate) const TIME_LIMIT_MS: i64 = 100_000_000_000_000_000;

pub(crate) fn clamp_ms(ms: i64) -> i64 {
    ms.clamp(-TIME_LIMIT_MS, TIME_LIMIT_MS)
}

pub(crate) fn duration_ms(d: &std::time::Duration) -> i64 {
    d.as_millis().min(TIME_LIMIT_MS as u128) as i64
}

pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(d),
        Some(Offset::Neg(d)) => -duration_ms(d),
    }
}

fn system_time_ms(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => duration_ms(&d),
        Err(e) => -duration_ms(&e.duration()),
    }
}
