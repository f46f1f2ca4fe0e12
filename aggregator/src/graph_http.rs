//! HTTP handlers of the service graph and health:
//!
//! - `GET /api/v1/graph`: JSON (`format=dot` for Graphviz); parameters `window` (one of the
//!   configured windows, default the shortest), `graphType` (`workload`, `app`, `versionedApp`,
//!   `service`), `clusters`, `namespaces` (comma-separated), `idle=true`, `time` (seconds; default
//!   the latest snapshot).
//! - `GET /api/v1/graph/nodegraph`: Grafana Node Graph frames; also served at
//!   `…/nodegraph/api/graph/{fields,data}` and `…/nodegraph/api/health` for the Node Graph API
//!   datasource plugin.
//! - `GET /api/v1/health`: every service's state.
//! - `GET /api/v1/stream`: server-sent events: `health` (each transition) and, with `edges=true`,
//!   `edges` (the graph's edges at every refresh).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::Stream;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::graph::{self, GraphQuery, GraphService, GraphType, nodegraph};
use crate::health::HealthModel;
use crate::http::error;

/// What the graph handlers need.
#[derive(Clone)]
pub struct GraphState {
    /// Graph snapshots.
    pub graph: Arc<GraphService>,
    /// Health.
    pub health: Arc<HealthModel>,
    /// Snapshot refresh period (the edge stream sends at this pace).
    pub refresh_ms: i64,
    /// Ends event streams at shutdown (graceful shutdown waits for open responses).
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Serialised JSON of the latest snapshots, per parameter set (see [`GraphState::prerender`]).
    pub rendered: Arc<parking_lot::Mutex<RenderCache>>,
}

/// Rendered graph bodies, each with the time of the window snapshot it was rendered from (a
/// refresh that leaves a window's snapshot alone keeps its bodies).
#[derive(Debug, Default)]
pub struct RenderCache {
    bodies: std::collections::HashMap<String, (i64, axum::body::Bytes)>,
    /// Parameter sets requested lately, with when: what [`GraphState::prerender`] renders.
    watched: std::collections::HashMap<String, (GraphParams, std::time::Instant)>,
}

/// How long after its last request a parameter set is still rendered after each refresh.
const PRERENDER_WHILE_WATCHED: Duration = Duration::from_secs(300);

/// The Prometheus success envelope, serialised straight from the graph (through a
/// `serde_json::Value` the 20,000-edge graph took twice as long).
#[derive(serde::Serialize)]
pub struct Success<'a, T> {
    /// Always `success`.
    pub status: &'static str,
    /// The payload.
    pub data: &'a T,
}

/// Distinct query strings kept.
const RENDER_CACHE_ENTRIES: usize = 64;

/// The request's parameters with defaults applied, as a cache key.
fn cache_key(state: &GraphState, p: &GraphParams) -> String {
    format!(
        "{}|{}|{}|{}|{}",
        p.window
            .as_deref()
            .unwrap_or_else(|| state.graph.shortest_window()),
        p.graph_type.as_deref().unwrap_or("workload"),
        p.clusters.as_deref().unwrap_or(""),
        p.namespaces.as_deref().unwrap_or(""),
        p.idle.unwrap_or(false)
    )
}

impl GraphState {
    /// Renders, after a refresh, the graph JSON of every parameter set requested in the last
    /// [`PRERENDER_WHILE_WATCHED`], so a dashboard polling the graph finds its body ready
    /// instead of paying for serialising it (~60 ms at 20,000 edges). When no one is looking,
    /// nothing is rendered. The upkeep task calls this after each refresh.
    pub fn prerender(&self) {
        let watched: Vec<GraphParams> = {
            let mut cache = self.rendered.lock();
            cache
                .watched
                .retain(|_, (_, at)| at.elapsed() < PRERENDER_WHILE_WATCHED);
            cache.watched.values().map(|(p, _)| p.clone()).collect()
        };
        for p in &watched {
            if let Err(e) = cached_json(self, p) {
                tracing::warn!(error = %e, "Could not render the graph.");
            }
        }
    }

