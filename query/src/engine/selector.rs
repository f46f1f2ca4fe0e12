//! Selectors: instant vectors with lookback and staleness, and range windows for range-vector
//! functions. Each series is read once into a reused buffer and walked with moving pointers.

use std::collections::HashSet;

use meshfed_model::{MatchOp, Matcher, Sample, is_stale_nan};
use meshfed_store::SeriesHandle;
use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{Expr, VectorSelector};

use super::Evaluator;
use super::eval::{duration_ms, offset_ms};
use crate::error::{QueryError, Result};
use crate::value::{RangeSeries, StepSeries};

/// Walks `samples` (sorted, stale markers removed) with two moving pointers and hands `f` the
/// window `(e - range, e]` of each step `k < steps`, where `e = eval_time(k)` is non-decreasing.
pub(crate) fn for_each_window(
    samples: &[Sample],
    range: i64,
    steps: usize,
    eval_time: impl Fn(usize) -> i64,
    step_ts: impl Fn(usize) -> i64,
    mut f: impl FnMut(&Window<'_>),
) {
    let (mut lo, mut hi) = (0, 0);
    for k in 0..steps {
        let e = eval_time(k);
        while hi < samples.len() && samples[hi].timestamp_ms <= e {
            hi += 1;
        }
        while lo < samples.len() && samples[lo].timestamp_ms <= e - range {
            lo += 1;
        }
        f(&Window {
            samples: &samples[lo..hi.max(lo)],
            range_start: e - range,
            range_end: e,
            step_ts: step_ts(k),
            k,
            range_ms: range,
        });
    }
}

/// One range window handed to a range-vector function.
pub(crate) struct Window<'s> {
    /// Non-stale samples in `(range_start, range_end]`.
    pub samples: &'s [Sample],
    pub range_start: i64,
    pub range_end: i64,
    /// The step's own timestamp (without offset/@).
    pub step_ts: i64,
    /// Step index, to index per-step scalar arguments.
    pub k: usize,
    pub range_ms: i64,
}

/// Converts a parsed selector into store matcher sets (one per `or` alternative).
pub fn matcher_sets(vs: &VectorSelector) -> Result<Vec<Vec<Matcher>>> {
    let convert = |m: &promql_parser::label::Matcher| -> Result<Matcher> {
        let op = match m.op {
            PMatchOp::Equal => MatchOp::Equal,
            PMatchOp::NotEqual => MatchOp::NotEqual,
            PMatchOp::Re(_) => return super::regex_cache::regex_matcher(MatchOp::Regex, &m.name, &m.value),
            PMatchOp::NotRe(_) => {
                return super::regex_cache::regex_matcher(MatchOp::NotRegex, &m.name, &m.value);
            }
        };
        Matcher::new(op, m.name.clone(), m.value.clone()).map_err(|e| QueryError::bad(e.to_string()))
    };
    let mut base = Vec::new();
    if let Some(name) = &vs.name {
        base.push(Matcher::equal(meshfed_model::METRIC_NAME, name.clone()));
    }
    for m in &vs.matchers.matchers {
        base.push(convert(m)?);
    }
    if vs.matchers.or_matchers.is_empty() {
        return Ok(vec![base]);
    }
    let mut sets = Vec::new();
    for alt in &vs.matchers.or_matchers {
        let mut set = base.clone();
        for m in alt {
            set.push(convert(m)?);
        }
        sets.push(set);
    }
    Ok(sets)
}

