//! The aggregator's HTTP router: the Prometheus API (from `meshfed-query`), the service graph
//! and health ([`crate::graph_http`]),
//! self-metrics and health endpoints.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use meshfed_query::Engine;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::json;

use crate::ingest::StoreIngest;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    /// The PromQL engine (and through it, the store).
    pub engine: Arc<Engine>,
    /// The relay sink, for connection status.
    pub ingest: Arc<StoreIngest>,
    /// Self-metrics.
    pub registry: Arc<Registry>,
    /// Gauges refreshed when `/metrics` is scraped.
    pub gauges: SelfGauges,
    /// The service graph and health.
    pub graph: crate::graph_http::GraphState,
}

/// Gauges read from live state at scrape time.
#[derive(Clone, Debug, Default)]
pub struct SelfGauges {
    /// Series in the store.
    pub series: Gauge,
    /// Samples in the store.
    pub samples: Gauge,
    /// Clusters with a connected collector.
    pub clusters_connected: Gauge,
}

impl SelfGauges {
    /// Registers the gauges.
    pub fn register(&self, registry: &mut Registry) {
        registry.register("meshfed_store_series", "Series in the store", self.series.clone());
        registry.register(
            "meshfed_store_samples",
            "Samples in the store",
            self.samples.clone(),
        );
        registry.register(
            "meshfed_relay_clusters_connected",
            "Clusters with at least one connected collector",
            self.clusters_connected.clone(),
        );
    }
}

/// The full router.
pub fn router(state: AppState) -> Router {
    let own = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/-/healthy", get(|| async { "Healthy.\n" }))
        .route("/-/ready", get(|| async { "Ready.\n" }))
        .with_state(state.clone());
    own.merge(crate::graph_http::routes(state.graph.clone()))
        .merge(meshfed_query::router_with_sql(
            Arc::clone(&state.engine),
            sql_engine(&state),
        ))
}

/// `/api/v1/sql` over the store's `series` and `samples` plus the graph's `edges` and `health`.
fn sql_engine(state: &AppState) -> Arc<meshfed_query::SqlEngine> {
    let sql = meshfed_query::SqlEngine::new(
        Arc::clone(state.engine.store()),
        meshfed_query::SqlOptions::default(),
    );
    let (graph, health) = (&state.graph.graph, &state.graph.health);
    if let Err(e) = crate::graph::sql::register(sql.context(), Arc::clone(graph), Arc::clone(health)) {
        tracing::error!(error = %e, "Registering the graph's SQL tables failed.");
    }
    Arc::new(sql)
}

/// A Prometheus-style error response.
pub fn error(status: StatusCode, kind: &str, msg: String) -> Response {
    (
        status,
        axum::Json(json!({"status": "error", "errorType": kind, "error": msg})),
    )
        .into_response()
}

async fn metrics_handler(State(state): State<AppState>) -> Response {
    let stats = state.engine.store().stats();
    state.gauges.series.set(stats.series as i64);
    state.gauges.samples.set(stats.samples as i64);
    state
        .gauges
        .clusters_connected
        .set(state.ingest.connected_clusters().len() as i64);
    let mut body = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string());
    }
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
