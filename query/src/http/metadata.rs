//! `/api/v1/metadata`: HELP/TYPE/UNIT per metric family from the engine's [`MetadataSource`],
//! with Prometheus' parameters (`metric`, `limit`, `limit_per_metric`) and shape
//! (`{"<family>": [{"type", "help", "unit"}, …]}`).
//!
//! [`MetadataSource`]: crate::metadata::MetadataSource

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;

use super::error::ApiError;
use super::params::Params;
use super::{json, run};
use crate::engine::Engine;

/// A limit as Prometheus reads it: absent or negative means none, otherwise a number.
fn signed_limit(p: &Params, name: &str) -> Result<Option<usize>, ApiError> {
    match p.get(name) {
        None | Some("") => Ok(None),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n < 0 => Ok(None),
            Ok(n) => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
            Err(_) => Err(ApiError::bad_data(format!("{name} must be a number"))),
        },
    }
}

pub(super) async fn metadata(
    State(engine): State<Arc<Engine>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = Params::from_parts(&method, &uri, &headers, &body);
    let limit = signed_limit(&p, "limit")?;
    // Prometheus applies a per-metric limit only when it is positive.
    let per_metric = signed_limit(&p, "limit_per_metric")?.filter(|&n| n > 0);
    let metric = p.get("metric").filter(|m| !m.is_empty()).map(str::to_owned);
    let Some(source) = engine.metadata().cloned() else {
        return Ok(json("{\"status\":\"success\",\"data\":{}}".to_owned()));
    };
    let families = run(move || source.metadata(metric.as_deref())).await?;
    // Written by hand so each entry keeps Prometheus' key order (type, help, unit).
    let mut out = String::from("{\"status\":\"success\",\"data\":{");
    for (i, (name, mut entries)) in families.into_iter().take(limit.unwrap_or(usize::MAX)).enumerate() {
        if let Some(n) = per_metric {
            entries.truncate(n);
        }
        if i > 0 {
            out.push(',');
        }
        let name = serde_json::to_string(&name).map_err(|e| ApiError::internal(e.to_string()))?;
        let entries = serde_json::to_string(&entries).map_err(|e| ApiError::internal(e.to_string()))?;
        out.push_str(&name);
        out.push(':');
        out.push_str(&entries);
    }
    out.push_str("}}");
    Ok(json(out))
}
