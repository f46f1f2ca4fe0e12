//! `/federate`: the latest sample of every selected series in Prometheus text format 0.0.4, with
//! explicit timestamps, so another Prometheus can scrape meshfed with `honor_labels: true`.
//!
//! Like Prometheus' handler: `match[]` selects (repeatable, unioned; none selects nothing and
//! answers an empty 200, as Prometheus 2.42 does), only samples within the
//! engine's lookback before now count, a series whose latest sample is a staleness marker is
//! omitted, output is grouped by metric name with an `untyped` `# TYPE` line per name (the store
//! keeps no metadata), and errors are plain text with HTTP 400.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use meshfed_model::exposition::{ExpositionSample, Format, MetricFamily, MetricType, render};
use meshfed_model::{Labels, Sample, is_stale_nan};

use super::params::Params;
use super::{match_sets, now_ms, run};
use crate::engine::Engine;

/// The content type Prometheus federation serves (text format 0.0.4).
pub const FEDERATE_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn plain_error(status: StatusCode, message: String) -> Response {
    (
        status,
        [("content-type", "text/plain; charset=utf-8")],
        message + "\n",
    )
        .into_response()
}

/// The `/federate` handler.
pub async fn federate(
    State(engine): State<Arc<Engine>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::from_parts(&method, &uri, &headers, &body);
    let sets = match match_sets(&p) {
        Ok(s) => s,
        Err(e) => return plain_error(StatusCode::BAD_REQUEST, e.message),
    };
    let maxt = now_ms();
    let mint = maxt - engine.options().lookback_ms;
    let rendered = run(move || latest_samples(&engine, &sets, mint, maxt)).await;
    match rendered {
        Ok(families) => (
            [("content-type", FEDERATE_CONTENT_TYPE)],
            render(&families, Format::PrometheusText),
        )
            .into_response(),
        Err(e) => plain_error(StatusCode::INTERNAL_SERVER_ERROR, e.message),
    }
}

/// The newest non-stale sample in `[mint, maxt]` of every series matching any of `sets`, as one
/// untyped family per metric name, names and series sorted.
pub fn latest_samples(
    engine: &Engine,
    sets: &[Vec<meshfed_model::Matcher>],
    mint: i64,
    maxt: i64,
) -> Vec<MetricFamily> {
    let store = engine.store();
    // Keyed by name first: label order alone would not group families (`A` sorts before `__name__`).
    let mut latest: BTreeMap<(String, Labels), (i64, f64)> = BTreeMap::new();
    let mut buf: Vec<Sample> = Vec::new();
    for set in sets {
        for h in store.select(set, mint, maxt) {
            let key = (h.labels.metric_name().unwrap_or_default().to_owned(), h.labels);
            if latest.contains_key(&key) {
                continue;
            }
            store.read_samples(h.series, mint, maxt, &mut buf);
            match buf.last() {
                Some(s) if !is_stale_nan(s.value) => {
                    latest.insert(key, (s.timestamp_ms, s.value));
                }
                _ => {}
            }
        }
    }
    let mut families: Vec<MetricFamily> = Vec::new();
    for ((name, labels), (ts, value)) in latest {
        if families.last().is_none_or(|f| f.name != name) {
            families.push(MetricFamily::new(name, MetricType::Unknown));
        }
        if let Some(f) = families.last_mut() {
            f.samples.push(ExpositionSample {
                labels,
                value,
                timestamp_ms: Some(ts),
                exemplar: None,
            });
        }
    }
    families
}
