//! `GET /api/v1/virtualdestinations`: every resource's status (selected services, placement, the
//! routing decision and why, validation errors, per-cluster delivery and apply errors) and the
//! files that could not be read.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::Controller;

/// The controller's routes.
pub fn router(controller: Arc<Controller>) -> Router {
    Router::new()
        .route("/api/v1/virtualdestinations", get(list))
        .with_state(controller)
}

async fn list(State(c): State<Arc<Controller>>) -> Json<Value> {
    let (resources, file_errors) = c.statuses();
    Json(json!({
        "status": "success",
        "data": { "enabled": c.enabled(), "resources": resources, "fileErrors": file_errors },
    }))
}
