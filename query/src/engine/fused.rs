//! Fused `sum|avg|count|min|max [by|without (…)] (rate|increase|delta|irate|idelta(sel[r]))`:
//! the dashboards' mesh-wide panels. Each selected series is read, its per-step values computed
//! into a reused buffer and added straight into its group's accumulators, so no per-series
//! [`StepSeries`] or group-key [`Labels`] is built (a group's key is found by hashing the grouping
//! labels' bytes and checked label by label). Series are taken in batches that two threads read
//! and evaluate (taking pieces of 32 series as they go), then accumulated in selection order on
//! the calling thread, so every group sees its values in the order the unfused path adds them
//! and the results are bit-for-bit the same.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hasher};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use meshfed_model::{Labels, METRIC_NAME, Sample, is_stale_nan};
use meshfed_store::{SeriesHandle, Store};
use promql_parser::parser::token::{self, TokenId};
use promql_parser::parser::{AggregateExpr, Expr, LabelModifier};

use super::Evaluator;
use super::eval::{duration_ms, offset_ms};
use super::selector::{Window, for_each_window, unwrap_parens};
use crate::error::{QueryError, Result};
use crate::functions::rate::{extrapolated_rate, instant_value};
use crate::functions::stats::{Mean, kahan_inc};
use crate::value::{StepSeries, Val};

/// Series per batch: enough to amortise the two threads' start, few enough to keep the batch's
/// per-step values (series × steps) small.
const BATCH: usize = 512;
/// Below this many series the work stays on the calling thread.
const PARALLEL_MIN: usize = 256;
/// Series the two threads take at a time.
const PIECE: usize = 32;

/// The range-vector functions this path evaluates.
#[derive(Clone, Copy)]
enum Kernel {
    Rate,
    Increase,
    Delta,
    Irate,
    Idelta,
}

impl Kernel {
    fn of(name: &str) -> Option<Self> {
        Some(match name {
            "rate" => Self::Rate,
            "increase" => Self::Increase,
            "delta" => Self::Delta,
            "irate" => Self::Irate,
            "idelta" => Self::Idelta,
            _ => return None,
        })
    }

    fn apply(self, w: &Window<'_>) -> Option<f64> {
        match self {
            Self::Rate => extrapolated_rate(w, true, true),
            Self::Increase => extrapolated_rate(w, true, false),
            Self::Delta => extrapolated_rate(w, false, false),
            Self::Irate => instant_value(w, true),
            Self::Idelta => instant_value(w, false),
        }
    }
}

/// Where and how one query reads a matrix selector's series.
#[derive(Clone, Copy)]
struct Plan {
    kernel: Kernel,
    mint: i64,
    maxt: i64,
    range: i64,
    /// Evaluation time of step 0 (offset and `@` applied) and the step between evaluations
    /// (0 under `@`).
    first: i64,
    step_eval: i64,
    /// The grid's own timestamps, for [`Window::step_ts`].
    start: i64,
    step: i64,
    steps: usize,
    deadline: Instant,
}

impl Plan {
    /// Reads `h` and writes its value at every step into `out` (`steps` slots); returns how many
    /// steps have a value.
    fn eval_series(
        &self,
        store: &Store,
        h: &SeriesHandle,
        buf: &mut Vec<Sample>,
        out: &mut [Option<f64>],
    ) -> usize {
        store.read_samples(h.series, self.mint, self.maxt, buf);
        buf.retain(|p| !is_stale_nan(p.value));
        let mut points = 0;
        for_each_window(
            buf,
            self.range,
            out.len(),
            |k| self.first + k as i64 * self.step_eval,
            |k| self.start + k as i64 * self.step,
            |w| {
                out[w.k] = self.kernel.apply(w);
                points += usize::from(out[w.k].is_some());
            },
        );
        points
    }

