//! The engine's error type and its Prometheus error classification.

/// Why a query failed. The variant decides the Prometheus `errorType` and HTTP status.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// The query or a parameter is malformed (`bad_data`, HTTP 400).
    #[error("{0}")]
    BadData(String),
    /// The query is well formed but failed while evaluating (`execution`, HTTP 422).
    #[error("{0}")]
    Execution(String),
    /// The query uses a feature this engine does not implement (`execution`, HTTP 422).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The query ran past its deadline (`timeout`, HTTP 503).
    #[error("query timed out in {0}")]
    Timeout(String),
}

impl QueryError {
    /// The Prometheus `errorType` for this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            QueryError::BadData(_) => "bad_data",
            QueryError::Execution(_) | QueryError::Unsupported(_) => "execution",
            QueryError::Timeout(_) => "timeout",
        }
    }

    pub(crate) fn exec(msg: impl Into<String>) -> Self {
        QueryError::Execution(msg.into())
    }

    pub(crate) fn bad(msg: impl Into<String>) -> Self {
        QueryError::BadData(msg.into())
    }
}

/// Result with [`QueryError`].
pub type Result<T, E = QueryError> = std::result::Result<T, E>;
