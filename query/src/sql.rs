//! SQL over the store through DataFusion.
//!
//! [`register`] adds two tables to a DataFusion [`SessionContext`]:
//!
//! - `series(series_id UInt64, name Utf8, labels Map<Utf8,Utf8>)`: one row per series;
//! - `samples(series_id, name, labels, ts Timestamp(ms, UTC), value Float64)`: one row per
//!   stored sample, staleness markers excluded.
//!
//! `labels` holds every label but `__name__` (which is `name`); read one with `labels['cluster']`.
//! Filters on `name`, `labels['…']` (`=`, `!=`, `IN`), `series_id` and `ts` (comparisons,
//! `BETWEEN`) become store matchers and time bounds, so a query over one metric and the last hour
//! never touches the rest of the store.
//!
//! [`SqlEngine`] owns a context with those tables, accepts only read-only statements, and runs a
//! query under a row limit and a timeout. The aggregator registers its own tables (`edges`,
//! `health`) on [`SqlEngine::context`]. The HTTP side is [`http`].

pub mod format;
pub mod http;
mod pushdown;
mod tables;

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
use meshfed_store::Store;

pub use tables::{SamplesTable, SeriesTable, register, samples_schema, series_schema};

use crate::error::{QueryError, Result};

/// SQL engine settings. The row limit and timeout are the defaults and the ceilings of
/// [`SqlLimits`] given per query.
#[derive(Clone, Debug)]
pub struct SqlOptions {
    /// Most rows a result may have; more are cut off and the result is marked truncated.
    pub max_rows: usize,
    /// Wall-clock budget per query.
    pub timeout_ms: u64,
    /// Memory the sorts, joins and aggregations of all running queries may hold together.
    pub max_memory_bytes: usize,
    /// Partitions a scan is split into (parallelism).
    pub target_partitions: usize,
}

impl Default for SqlOptions {
    fn default() -> Self {
        Self {
            max_rows: 100_000,
            timeout_ms: 30_000,
            max_memory_bytes: 1 << 30,
            target_partitions: std::thread::available_parallelism().map_or(2, |n| n.get().min(8)),
        }
    }
}

/// Limits for one query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SqlLimits {
    /// Most rows returned.
    pub max_rows: usize,
    /// Wall-clock budget.
    pub timeout_ms: u64,
}

impl SqlOptions {
    /// The per-query limits these options give by default.
    pub fn limits(&self) -> SqlLimits {
        SqlLimits {
            max_rows: self.max_rows,
            timeout_ms: self.timeout_ms,
        }
    }
}

/// A query's result: its batches (at most `max_rows` rows in all) and whether rows were cut off.
#[derive(Clone, Debug)]
pub struct SqlResult {
    /// The result schema (also for an empty result).
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
    /// Rows in `batches`.
    pub rows: usize,
    /// Whether the query produced more than the row limit and the rest was dropped.
    pub truncated: bool,
}

/// Runs read-only SQL over a DataFusion context holding the store's tables.
pub struct SqlEngine {
    ctx: SessionContext,
    options: SqlOptions,
}

impl SqlEngine {
    /// An engine with the `series` and `samples` tables of `store`.
    pub fn new(store: Arc<Store>, options: SqlOptions) -> Self {
        let ctx = Self::context_for(&options);
        if let Err(e) = register(&ctx, store) {
            // Only a name clash can fail, and this context is fresh.
            tracing::error!(error = %e, "Registering the store's SQL tables failed.");
        }
        Self { ctx, options }
    }

    /// An empty context configured as [`SqlEngine::new`] configures its own (information schema
    /// on, memory limit, partitions), for callers that assemble tables themselves.
    pub fn context_for(options: &SqlOptions) -> SessionContext {
        let config = SessionConfig::new()
            .with_information_schema(true)
            .with_target_partitions(options.target_partitions.max(1));
        match RuntimeEnvBuilder::new()
            .with_memory_limit(options.max_memory_bytes, 1.0)
            .build_arc()
        {
            Ok(runtime) => SessionContext::new_with_config_rt(config, runtime),
            Err(e) => {
                tracing::warn!(error = %e, "SQL memory limit not applied.");
                SessionContext::new_with_config(config)
            }
        }
    }

    /// An engine over a context the caller filled (e.g. [`register`] plus its own tables).
    pub fn with_context(ctx: SessionContext, options: SqlOptions) -> Self {
        Self { ctx, options }
    }

    /// The context, to register more tables (`ctx.register_table("edges", …)`).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The engine's settings.
    pub fn options(&self) -> &SqlOptions {
        &self.options
    }

    /// Runs one read-only statement under `limits` (each capped by the engine's options).
    ///
    /// Errors: a statement that does not parse or plan, or that is not read-only (DDL, DML,
    /// `COPY`, `SET` …), is [`QueryError::BadData`]; a failure while running is
    /// [`QueryError::Execution`]; running past the timeout is [`QueryError::Timeout`].
    pub async fn query(&self, sql: &str, limits: SqlLimits) -> Result<SqlResult> {
        let max_rows = limits.max_rows.min(self.options.max_rows);
        let timeout_ms = limits.timeout_ms.min(self.options.timeout_ms);
        let run = self.run(sql, max_rows);
        match tokio::time::timeout(Duration::from_millis(timeout_ms), run).await {
            Ok(result) => result,
            Err(_) => Err(QueryError::Timeout(format!(
                "SQL query execution after {timeout_ms}ms"
            ))),
        }
    }

    async fn run(&self, sql: &str, max_rows: usize) -> Result<SqlResult> {
        let read_only = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = self
            .ctx
            .sql_with_options(sql, read_only)
            .await
            .map_err(planning)?;
        let mut stream = df.execute_stream().await.map_err(planning)?;
        let schema = stream.schema();
        let mut batches = Vec::new();
        let mut rows = 0;
        let mut truncated = false;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| QueryError::exec(message(&e)))?;
            if batch.num_rows() == 0 {
                continue;
            }
            let room = max_rows - rows;
            if batch.num_rows() > room {
                truncated = true;
                if room > 0 {
                    batches.push(batch.slice(0, room));
                    rows += room;
                }
                break;
            }
            rows += batch.num_rows();
            batches.push(batch);
        }
        Ok(SqlResult {
            schema,
            batches,
            rows,
            truncated,
        })
    }
}

/// An error before execution started: the statement is at fault (`bad_data`).
fn planning(e: DataFusionError) -> QueryError {
    match e.find_root() {
        DataFusionError::ResourcesExhausted(_) => QueryError::exec(message(&e)),
        _ => QueryError::bad(message(&e)),
    }
}

/// DataFusion's message without its context wrappers.
fn message(e: &DataFusionError) -> String {
    e.find_root().to_string()
}
