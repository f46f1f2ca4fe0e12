//! The PromQL engine: parses a query, evaluates it over the store on a step grid and converts
//! the intermediate step-major values into a [`Value`].

mod aggregate;
mod binary;
mod eval;
mod fused;
mod ratio;
mod regex_cache;
pub mod selector;

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use meshfed_model::{Labels, Sample};
use meshfed_store::Store;
use promql_parser::parser::{self, Expr};

use crate::error::{QueryError, Result};
use crate::metadata::MetadataSource;
use crate::value::{Series, StepSeries, Val, Value};

pub(crate) use eval::Evaluator;
pub use selector::matcher_sets;
pub(crate) use selector::{Window, unwrap_parens};

/// Engine limits and defaults.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// How far back an instant selector looks for the latest sample (Prometheus: 5m).
    pub lookback_ms: i64,
    /// Wall-clock budget per query.
    pub timeout: Duration,
    /// Most samples a query may load from the store.
    pub max_samples: usize,
    /// Subquery resolution when the query gives none (Prometheus' global evaluation interval).
    pub default_subquery_step_ms: i64,
    /// Most steps a range query may have (Prometheus: 11,000).
    pub max_steps: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            lookback_ms: 5 * 60 * 1000,
            timeout: Duration::from_secs(120),
            max_samples: 50_000_000,
            default_subquery_step_ms: 60 * 1000,
            max_steps: 11_000,
        }
    }
}

/// A PromQL engine over one store. Cheap to share behind an `Arc`.
pub struct Engine {
    store: Arc<Store>,
    options: EngineOptions,
    metadata: Option<Arc<dyn MetadataSource>>,
}

/// Per-query counters shared by nested (subquery) evaluators.
pub(crate) struct QueryState {
    pub deadline: Instant,
    pub samples: Cell<usize>,
    pub query_start: i64,
    pub query_end: i64,
    /// The range query's step (0 for instant queries), for `step()`.
    pub query_step: i64,
}

impl Engine {
    /// An engine reading `store`.
    pub fn new(store: Arc<Store>, options: EngineOptions) -> Self {
        Self {
            store,
            options,
            metadata: None,
        }
    }

    /// Serves metric metadata (`/api/v1/metadata`) from `source`.
    pub fn with_metadata(mut self, source: Arc<dyn MetadataSource>) -> Self {
        self.metadata = Some(source);
        self
    }

    /// The metadata source, if one was given.
    pub fn metadata(&self) -> Option<&Arc<dyn MetadataSource>> {
        self.metadata.as_ref()
    }