    /// Notes a request for `p` (see [`GraphState::prerender`]).
    fn watch(&self, p: &GraphParams) {
        let key = cache_key(self, p);
        let mut cache = self.rendered.lock();
        if cache.watched.len() >= RENDER_CACHE_ENTRIES && !cache.watched.contains_key(&key) {
            return; // Many distinct requests: room is made as they go stale (see `prerender`).
        }
        cache.watched.insert(key, (p.clone(), std::time::Instant::now()));
    }
}

/// The JSON body for a request without `time`: rendered once per snapshot refresh and parameter
/// set, since serialising a large graph costs far more than sending it.
fn cached_json(state: &GraphState, p: &GraphParams) -> Result<axum::body::Bytes, String> {
    let key = cache_key(state, p);
    let window = p
        .window
        .as_deref()
        .unwrap_or_else(|| state.graph.shortest_window());
    let stamp = state
        .graph
        .windows()
        .get(window)
        .and_then(|&w| state.graph.snapshot_time(w));
    if let Some(stamp) = stamp
        && let Some((at, body)) = state.rendered.lock().bodies.get(&key)
        && *at == stamp
    {
        return Ok(body.clone());
    }
    let g = build(state, p)?;
    let body = axum::body::Bytes::from(
        serde_json::to_vec(&Success {
            status: "success",
            data: &g,
        })
        .map_err(|e| e.to_string())?,
    );
    // Only a body of the snapshot it was built from may be cached.
    if let Some(stamp) = stamp
        && g.timestamp == stamp as f64 / 1000.0
    {
        let mut cache = state.rendered.lock();
        if cache.bodies.len() >= RENDER_CACHE_ENTRIES && !cache.bodies.contains_key(&key) {
            cache.bodies.clear();
        }
        cache.bodies.insert(key, (stamp, body.clone()));
    }
    Ok(body)
}

/// The graph and health routes.
pub fn routes(state: GraphState) -> Router {
    Router::new()
        .route("/api/v1/graph", get(graph_json))
        .route("/api/v1/graph/nodegraph", get(nodegraph_frames))
        .route("/api/v1/graph/nodegraph/api/graph/fields", get(nodegraph_fields))
        .route("/api/v1/graph/nodegraph/api/graph/data", get(nodegraph_data))
        .route("/api/v1/graph/nodegraph/api/health", get(|| async { "OK" }))
        .route("/api/v1/health", get(health_rows))
        .route("/api/v1/stream", get(stream))
        .with_state(state)
}

/// Query parameters of the graph endpoints.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphParams {
    time: Option<f64>,
    window: Option<String>,
    graph_type: Option<String>,
    clusters: Option<String>,
    namespaces: Option<String>,
    idle: Option<bool>,
    format: Option<String>,
    edges: Option<bool>,
}

fn split_list(s: Option<&String>) -> Vec<String> {
    s.map(|s| {
        s.split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect()
    })
    .unwrap_or_default()
}

/// Builds the graph a request asks for, or why not (a `bad_data` error).
fn build(state: &GraphState, p: &GraphParams) -> Result<graph::Graph, String> {
    let window = p
        .window
        .as_deref()
        .unwrap_or_else(|| state.graph.shortest_window())
        .to_owned();
    let graph_type = match &p.graph_type {
        None => GraphType::Workload,
        Some(t) => GraphType::parse(t)?,
    };
    let at_ms = match p.time {
        Some(t) if !t.is_finite() => {
            return Err(format!("invalid time {t}"));
        }
        t => t.map(|t| (t * 1000.0).round() as i64),
    };
    let q = GraphQuery {
        graph_type,
        clusters: split_list(p.clusters.as_ref()),
        namespaces: split_list(p.namespaces.as_ref()),
        include_idle: p.idle.unwrap_or(false),
    };
    state.graph.graph(&window, at_ms, &q)
}

fn bad_data(e: String) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_data", e)
}

