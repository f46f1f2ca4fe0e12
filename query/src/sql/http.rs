//! `GET|POST /api/v1/sql`: one read-only SQL statement, answered as JSON, CSV or Arrow IPC.
//!
//! The statement comes from the `query` parameter (query string or form body), a JSON body
//! `{"query": "…"}`, or, for any other POST body, the body itself as SQL text. The format is
//! `format=json|csv|arrow` when given, otherwise the first of `application/vnd.apache.arrow.stream`,
//! `text/csv` or `application/json` the `Accept` header lists, otherwise JSON. `limit` (rows) and
//! `timeout` (a Prometheus duration or float seconds) may lower the engine's limits. A truncated
//! result carries `X-Meshfed-Truncated: true` (and `truncated`/`warnings` in JSON). Errors are
//! Prometheus' JSON error envelope whatever the format asked.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::format::Format;
use super::{SqlEngine, SqlLimits};
use crate::http::error::ApiError;
use crate::http::params::{Params, parse_duration};

/// The response header saying the row limit cut the result short.
pub const TRUNCATED_HEADER: &str = "x-meshfed-truncated";

/// The `/api/v1/sql` route with `engine` as its state.
pub fn router(engine: Arc<SqlEngine>) -> Router {
    Router::new()
        .route("/api/v1/sql", get(sql).post(sql))
        .with_state(engine)
}

/// The statement, the response format and the limits of one request.
#[derive(Debug)]
struct SqlRequest {
    query: String,
    format: Format,
    limits: SqlLimits,
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

impl SqlRequest {
    fn parse(
        engine: &SqlEngine,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<Self, ApiError> {
        let p = Params::from_parts(method, uri, headers, body);
        let ctype = content_type(headers);
        let mut query = p.get("query").map(str::to_string);
        let mut json_format = None;
        if query.is_none() && *method == Method::POST && !body.is_empty() {
            if ctype.starts_with("application/json") {
                let v: serde_json::Value = serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_data(format!("invalid JSON body: {e}")))?;
                query = v.get("query").and_then(|q| q.as_str()).map(str::to_string);
                json_format = v.get("format").and_then(|f| f.as_str()).map(str::to_string);
            } else if !ctype.starts_with("application/x-www-form-urlencoded") {
                query = Some(
                    std::str::from_utf8(body)
                        .map_err(|_| ApiError::bad_data("SQL body is not UTF-8"))?
                        .to_string(),
                );
            }
        }
        let query = query
            .filter(|q| !q.trim().is_empty())
            .ok_or_else(|| ApiError::bad_data("invalid parameter \"query\": missing"))?;
        let format = match p.get("format").map(str::to_string).or(json_format) {
            Some(name) => Format::from_name(&name).ok_or_else(|| {
                ApiError::bad_data(format!("invalid parameter \"format\": unknown format {name:?}"))
            })?,
            None => Format::from_accept(
                headers
                    .get(header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(""),
            ),
        };
        let mut limits = engine.options().limits();
        match p.get("limit") {
            None | Some("") => {}
            Some(v) => match v.parse::<usize>() {
                Ok(0) => {}
                Ok(n) => limits.max_rows = limits.max_rows.min(n),
                Err(_) => return Err(ApiError::bad_data("invalid parameter \"limit\": not a number")),
            },
        }
        match p.get("timeout") {
            None | Some("") => {}
            Some(v) => {
                let ms = parse_duration(v)
                    .map_err(|e| ApiError::bad_data(format!("invalid parameter \"timeout\": {e}")))?;
                if ms > 0 {
                    limits.timeout_ms = limits.timeout_ms.min(ms as u64);
                }
            }
        }
        Ok(Self {
            query,
            format,
            limits,
        })
    }
}

async fn sql(
    State(engine): State<Arc<SqlEngine>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = SqlRequest::parse(&engine, &method, &uri, &headers, &body)?;
    let result = engine.query(&req.query, req.limits).await?;
    let body = req
        .format
        .encode(&result)
        .map_err(|e| ApiError::internal(format!("encoding the result: {e}")))?;
    let truncated = if result.truncated { "true" } else { "false" };
    Ok((
        [
            (header::CONTENT_TYPE.as_str(), req.format.content_type()),
            (TRUNCATED_HEADER, truncated),
        ],
        body,
    )
        .into_response())
}
