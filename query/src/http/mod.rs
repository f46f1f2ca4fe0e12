//! The Prometheus HTTP API subset Grafana's Prometheus data source uses: instant and range
//! queries (GET and POST form), label names and values, series, build info, metric metadata
//! (from the engine's [`crate::MetadataSource`]), exemplars (empty), rules and alerts (empty, as Prometheus without rules), `format_query`, and
//! `/federate`. Responses are gzip-compressed when the client sends `Accept-Encoding: gzip`.

pub mod error;
pub mod federate;
mod metadata;
pub mod params;
pub mod response;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use meshfed_model::Matcher;

use crate::engine::{Engine, matcher_sets, parse};
use crate::sql::{SqlEngine, SqlOptions};
use error::ApiError;
use params::{MAX_TIME_MS, MIN_TIME_MS, Params, parse_duration, unescape_label_name};
use promql_parser::parser::Expr;
use tower_http::compression::CompressionLayer;

/// The version reported by `/api/v1/status/buildinfo` (≥ 2.24 makes Grafana use `match[]`).
pub const PROMETHEUS_COMPAT_VERSION: &str = "2.42.0";

/// The API routes with `engine` as state, ready to merge into a larger router. `/api/v1/sql`
/// gets an [`SqlEngine`] with the store's own tables and default options.
pub fn router(engine: Arc<Engine>) -> Router {
    let sql = SqlEngine::new(Arc::clone(engine.store()), SqlOptions::default());
    router_with_sql(engine, Arc::new(sql))
}

/// As [`router`], with the given SQL engine (e.g. one with the aggregator's tables added).
pub fn router_with_sql(engine: Arc<Engine>, sql: Arc<SqlEngine>) -> Router {
    Router::new()
        .route("/api/v1/query", get(query).post(query))
        .route("/api/v1/query_range", get(query_range).post(query_range))
        .route("/api/v1/labels", get(labels).post(labels))
        .route("/api/v1/label/{name}/values", get(label_values))
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/metadata", get(metadata::metadata))
        .route("/api/v1/query_exemplars", get(empty_list).post(empty_list))
        .route("/api/v1/status/buildinfo", get(buildinfo))
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/format_query", get(format_query).post(format_query))
        .route("/federate", get(federate::federate).post(federate::federate))
        .with_state(engine)
        .merge(crate::sql::http::router(sql))
        .layer(CompressionLayer::new())
}

fn json(body: String) -> Response {
    ([("content-type", "application/json")], body).into_response()
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(crate) async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))
}

async fn query(
    State(engine): State<Arc<Engine>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = Params::from_parts(&method, &uri, &headers, &body);
    let engine = with_timeout(engine, &p)?;
    let q = p.required("query")?.to_string();
    let at = p.time_or("time", now_ms())?;
    let value = run(move || engine.query_instant(&q, at)).await??;
    Ok(json(response::query_body(&value)))
}

