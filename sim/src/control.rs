//! The HTTP control API: targets, topology, faults, routing and ground truth, as JSON.
//!
//! `GET /targets`, `GET /file_sd[?cluster=]`, `GET /topology`, `GET|POST /faults`,
//! `DELETE /faults/{id}`, `GET|POST /routing`, `GET /truth/edges`, `GET /truth/clusters`,
//! `GET /topology/clusters/{cluster}` (one cluster's report for the failover controller) and
//! `PUT /routing/clusters/{cluster}` (replace the rules whose source is that cluster: what one
//! cluster's agent applies).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::SimError;
use crate::faults::{FaultId, FaultRequest};
use crate::mesh::Mesh;
use crate::routing::{RoutingRule, RoutingTable};
use crate::targets::{Target, file_sd};

/// State of the control API.
#[derive(Clone, Debug)]
pub struct ControlState {
    /// The mesh.
    pub mesh: Arc<Mesh>,
    /// Its pod endpoints.
    pub targets: Arc<Vec<Target>>,
}

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        let status = match self {
            SimError::UnknownCluster(_) | SimError::UnknownPod(_) | SimError::UnknownWorkload { .. } => {
                StatusCode::NOT_FOUND
            }
            SimError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        (
            status,
            Json(json!({"status": "error", "error": self.to_string()})),
        )
            .into_response()
    }
}

#[derive(Deserialize)]
struct ClusterFilter {
    cluster: Option<String>,
}

async fn targets(State(s): State<ControlState>, Query(q): Query<ClusterFilter>) -> Json<Vec<Target>> {
    let c = q.cluster.as_deref();
    Json(
        s.targets
            .iter()
            .filter(|t| c.is_none_or(|c| c == t.cluster))
            .cloned()
            .collect(),
    )
}

async fn file_sd_handler(
    State(s): State<ControlState>,
    Query(q): Query<ClusterFilter>,
) -> Json<serde_json::Value> {
    Json(file_sd(&s.targets, q.cluster.as_deref()))
}

async fn topology(State(s): State<ControlState>) -> Json<serde_json::Value> {
    Json(serde_json::to_value(s.mesh.topology()).unwrap_or_default())
}

async fn cluster_topology(
    State(s): State<ControlState>,
    Path(cluster): Path<String>,
) -> Result<Json<crate::topology_report::ClusterReport>, SimError> {
    let topo = s.mesh.topology();
    let id = topo
        .cluster_id(&cluster)
        .ok_or(SimError::UnknownCluster(cluster))?;
    Ok(Json(crate::topology_report::cluster_report(topo, id)))
}

async fn set_cluster_routing(
    State(s): State<ControlState>,
    Path(cluster): Path<String>,
    Json(rules): Json<Vec<RoutingRule>>,
) -> Result<StatusCode, SimError> {
    s.mesh.set_cluster_routing(&cluster, rules)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_faults(State(s): State<ControlState>) -> impl IntoResponse {
    Json(s.mesh.faults())
}

async fn add_fault(
    State(s): State<ControlState>,
    Json(req): Json<FaultRequest>,
) -> Result<Response, SimError> {
    let id = s.mesh.inject(req)?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))).into_response())
}

async fn remove_fault(State(s): State<ControlState>, Path(id): Path<FaultId>) -> StatusCode {
    if s.mesh.clear_fault(id) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn get_routing(State(s): State<ControlState>) -> Json<RoutingTable> {
    Json(s.mesh.routing())
}

async fn set_routing(
    State(s): State<ControlState>,
    Json(t): Json<RoutingTable>,
) -> Result<StatusCode, SimError> {
    s.mesh.set_routing(t)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn truth_edges(State(s): State<ControlState>) -> impl IntoResponse {
    Json(s.mesh.edge_rates())
}

async fn truth_clusters(State(s): State<ControlState>) -> Json<Vec<serde_json::Value>> {
    let rows = s.mesh.cluster_pair_rates().into_iter();
    Json(
        rows.map(|((src, dst), r)| json!({"source_cluster": src, "destination_cluster": dst, "rate_rps": r}))
            .collect(),
    )
}

/// The control API router (testable without a socket).
pub fn router(state: ControlState) -> Router {
    Router::new()
        .route("/targets", get(targets))
        .route("/file_sd", get(file_sd_handler))
        .route("/topology", get(topology))
        .route("/topology/clusters/{cluster}", get(cluster_topology))
        .route(
            "/routing/clusters/{cluster}",
            axum::routing::put(set_cluster_routing),
        )
        .route("/faults", get(list_faults).post(add_fault))
        .route("/faults/{id}", delete(remove_fault))
        .route("/routing", get(get_routing).post(set_routing))
        .route("/truth/edges", get(truth_edges))
        .route("/truth/clusters", get(truth_clusters))
        .with_state(state)
}
