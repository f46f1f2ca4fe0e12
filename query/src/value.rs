//! Query results (public) and the engine's intermediate step-major values (crate-private).

use meshfed_model::{Labels, Sample};

/// One series of a range-query (or range-vector) result.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The series' labels.
    pub labels: Labels,
    /// `(timestamp_ms, value)` points, oldest first.
    pub points: Vec<(i64, f64)>,
}

/// The result of a query.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A scalar evaluated at `timestamp_ms`.
    Scalar {
        /// Evaluation time.
        timestamp_ms: i64,
        /// The value.
        value: f64,
    },
    /// An instant vector evaluated at `timestamp_ms`.
    Vector {
        /// Evaluation time.
        timestamp_ms: i64,
        /// The elements, in evaluation order (sorted by labels unless a sort function ran).
        samples: Vec<(Labels, f64)>,
    },
    /// A range vector (instant query of `x[5m]`) or the result of a range query, sorted by labels.
    Matrix(Vec<Series>),
    /// A string literal evaluated at `timestamp_ms`.
    String {
        /// Evaluation time.
        timestamp_ms: i64,
        /// The string.
        value: String,
    },
}

impl Value {
    /// The Prometheus `resultType` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::Vector { .. } => "vector",
            Value::Matrix(_) => "matrix",
            Value::String { .. } => "string",
        }
    }
}

/// One series of an instant vector evaluated at every step of the current evaluation grid.
#[derive(Clone, Debug)]
pub(crate) struct StepSeries {
    pub labels: Labels,
    /// Set when a function or operator removed `__name__` (delayed until the end, as Prometheus 3).
    pub drop_name: bool,
    /// One slot per step; `None` where the series has no value.
    pub vals: Vec<Option<f64>>,
}

impl StepSeries {
    pub fn new(labels: Labels, drop_name: bool, steps: usize) -> Self {
        Self {
            labels,
            drop_name,
            vals: vec![None; steps],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.vals.iter().all(Option::is_none)
    }
}

/// A range vector series (only materialised for instant queries of `x[5m]` and subqueries).
#[derive(Clone, Debug)]
pub(crate) struct RangeSeries {
    pub labels: Labels,
    pub drop_name: bool,
    pub samples: Vec<Sample>,
}

/// An intermediate value over the evaluation grid.
#[derive(Clone, Debug)]
pub(crate) enum Val {
    Scalar(Vec<f64>),
    Vector(Vec<StepSeries>),
    /// Only for a single-step grid.
    Matrix(Vec<RangeSeries>),
    Str(String),
}

impl Val {
    pub fn type_name(&self) -> &'static str {
        match self {
            Val::Scalar(_) => "scalar",
            Val::Vector(_) => "instant vector",
            Val::Matrix(_) => "range vector",
            Val::Str(_) => "string",
        }
    }
}

/// Formats a float the way Prometheus' JSON API does (Go's `strconv.FormatFloat(f, 'f', -1, 64)`
/// for ordinary numbers, `NaN`, `+Inf`, `-Inf`).
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        // Rust's `{}` is the shortest round-trip form without exponent, like Go's 'f', -1.
        format!("{v}")
    }
}