async fn query_range(
    State(engine): State<Arc<Engine>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = Params::from_parts(&method, &uri, &headers, &body);
    let engine = with_timeout(engine, &p)?;
    let q = p.required("query")?.to_string();
    let start = p.time("start")?;
    let end = p.time("end")?;
    if end < start {
        return Err(ApiError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    let step = p.required("step").and_then(|s| {
        parse_duration(s).map_err(|e| ApiError::bad_data(format!("invalid parameter \"step\": {e}")))
    })?;
    if step <= 0 {
        return Err(ApiError::bad_data(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > 11_000 {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let value = run(move || engine.query_range(&q, start, end, step)).await??;
    Ok(json(response::query_body(&value)))
}

/// The engine to run a query with: the shared one, or, when the request has a `timeout`
/// parameter (Grafana sends its data source's "Query timeout" there), a copy whose budget is the
/// shorter of the two.
fn with_timeout(engine: Arc<Engine>, p: &Params) -> Result<Arc<Engine>, ApiError> {
    match p.get("timeout") {
        None | Some("") => Ok(engine),
        Some(v) => {
            let ms = parse_duration(v)
                .map_err(|e| ApiError::bad_data(format!("invalid parameter \"timeout\": {e}")))?;
            let timeout = Duration::from_millis(u64::try_from(ms).unwrap_or(0));
            Ok(Arc::new(engine.with_timeout(timeout)))
        }
    }
}

/// Parses `match[]` selectors into matcher sets.
pub(crate) fn match_sets(p: &Params) -> Result<Vec<Vec<Matcher>>, ApiError> {
    let mut sets = Vec::new();
    for m in p.all("match[]") {
        let expr = parse(m).map_err(|e| ApiError::bad_data(format!("invalid parameter \"match[]\": {e}")))?;
        match expr {
            Expr::VectorSelector(vs) => sets.extend(matcher_sets(&vs)?),
            _ => {
                return Err(ApiError::bad_data(
                    "invalid parameter \"match[]\": must be a vector selector",
                ));
            }
        }
    }
    Ok(sets)
}

fn limit(p: &Params) -> Result<usize, ApiError> {
    match p.get("limit") {
        None | Some("") => Ok(0),
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ApiError::bad_data("invalid parameter \"limit\": not a number")),
    }
}

async fn labels(
    State(engine): State<Arc<Engine>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = Params::from_parts(&method, &uri, &headers, &body);
    let (start, end) = (p.time_or("start", MIN_TIME_MS)?, p.time_or("end", MAX_TIME_MS)?);
    let sets = match_sets(&p)?;
    let limit = limit(&p)?;
    let mut names = run(move || engine.store().label_names(&sets, start, end)).await?;
    if limit > 0 {
        names.truncate(limit);
    }
    Ok(json(response::strings_body(&names)))
}

async fn label_values(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let name = unescape_label_name(&name).into_owned();
    let p = Params::from_parts(&Method::GET, &uri, &HeaderMap::new(), &Bytes::new());
    let (start, end) = (p.time_or("start", MIN_TIME_MS)?, p.time_or("end", MAX_TIME_MS)?);
    let sets = match_sets(&p)?;
    let limit = limit(&p)?;
    let mut values = run(move || engine.store().label_values(&name, &sets, start, end)).await?;
    if limit > 0 {
        values.truncate(limit);
    }
    Ok(json(response::strings_body(&values)))
}

async fn series(
    State(engine): State<Arc<Engine>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = Params::from_parts(&method, &uri, &headers, &body);
    let sets = match_sets(&p)?;
    if sets.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let (start, end) = (p.time_or("start", MIN_TIME_MS)?, p.time_or("end", MAX_TIME_MS)?);
    let limit = limit(&p)?;
    let mut series = run(move || engine.store().series(&sets, start, end)).await?;
    if limit > 0 {
        series.truncate(limit);
    }
    Ok(json(response::series_body(&series)))
}

async fn empty_list() -> Response {
    json("{\"status\":\"success\",\"data\":[]}".to_string())
}

async fn buildinfo() -> Response {
    json(format!(
        "{{\"status\":\"success\",\"data\":{{\"version\":\"{PROMETHEUS_COMPAT_VERSION}\",\"revision\":\"meshfed\",\"branch\":\"\",\"buildUser\":\"\",\"buildDate\":\"\",\"goVersion\":\"\"}}}}"
    ))
}

async fn rules() -> Response {
    json("{\"status\":\"success\",\"data\":{\"groups\":[]}}".to_string())
}

async fn alerts() -> Response {
    json("{\"status\":\"success\",\"data\":{\"alerts\":[]}}".to_string())
}

/// `/api/v1/format_query`: the query pretty-printed (promql-parser's `prettify`, Prometheus'
/// layout), or `bad_data` when it does not parse.
async fn format_query(
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = Params::from_parts(&method, &uri, &headers, &body);
    let q = p.required("query")?;
    let expr = parse(q)?;
    let mut out = String::from("{\"status\":\"success\",\"data\":");
    out.push_str(&serde_json::to_string(&expr.prettify()).unwrap_or_else(|_| "\"\"".into()));
    out.push('}');
    Ok(json(out))
}
