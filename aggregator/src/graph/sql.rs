//! The service graph and health as SQL tables (`POST /api/v1/sql`).
//!
//! - `edges`: one row per edge of the workload graph per configured window, from the latest
//!   snapshot (the rows `GET /api/v1/graph?window=…` returns), with both nodes' fields and every
//!   edge figure.
//! - `health`: one row per service per cluster, as `GET /api/v1/health`.
//!
//! Each scan builds one Arrow batch from the current state, so a query sees the graph as of its
//! own start; both tables are small (one row per edge), so no filter is pushed down.

use std::fmt;
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;

use crate::graph::istio::CodeClass;
use crate::graph::{Graph, GraphQuery, GraphService};
use crate::health::{HealthModel, HealthRow};

/// Registers `edges` and `health` in `ctx` (next to the store's `series` and `samples`).
pub fn register(ctx: &SessionContext, graph: Arc<GraphService>, health: Arc<HealthModel>) -> DfResult<()> {
    ctx.register_table("edges", Arc::new(EdgesTable { graph }))?;
    ctx.register_table("health", Arc::new(HealthTable { health }))?;
    Ok(())
}

fn ts(name: &str, nullable: bool) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        nullable,
    )
}

fn text(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn num(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Float64, nullable)
}

/// The node columns of one side of an edge.
const NODE_COLUMNS: [&str; 6] = ["", "_type", "_cluster", "_namespace", "_name", "_version"];

/// Columns of `rate_<class>` in [`CodeClass::NAMES`] order.
static EDGES_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = vec![text("window", false), ts("ts", false)];
    for side in ["source", "destination"] {
        for suffix in NODE_COLUMNS {
            fields.push(text(&format!("{side}{suffix}"), suffix == "_version"));
        }
    }
    fields.push(text("protocol", false));
    fields.push(num("request_rate", false));
    for class in CodeClass::NAMES {
        fields.push(num(&format!("rate_{class}"), false));
    }
    fields.extend([
        num("error_rate_percent", false),
        num("share_percent", false),
        num("latency_p50_ms", true),
        num("latency_p95_ms", true),
        num("latency_p99_ms", true),
        num("request_bytes_per_second", false),
        num("response_bytes_per_second", false),
        num("tcp_received_bytes_per_second", false),
        num("tcp_sent_bytes_per_second", false),
        num("tcp_connections_per_second", false),
        num("mtls_percent", true),
        text("response_flags", false),
        Field::new("cross_cluster", DataType::Boolean, false),
    ]);
    Arc::new(Schema::new(fields))
});

static HEALTH_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        text("cluster", false),
        text("namespace", false),
        text("service", false),
        text("state", false),
        ts("since", false),
        text("reasons", false),
        ts("observed_at", true),
        num("requests", false),
        num("error_percent", true),
        num("p99_ms", true),
        num("endpoints_healthy", true),
        num("endpoints_total", true),
        num("endpoints_ejected", true),
    ]))
});

/// Schema of the `edges` table.
pub fn edges_schema() -> SchemaRef {
    Arc::clone(&EDGES_SCHEMA)
}

/// Schema of the `health` table.
pub fn health_schema() -> SchemaRef {
    Arc::clone(&HEALTH_SCHEMA)
}

/// The `edges` table.
pub struct EdgesTable {
    graph: Arc<GraphService>,
}

/// The `health` table.
pub struct HealthTable {
    health: Arc<HealthModel>,
}

impl fmt::Debug for EdgesTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EdgesTable")
    }
}

impl fmt::Debug for HealthTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HealthTable")
    }
}

/// The latest snapshot's workload graph of every window, as one batch.
pub fn edges_batch(graph: &GraphService) -> DfResult<RecordBatch> {
    let graphs: Vec<Graph> = graph
        .windows()
        .keys()
        .filter_map(|w| graph.graph(w, None, &GraphQuery::default()).ok())
        .collect();
    edges_batch_of(&graphs)
}