async fn graph_json(State(state): State<GraphState>, Query(p): Query<GraphParams>) -> Response {
    let dot = match p.format.as_deref() {
        None | Some("json") => false,
        Some("dot") => true,
        Some(f) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_data",
                format!("invalid format {f:?}: expected json or dot"),
            );
        }
    };
    let result = tokio::task::spawn_blocking(move || {
        if dot {
            build(&state, &p).map(|g| graph::dot::render(&g).into_bytes().into())
        } else if p.time.is_none() {
            state.watch(&p);
            cached_json(&state, &p)
        } else {
            let g = build(&state, &p)?;
            serde_json::to_vec(&Success {
                status: "success",
                data: &g,
            })
            .map(axum::body::Bytes::from)
            .map_err(|e| e.to_string())
        }
    })
    .await;
    let content_type = if dot {
        "text/vnd.graphviz"
    } else {
        "application/json"
    };
    match result {
        Ok(Ok(body)) => ([("content-type", content_type)], body).into_response(),
        Ok(Err(e)) => bad_data(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

async fn nodegraph_frames(State(state): State<GraphState>, Query(p): Query<GraphParams>) -> Response {
    match build(&state, &p) {
        Ok(g) => axum::Json(nodegraph::frames(&g)).into_response(),
        Err(e) => bad_data(e),
    }
}

async fn nodegraph_fields() -> Response {
    axum::Json(json!({
        "nodes_fields": nodegraph::node_fields(),
        "edges_fields": nodegraph::edge_fields(),
    }))
    .into_response()
}

async fn nodegraph_data(State(state): State<GraphState>, Query(p): Query<GraphParams>) -> Response {
    match build(&state, &p) {
        Ok(g) => {
            axum::Json(json!({"nodes": nodegraph::nodes(&g), "edges": nodegraph::edges(&g)})).into_response()
        }
        Err(e) => bad_data(e),
    }
}

async fn health_rows(State(state): State<GraphState>) -> Response {
    axum::Json(json!({"status": "success", "data": state.health.rows()})).into_response()
}

async fn stream(State(state): State<GraphState>, Query(p): Query<GraphParams>) -> Response {
    let with_edges = p.edges.unwrap_or(false);
    if with_edges && let Err(e) = build(&state, &p) {
        return bad_data(e); // Reject bad parameters up front, not mid-stream.
    }
    let rx = state.health.subscribe();
    let mut tick = tokio::time::interval(Duration::from_millis(state.refresh_ms.max(100) as u64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let events = futures::stream::unfold(
        (rx, tick, state, p),
        move |(mut rx, mut tick, state, p)| async move {
            loop {
                let event = tokio::select! {
                    r = rx.recv() => match r {
                        Ok(t) => Event::default().event("health").json_data(&t).ok(),
                        Err(RecvError::Lagged(n)) => Some(Event::default().event("lagged").data(n.to_string())),
                        Err(RecvError::Closed) => return None,
                    },
                    _ = tick.tick(), if with_edges => {
                        let g = build(&state, &p).ok();
                        g.and_then(|g| {
                            Event::default()
                                .event("edges")
                                .json_data(json!({"timestamp": g.timestamp, "window": g.window, "edges": g.edges}))
                                .ok()
                        })
                    }
                };
                if let Some(e) = event {
                    return Some((Ok::<_, Infallible>(e), (rx, tick, state, p)));
                }
            }
        },
    );
    sse(events)
}

fn sse(events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static) -> Response {
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn state() -> GraphState {
        GraphState {
            graph: Arc::new(GraphService::new(&["1m".into(), "5m".into()]).unwrap()),
            health: Arc::new(HealthModel::new(Default::default())),
            refresh_ms: 5_000,
            shutdown: Default::default(),
            rendered: Default::default(),
        }
    }

    /// After a refresh only the parameter sets someone requested lately are rendered.
    #[test]
    fn prerender_renders_only_what_was_requested() {
        let s = state();
        s.graph.refresh_all(1_000_000);
        s.prerender();
        assert!(
            s.rendered.lock().bodies.is_empty(),
            "nothing requested, nothing rendered"
        );
        let p = GraphParams {
            window: Some("5m".into()),
            graph_type: Some("app".into()),
            ..GraphParams::default()
        };
        s.watch(&p);
        s.prerender();
        let key = cache_key(&s, &p);
        let cache = s.rendered.lock();
        assert_eq!(cache.bodies.keys().collect::<Vec<_>>(), [&key]);
        assert_eq!(
            cache.bodies[&key].0, 1_000_000,
            "rendered from the refreshed snapshot"
        );
    }
}