    /// Evaluates `handles` into `vals` (`steps` slots per series) and `points` (per series).
    fn eval_batch(
        &self,
        store: &Store,
        handles: &[SeriesHandle],
        vals: &mut [Option<f64>],
        points: &mut [usize],
    ) -> Result<()> {
        let mut buf = Vec::new();
        for ((h, out), n) in handles.iter().zip(vals.chunks_mut(self.steps)).zip(points) {
            if Instant::now() > self.deadline {
                return Err(QueryError::Timeout("query execution".into()));
            }
            *n = self.eval_series(store, h, &mut buf, out);
        }
        Ok(())
    }
}

/// One group's running aggregate at one step.
#[derive(Default)]
struct Acc {
    n: usize,
    sum: f64,
    c: f64,
    /// Running min/max (NaN until a number is seen, as the unfused fold).
    ext: f64,
    mean: Mean,
}

impl Acc {
    fn add(&mut self, op: TokenId, v: f64) {
        if self.n == 0 {
            self.ext = f64::NAN;
        }
        self.n += 1;
        match op {
            token::T_SUM => (self.sum, self.c) = kahan_inc(v, self.sum, self.c),
            token::T_AVG => self.mean.add(v),
            token::T_MIN if self.ext > v || self.ext.is_nan() => self.ext = v,
            token::T_MAX if self.ext < v || self.ext.is_nan() => self.ext = v,
            _ => {}
        }
    }

    fn value(&self, op: TokenId) -> Option<f64> {
        (self.n > 0).then(|| match op {
            token::T_SUM => self.sum + self.c,
            token::T_AVG => self.mean.value(),
            token::T_COUNT => self.n as f64,
            _ => self.ext,
        })
    }
}

/// The grouping of `by (…)` / `without (…)`: which labels form a group's key.
struct Grouping {
    by: bool,
    names: Vec<String>,
}

impl Grouping {
    fn in_key(&self, name: &str) -> bool {
        let listed = self.names.iter().any(|n| n == name);
        if self.by {
            listed
        } else {
            !listed && name != METRIC_NAME
        }
    }

    fn hash(&self, l: &Labels) -> u64 {
        let mut h = DefaultHasher::new();
        for x in l.iter().filter(|x| self.in_key(&x.name)) {
            h.write(x.name.as_bytes());
            h.write_u8(0xff);
            h.write(x.value.as_bytes());
            h.write_u8(0xff);
        }
        h.finish()
    }

    fn matches(&self, key: &Labels, l: &Labels) -> bool {
        let mut it = l.iter().filter(|x| self.in_key(&x.name));
        key.iter()
            .all(|k| it.next().is_some_and(|x| x.name == k.name && x.value == k.value))
            && it.next().is_none()
    }

    fn key(&self, l: &Labels) -> Labels {
        if self.by {
            l.keep(&self.names)
        } else {
            let mut drop: Vec<&str> = self.names.iter().map(String::as_str).collect();
            drop.push(METRIC_NAME);
            l.drop_names(&drop)
        }
    }
}