impl Evaluator<'_> {
    /// Series matching the selector that may have samples in the range starting at `mint`, sorted by labels:
    /// every series with data at or after `mint`. The store is asked for `[mint, +inf)` rather
    /// than the query's `[mint, maxt]` because its exact check decodes a whole chunk whenever the range lies
    /// inside one (a block chunk holds up to 480 samples, so a dashboard's hour always does),
    /// which made selection cost as much as reading. The open-ended check only looks at chunk
    /// bounds and still drops series that ended before the range (churned pods in a long
    /// retention); a series that begins after `maxt` (only for queries in the past) is read
    /// and, having no sample in range, dropped by the caller, as every caller drops empty
    /// series.
    pub fn select(&self, vs: &VectorSelector, mint: i64) -> Result<Vec<SeriesHandle>> {
        let sets = matcher_sets(vs)?;
        if sets.len() == 1 {
            return Ok(self.store.select(&sets[0], mint, i64::MAX));
        }
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for set in &sets {
            for h in self.store.select(set, mint, i64::MAX) {
                if seen.insert(h.series) {
                    out.push(h);
                }
            }
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    /// Instant vector selector: the newest sample within the lookback window at each step,
    /// unless that sample is a staleness marker. With `timestamps`, yields sample times (s).
    pub fn eval_vector_selector(&mut self, vs: &VectorSelector, timestamps: bool) -> Result<Vec<StepSeries>> {
        if self.steps == 0 {
            return Ok(Vec::new());
        }
        let at = self.at_ms(&vs.at);
        let off = offset_ms(&vs.offset);
        let lookback = self.opts.lookback_ms;
        let first = self.eval_time(0, at, off);
        let last = self.eval_time(self.steps - 1, at, off);
        let (mint, maxt) = (first - lookback + 1, last);
        let handles = self.select(vs, mint)?;
        let mut buf = std::mem::take(&mut self.buf);
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            self.check_deadline()?;
            self.store.read_samples(h.series, mint, maxt, &mut buf);
            let mut s = StepSeries::new(h.labels, false, self.steps);
            let mut hi = 0;
            for k in 0..self.steps {
                let e = self.eval_time(k, at, off);
                while hi < buf.len() && buf[hi].timestamp_ms <= e {
                    hi += 1;
                }
                if hi > 0 {
                    let p = buf[hi - 1];
                    if p.timestamp_ms > e - lookback && !is_stale_nan(p.value) {
                        s.vals[k] = Some(if timestamps {
                            p.timestamp_ms as f64 / 1000.0
                        } else {
                            p.value
                        });
                    }
                }
            }
            // Like Prometheus, the limit is on samples held (one per step), not on samples read.
            let points = s.vals.iter().filter(|v| v.is_some()).count();
            self.count_samples(points)?;
            if points > 0 {
                out.push(s);
            }
        }
        self.buf = buf;
        Ok(out)
    }

    /// Applies `f` to the window of every series of the range-vector expression `arg` at every
    /// step. `drop_name` marks the output for `__name__` removal.
    pub fn eval_range_fn(
        &mut self,
        arg: &Expr,
        drop_name: bool,
        f: &mut dyn FnMut(&Window<'_>) -> Option<f64>,
    ) -> Result<Vec<StepSeries>> {
        let mut out = Vec::new();
        if self.steps == 0 {
            return Ok(out);
        }
        match unwrap_parens(arg) {
            Expr::MatrixSelector(ms) => {
                let vs = &ms.vs;
                let range = duration_ms(&ms.range);
                let at = self.at_ms(&vs.at);
                let off = offset_ms(&vs.offset);
                let (mint, maxt) = (
                    self.eval_time(0, at, off) - range + 1,
                    self.eval_time(self.steps - 1, at, off),
                );
                let handles = self.select(vs, mint)?;
                let mut buf = std::mem::take(&mut self.buf);
                for h in handles {
                    self.check_deadline()?;
                    self.store.read_samples(h.series, mint, maxt, &mut buf);
                    buf.retain(|p| !is_stale_nan(p.value));
                    let s = self.windows(h.labels, drop_name, &buf, range, at, off, f);
                    self.count_samples(s.vals.iter().filter(|v| v.is_some()).count())?;
                    if !s.is_empty() {
                        out.push(s);
                    }
                }
                self.buf = buf;
            }
            Expr::Subquery(sq) => {
                let (series, w) = self.eval_subquery(sq)?;
                for rs in series {
                    self.check_deadline()?;
                    let s = self.windows(
                        rs.labels,
                        drop_name || rs.drop_name,
                        &rs.samples,
                        w.range,
                        w.at,
                        w.offset,
                        f,
                    );
                    if !s.is_empty() {
                        out.push(s);
                    }
                }
            }
            other => {
                return Err(QueryError::bad(format!(
                    "expected type range vector in call to function, got {}",
                    super::type_display(other.value_type())
                )));
            }
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn windows(
        &self,
        labels: meshfed_model::Labels,
        drop_name: bool,
        samples: &[Sample],
        range: i64,
        at: Option<i64>,
        off: i64,
        f: &mut dyn FnMut(&Window<'_>) -> Option<f64>,
    ) -> StepSeries {
        let mut s = StepSeries::new(labels, drop_name, self.steps);
        for_each_window(
            samples,
            range,
            self.steps,
            |k| self.eval_time(k, at, off),
            |k| self.ts(k),
            |w| s.vals[w.k] = f(w),
        );
        s
    }

    /// A range vector at a single instant (instant query of `x[5m]` or a subquery).
    pub fn eval_range_instant(&mut self, expr: &Expr) -> Result<Vec<RangeSeries>> {
        let mut out = Vec::new();
        match expr {
            Expr::MatrixSelector(ms) => {
                let range = duration_ms(&ms.range);
                let e = self.eval_time(0, self.at_ms(&ms.vs.at), offset_ms(&ms.vs.offset));
                let handles = self.select(&ms.vs, e - range + 1)?;
                for h in handles {
                    let mut samples = Vec::new();
                    self.store.read_samples(h.series, e - range + 1, e, &mut samples);
                    self.count_samples(samples.len())?;
                    samples.retain(|p| !is_stale_nan(p.value));
                    if !samples.is_empty() {
                        out.push(RangeSeries {
                            labels: h.labels,
                            drop_name: false,
                            samples,
                        });
                    }
                }
            }
            Expr::Subquery(sq) => {
                let (series, w) = self.eval_subquery(sq)?;
                let e = self.eval_time(0, w.at, w.offset);
                for mut rs in series {
                    rs.samples = super::window_of(&rs.samples, e - w.range, e).to_vec();
                    if !rs.samples.is_empty() {
                        out.push(rs);
                    }
                }
            }
            _ => return Err(QueryError::bad("expected a range vector")),
        }
        Ok(out)
    }
}

/// Strips parentheses.
pub(crate) fn unwrap_parens(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unwrap_parens(&p.expr),
        other => other,
    }
}