    /// The store this engine reads.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The engine's options.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// This engine with its per-query wall-clock budget lowered to `timeout` (the API's
    /// `timeout` parameter: the shorter of the two applies, as in Prometheus).
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        let mut options = self.options.clone();
        options.timeout = options.timeout.min(timeout);
        Self {
            store: Arc::clone(&self.store),
            options,
            metadata: self.metadata.clone(),
        }
    }

    /// Evaluates `query` at `at_ms`.
    pub fn query_instant(&self, query: &str, at_ms: i64) -> Result<Value> {
        let at_ms = eval::clamp_ms(at_ms);
        let expr = parse(query)?;
        let state = self.state(at_ms, at_ms, 0);
        let mut ev = Evaluator::new(&self.store, &self.options, &state, at_ms, at_ms, 1);
        let val = ev.eval(&expr)?;
        match val {
            Val::Scalar(v) => Ok(Value::Scalar {
                timestamp_ms: at_ms,
                value: v[0],
            }),
            Val::Str(s) => Ok(Value::String {
                timestamp_ms: at_ms,
                value: s,
            }),
            Val::Vector(series) => {
                let series = finish_vector(series, 1)?;
                let samples = series
                    .into_iter()
                    .filter_map(|s| s.vals[0].map(|v| (s.labels, v)))
                    .collect();
                Ok(Value::Vector {
                    timestamp_ms: at_ms,
                    samples,
                })
            }
            Val::Matrix(series) => {
                let mut out: Vec<Series> = Vec::with_capacity(series.len());
                for s in series {
                    let labels = if s.drop_name {
                        drop_name_labels(&s.labels)
                    } else {
                        s.labels
                    };
                    let points: Vec<(i64, f64)> =
                        s.samples.iter().map(|p| (p.timestamp_ms, p.value)).collect();
                    if !points.is_empty() {
                        out.push(Series { labels, points });
                    }
                }
                check_unique(out.iter().map(|s| &s.labels))?;
                Ok(Value::Matrix(out))
            }
        }
    }

    /// Evaluates `query` at `start_ms`, `start_ms + step_ms`, … up to `end_ms`.
    pub fn query_range(&self, query: &str, start_ms: i64, end_ms: i64, step_ms: i64) -> Result<Value> {
        if step_ms <= 0 {
            return Err(QueryError::bad(
                "zero or negative query resolution step widths are not accepted. Try a positive integer",
            ));
        }
        let (start_ms, end_ms, step_ms) = (
            eval::clamp_ms(start_ms),
            eval::clamp_ms(end_ms),
            eval::clamp_ms(step_ms),
        );
        if end_ms < start_ms {
            return Err(QueryError::bad("end timestamp must not be before start time"));
        }
        let steps = ((end_ms - start_ms) / step_ms) as usize + 1;
        if steps > self.options.max_steps {
            return Err(QueryError::bad(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
            ));
        }
        let expr = parse(query)?;
        let ty = expr.value_type();
        if !matches!(
            ty,
            parser::value::ValueType::Scalar | parser::value::ValueType::Vector
        ) {
            return Err(QueryError::bad(format!(
                "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                type_display(ty)
            )));
        }
        let state = self.state(start_ms, end_ms, step_ms);
        let mut ev = Evaluator::new(&self.store, &self.options, &state, start_ms, end_ms, step_ms);
        let ts = |k: usize| start_ms + k as i64 * step_ms;
        match ev.eval(&expr)? {
            Val::Scalar(v) => Ok(Value::Matrix(vec![Series {
                labels: Labels::empty(),
                points: v.iter().enumerate().map(|(k, v)| (ts(k), *v)).collect(),
            }])),
            Val::Vector(series) => {
                let series = finish_vector(series, steps)?;
                let mut out: Vec<Series> = series
                    .into_iter()
                    .map(|s| Series {
                        points: s
                            .vals
                            .iter()
                            .enumerate()
                            .filter_map(|(k, v)| v.map(|v| (ts(k), v)))
                            .collect(),
                        labels: s.labels,
                    })
                    .filter(|s| !s.points.is_empty())
                    .collect();
                out.sort_by(|a, b| a.labels.cmp(&b.labels));
                Ok(Value::Matrix(out))
            }
            other => Err(QueryError::bad(format!(
                "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                other.type_name()
            ))),
        }
    }

    fn state(&self, start: i64, end: i64, step: i64) -> QueryState {
        QueryState {
            deadline: Instant::now() + self.options.timeout,
            samples: Cell::new(0),
            query_start: start,
            query_end: end,
            query_step: step,
        }
    }
}

fn type_display(ty: parser::value::ValueType) -> &'static str {
    match ty {
        parser::value::ValueType::Scalar => "scalar",
        parser::value::ValueType::Vector => "instant vector",
        parser::value::ValueType::Matrix => "range vector",
        parser::value::ValueType::String => "string",
    }
}

/// Parses a PromQL expression, mapping parser errors to `bad_data`.
pub fn parse(query: &str) -> Result<Expr> {
    parser::parse(query).map_err(|e| QueryError::bad(format!("invalid parameter \"query\": {e}")))
}

/// Applies delayed `__name__` removal, merges series whose labels became equal and rejects
/// collisions (two series with the same labels at the same step).
pub(crate) fn finish_vector(series: Vec<StepSeries>, steps: usize) -> Result<Vec<StepSeries>> {
    let mut out: Vec<StepSeries> = Vec::with_capacity(series.len());
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let any_drop = series.iter().any(|s| s.drop_name);
    for mut s in series {
        if s.drop_name {
            s.labels = drop_name_labels(&s.labels);
            s.drop_name = false;
        }
        if !any_drop {
            out.push(s);
            continue;
        }
        match index.get(&s.labels) {
            None => {
                index.insert(s.labels.clone(), out.len());
                out.push(s);
            }
            Some(&i) => {
                let target = &mut out[i];
                for k in 0..steps {
                    if let Some(v) = s.vals[k] {
                        if target.vals[k].is_some() {
                            return Err(QueryError::exec(
                                "vector cannot contain metrics with the same labelset",
                            ));
                        }
                        target.vals[k] = Some(v);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Removes `__name__` and the type/unit metadata labels that go with it.
pub(crate) fn drop_name_labels(l: &Labels) -> Labels {
    l.drop_names(&[meshfed_model::METRIC_NAME, "__type__", "__unit__"])
}

fn check_unique<'a>(labels: impl Iterator<Item = &'a Labels>) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for l in labels {
        if !seen.insert(l) {
            return Err(QueryError::exec(
                "vector cannot contain metrics with the same labelset",
            ));
        }
    }
    Ok(())
}

/// Samples of `s` with timestamps in `(start, end]`.
pub(crate) fn window_of(s: &[Sample], start: i64, end: i64) -> &[Sample] {
    let lo = s.partition_point(|p| p.timestamp_ms <= start);
    let hi = s.partition_point(|p| p.timestamp_ms <= end);
    &s[lo..hi.max(lo)]
}