impl Evaluator<'_> {
    /// Evaluates `a` on the fused path when it has that shape; `None` otherwise.
    pub(crate) fn try_fused_aggregate(&mut self, a: &AggregateExpr) -> Result<Option<Val>> {
        let op = a.op.id();
        if a.param.is_some()
            || self.steps == 0
            || !matches!(
                op,
                token::T_SUM | token::T_AVG | token::T_COUNT | token::T_MIN | token::T_MAX
            )
        {
            return Ok(None);
        }
        let Expr::Call(call) = unwrap_parens(&a.expr) else {
            return Ok(None);
        };
        let Some(kernel) = Kernel::of(call.func.name) else {
            return Ok(None);
        };
        let [arg] = call.args.args.as_slice() else {
            return Ok(None);
        };
        let Expr::MatrixSelector(ms) = unwrap_parens(arg) else {
            return Ok(None);
        };
        let vs = &ms.vs;
        let range = duration_ms(&ms.range);
        let at = self.at_ms(&vs.at);
        let off = offset_ms(&vs.offset);
        let first = self.eval_time(0, at, off);
        let plan = Plan {
            kernel,
            mint: first - range + 1,
            maxt: self.eval_time(self.steps - 1, at, off),
            range,
            first,
            step_eval: if at.is_some() { 0 } else { self.step },
            start: self.start,
            step: self.step,
            steps: self.steps,
            deadline: self.state.deadline,
        };
        let grouping = match &a.modifier {
            None => Grouping {
                by: true,
                names: Vec::new(),
            },
            Some(LabelModifier::Include(l)) => Grouping {
                by: true,
                names: l.labels.clone(),
            },
            Some(LabelModifier::Exclude(l)) => Grouping {
                by: false,
                names: l.labels.clone(),
            },
        };
        let handles = self.select(vs, plan.mint)?;
        let steps = self.steps;
        let mut keys: Vec<Labels> = Vec::new();
        let mut accs: Vec<Vec<Acc>> = Vec::new();
        let mut by_hash: HashMap<u64, Vec<usize>> = HashMap::new();
        let batch_len = handles.len().min(BATCH);
        let mut vals = vec![None; batch_len * steps];
        let mut points = vec![0usize; batch_len];
        for batch in handles.chunks(BATCH) {
            let vals = &mut vals[..batch.len() * steps];
            let points = &mut points[..batch.len()];
            self.eval_batch(&plan, batch, vals, points)?;
            for ((h, v), &n) in batch.iter().zip(vals.chunks(steps)).zip(points.iter()) {
                // As the unfused path: samples held count, series without a value are dropped.
                self.count_samples(n)?;
                if n == 0 {
                    continue;
                }
                let hash = grouping.hash(&h.labels);
                let slot = by_hash.entry(hash).or_default();
                let g = match slot
                    .iter()
                    .copied()
                    .find(|&g| grouping.matches(&keys[g], &h.labels))
                {
                    Some(g) => g,
                    None => {
                        keys.push(grouping.key(&h.labels));
                        accs.push((0..steps).map(|_| Acc::default()).collect());
                        slot.push(keys.len() - 1);
                        keys.len() - 1
                    }
                };
                for (acc, x) in accs[g].iter_mut().zip(v) {
                    if let Some(x) = *x {
                        acc.add(op, x);
                    }
                }
            }
        }
        let out = keys
            .into_iter()
            .zip(accs)
            .map(|(key, acc)| {
                // The range functions drop `__name__`; only `by (__name__)` keeps it in a key.
                let drop_name = key.get(METRIC_NAME).is_some();
                let mut s = StepSeries::new(key, drop_name, steps);
                for (slot, acc) in s.vals.iter_mut().zip(&acc) {
                    *slot = acc.value(op);
                }
                s
            })
            .filter(|s| !s.is_empty())
            .collect();
        Ok(Some(Val::Vector(out)))
    }

    /// Evaluates one batch; when it is large enough, on two threads that take pieces of it as
    /// they go (not halves: when another process holds one core, the other thread does the
    /// rest instead of waiting for it).
    fn eval_batch(
        &self,
        plan: &Plan,
        batch: &[SeriesHandle],
        vals: &mut [Option<f64>],
        points: &mut [usize],
    ) -> Result<()> {
        let store = self.store;
        if batch.len() < PARALLEL_MIN {
            return plan.eval_batch(store, batch, vals, points);
        }
        let pieces = Mutex::new(
            batch
                .chunks(PIECE)
                .zip(vals.chunks_mut(PIECE * plan.steps))
                .zip(points.chunks_mut(PIECE)),
        );
        let work = || -> Result<()> {
            loop {
                // Poisoning only follows a panic, which is re-raised below.
                let next = pieces.lock().unwrap_or_else(PoisonError::into_inner).next();
                let Some(((h, v), p)) = next else { return Ok(()) };
                plan.eval_batch(store, h, v, p)?;
            }
        };
        std::thread::scope(|s| {
            let other = s.spawn(work);
            let mine = work();
            // A panic in the worker is re-raised here, as it would have been on this thread.
            let theirs = other.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
            mine.and(theirs)
        })
    }
}

#[cfg(test)]
mod tests;