/// `graphs` (one per window) as rows of the `edges` table.
pub fn edges_batch_of(graphs: &[Graph]) -> DfResult<RecordBatch> {
    let mut strings: Vec<Vec<Option<String>>> = vec![Vec::new(); 2 + 2 * NODE_COLUMNS.len()];
    let mut times = Vec::new();
    let mut nums: Vec<Vec<Option<f64>>> = vec![Vec::new(); 1 + CodeClass::COUNT + 11];
    let mut flags = Vec::new();
    let mut cross = Vec::new();
    for g in graphs {
        let nodes: std::collections::HashMap<&str, &crate::graph::Node> =
            g.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
        for e in &g.edges {
            let mut s = strings.iter_mut();
            let mut push = |v: Option<String>| {
                if let Some(col) = s.next() {
                    col.push(v);
                }
            };
            push(Some(g.window.clone()));
            for id in [&e.source, &e.target] {
                let n = nodes.get(id.as_str());
                push(Some(id.clone()));
                push(Some(n.map_or("unknown", |n| n.kind).to_owned()));
                push(Some(n.map_or_else(String::new, |n| n.cluster.clone())));
                push(Some(n.map_or_else(String::new, |n| n.namespace.clone())));
                push(Some(n.map_or_else(String::new, |n| n.name.clone())));
                push(n.and_then(|n| n.version.clone()));
            }
            push(Some(e.protocol.clone()));
            times.push((g.timestamp * 1000.0).round() as i64);
            let mut values = vec![Some(e.request_rate)];
            values.extend(
                CodeClass::NAMES
                    .iter()
                    .map(|c| Some(e.request_rate_by_class.get(c).copied().unwrap_or(0.0))),
            );
            values.extend([
                Some(e.error_rate_percent),
                Some(e.share_percent),
                e.latency_ms.p50,
                e.latency_ms.p95,
                e.latency_ms.p99,
                Some(e.request_bytes_per_second),
                Some(e.response_bytes_per_second),
                Some(e.tcp_received_bytes_per_second),
                Some(e.tcp_sent_bytes_per_second),
                Some(e.tcp_connections_per_second),
                e.mtls_percent,
            ]);
            for (col, v) in nums.iter_mut().zip(values) {
                col.push(v);
            }
            flags.push(serde_json::to_string(&e.response_flags).unwrap_or_default());
            cross.push(e.cross_cluster);
        }
    }
    let mut strings = strings
        .into_iter()
        .map(|c| Arc::new(StringArray::from(c)) as ArrayRef);
    let mut columns: Vec<ArrayRef> = strings.next().into_iter().collect();
    columns.push(Arc::new(
        TimestampMillisecondArray::from(times).with_timezone("UTC"),
    ));
    columns.extend(strings);
    columns.extend(
        nums.into_iter()
            .map(|c| Arc::new(Float64Array::from(c)) as ArrayRef),
    );
    columns.push(Arc::new(StringArray::from(flags)));
    columns.push(Arc::new(BooleanArray::from(cross)));
    Ok(RecordBatch::try_new(edges_schema(), columns)?)
}

/// Health rows as one batch of the `health` table.
pub fn health_batch(rows: &[HealthRow]) -> DfResult<RecordBatch> {
    let col = |f: &dyn Fn(&HealthRow) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let f64s = |f: &dyn Fn(&HealthRow) -> Option<f64>| -> ArrayRef {
        Arc::new(Float64Array::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let times = |f: &dyn Fn(&HealthRow) -> Option<i64>| -> ArrayRef {
        Arc::new(TimestampMillisecondArray::from(rows.iter().map(f).collect::<Vec<_>>()).with_timezone("UTC"))
    };
    let columns = vec![
        col(&|r| Some(r.cluster.clone())),
        col(&|r| Some(r.namespace.clone())),
        col(&|r| Some(r.service.clone())),
        col(&|r| Some(r.health.state.as_str().to_owned())),
        times(&|r| Some(r.health.since_ms)),
        col(&|r| Some(r.health.reasons.join("; "))),
        times(&|r| (r.health.last.at_ms > 0).then_some(r.health.last.at_ms)),
        f64s(&|r| Some(r.health.last.requests)),
        f64s(&|r| r.health.last.error_percent),
        f64s(&|r| r.health.last.p99_ms),
        f64s(&|r| r.health.last.endpoints.map(|e| e.healthy)),
        f64s(&|r| r.health.last.endpoints.map(|e| e.total)),
        f64s(&|r| r.health.last.endpoints.map(|e| e.ejected)),
    ];
    Ok(RecordBatch::try_new(health_schema(), columns)?)
}

async fn scan_batch(
    batch: RecordBatch,
    state: &dyn Session,
    projection: Option<&Vec<usize>>,
    filters: &[Expr],
    limit: Option<usize>,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
    table.scan(state, projection, filters, limit).await
}

#[async_trait]
impl TableProvider for EdgesTable {
    fn schema(&self) -> SchemaRef {
        edges_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let graph = Arc::clone(&self.graph);
        // Building the graph can take a while at 20,000 edges: off the async workers.
        let batch = tokio::task::spawn_blocking(move || edges_batch(&graph))
            .await
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))??;
        scan_batch(batch, state, projection, filters, limit).await
    }
}

#[async_trait]
impl TableProvider for HealthTable {
    fn schema(&self) -> SchemaRef {
        health_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let batch = health_batch(&self.health.rows())?;
        scan_batch(batch, state, projection, filters, limit).await
    }
}

#[cfg(test)]
mod tests;
