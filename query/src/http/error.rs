//! The HTTP boundary's error: Prometheus' error envelope with its status codes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::QueryError;

/// An API error rendered as `{"status":"error","errorType":…,"error":…}`.
#[derive(Debug)]
pub struct ApiError {
    /// Prometheus `errorType`.
    pub error_type: &'static str,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    /// A `bad_data` error (HTTP 400).
    pub fn bad_data(message: impl Into<String>) -> Self {
        Self {
            error_type: "bad_data",
            message: message.into(),
        }
    }

    /// An `internal` error (HTTP 500).
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            error_type: "internal",
            message: message.into(),
        }
    }

    fn status(&self) -> StatusCode {
        match self.error_type {
            "bad_data" => StatusCode::BAD_REQUEST,
            "execution" => StatusCode::UNPROCESSABLE_ENTITY,
            "timeout" | "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            "canceled" => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        Self {
            error_type: e.error_type(),
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = super::response::error_body(self.error_type, &self.message);
        (self.status(), [("content-type", "application/json")], body).into_response()
    }
}
