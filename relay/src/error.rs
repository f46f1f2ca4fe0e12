//! The relay's error type.

/// Result with the relay [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong on either side of a relay stream.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The first message of a stream was not a hello.
    #[error("stream did not start with a hello")]
    MissingHello,
    /// The peer speaks a protocol version this build does not.
    #[error("unsupported protocol version {got} (this build speaks {supported})")]
    UnsupportedVersion {
        /// What the peer announced.
        got: u32,
        /// What we speak.
        supported: u32,
    },
    /// The hello named no cluster.
    #[error("hello from collector {collector_id:?} names no cluster")]
    MissingCluster {
        /// The collector's id.
        collector_id: String,
    },
    /// A batch's sample columns differ in length.
    #[error(
        "batch {sequence}: column lengths differ (refs {refs}, timestamps {timestamps}, values {values})"
    )]
    RaggedColumns {
        /// Batch sequence number.
        sequence: u64,
        /// Length of the refs column.
        refs: usize,
        /// Length of the timestamps column.
        timestamps: usize,
        /// Length of the values column.
        values: usize,
    },
    /// The Arrow columns of a batch are malformed or over the limits.
    #[error("batch {sequence}: {reason}")]
    BadColumns {
        /// Batch sequence number.
        sequence: u64,
        /// What is wrong.
        reason: String,
    },
    /// A sample names a ref the stream never defined.
    #[error("batch {sequence}: unknown series ref {series_ref}")]
    UnknownRef {
        /// Batch sequence number.
        sequence: u64,
        /// The undefined ref.
        series_ref: u64,
    },
    /// A series definition is malformed (no name, unsorted or duplicate labels).
    #[error("batch {sequence}: invalid series definition for ref {series_ref}: {reason}")]
    InvalidSeries {
        /// Batch sequence number.
        sequence: u64,
        /// The ref being defined.
        series_ref: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A series claims a cluster other than the stream's.
    #[error("batch {sequence}: series claims cluster {claimed:?} but the stream is cluster {cluster:?}")]
    ForeignCluster {
        /// Batch sequence number.
        sequence: u64,
        /// The stream's cluster.
        cluster: String,
        /// The cluster the series claims.
        claimed: String,
    },
    /// The aggregator could not store a batch.
    #[error("ingest failed: {0}")]
    Ingest(String),
    /// A gRPC transport failure.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A gRPC status from the peer.
    #[error("status: {0}")]
    Status(#[from] tonic::Status),
    /// The stream defined more series than the per-session limit.
    #[error("stream defines more than {limit} series")]
    TooManySeries {
        /// The limit.
        limit: usize,
    },
    /// The peer sent nothing, not even a heartbeat, for too long.
    #[error("peer silent for {0:?}")]
    IdleTimeout(std::time::Duration),
    /// The collector's disk buffer failed.
    #[error("relay buffer: {0}")]
    Buffer(String),
    /// A session arrived without a verified client certificate while one is required.
    #[error("no verified client certificate")]
    Unauthenticated,
    /// The aggregator refused the session.
    #[error("rejected by aggregator: {0}")]
    Rejected(String),
}

impl Error {
    /// A short, bounded reason for use as a metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::MissingHello => "missing_hello",
            Error::UnsupportedVersion { .. } => "unsupported_version",
            Error::MissingCluster { .. } => "missing_cluster",
            Error::RaggedColumns { .. } => "ragged_columns",
            Error::UnknownRef { .. } => "unknown_ref",
            Error::BadColumns { .. } => "bad_columns",
            Error::InvalidSeries { .. } => "invalid_series",
            Error::ForeignCluster { .. } => "foreign_cluster",
            Error::Ingest(_) => "ingest",
            Error::Transport(_) => "transport",
            Error::Status(s) => match s.code() {
                tonic::Code::OutOfRange | tonic::Code::ResourceExhausted => "oversized",
                tonic::Code::Internal | tonic::Code::InvalidArgument => "malformed",
                tonic::Code::Cancelled => "cancelled",
                _ => "status",
            },
            Error::Rejected(_) => "rejected",
            Error::Unauthenticated => "unauthenticated",
            Error::Buffer(_) => "buffer",
            Error::IdleTimeout(_) => "idle_timeout",
            Error::TooManySeries { .. } => "too_many_series",
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        match e {
            Error::MissingHello
            | Error::MissingCluster { .. }
            | Error::RaggedColumns { .. }
            | Error::UnknownRef { .. }
            | Error::BadColumns { .. }
            | Error::InvalidSeries { .. } => tonic::Status::invalid_argument(e.to_string()),
            Error::UnsupportedVersion { .. } => tonic::Status::failed_precondition(e.to_string()),
            Error::ForeignCluster { .. } => tonic::Status::permission_denied(e.to_string()),
            Error::Unauthenticated => tonic::Status::unauthenticated(e.to_string()),
            Error::Ingest(_) => tonic::Status::unavailable(e.to_string()),
            Error::Transport(_) | Error::Rejected(_) | Error::Buffer(_) => {
                tonic::Status::unavailable(e.to_string())
            }
            Error::IdleTimeout(_) => tonic::Status::deadline_exceeded(e.to_string()),
            Error::TooManySeries { .. } => tonic::Status::resource_exhausted(e.to_string()),
            Error::Status(s) => s,
        }
    }
}
