//! The requests Grafana's stock Prometheus data source sends, replayed against the API as
//! Grafana sends them, and checked against what Grafana does with each answer.
//!
//! Derived from Grafana's sources (11.x/12.x): the backend client `pkg/promlib/client/client.go`
//! (queries as `POST` form bodies by default — `query`, `start`, `end`, `step` as float seconds,
//! `time`, and `timeout` when "Query timeout" is set; resource calls `POST`ed unless their path is
//! on a GET-only list, with a retry as `GET` on 405 or 400), `healthcheck.go` ("Save & test":
//! an instant `1+1` at `time=4`), `heuristics.go` (`api/v1/status/buildinfo`: no `features` means
//! Prometheus, not Mimir), and the frontend `packages/grafana-prometheus/src/datasource.ts` and
//! `language_provider.ts` (label names and values with `start`/`end`/`match[]`, series with
//! `limit`, `/api/v1/metadata`, `/api/v1/rules` for recording rules, a `query_exemplars` probe
//! with `start`/`end` in milliseconds, and label names escaped as `U__…` in URL paths).
//! docs/query.md lists the same requests.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use meshfed_model::Labels;
use meshfed_query::{Engine, EngineOptions, router};
use meshfed_store::{Store, StoreOptions};
use serde_json::Value;
use tower::ServiceExt;

const T0: i64 = 1_700_000_000_000;
const FORM: &str = "application/x-www-form-urlencoded";

fn app() -> axum::Router {
    let store = Arc::new(Store::new(StoreOptions::default()));
    let series: &[&[(&str, &str)]] = &[
        &[
            ("__name__", "istio_requests_total"),
            ("destination_service", "reviews.bookinfo.svc.cluster.local"),
            ("response_code", "200"),
            ("job", "envoy-stats"),
        ],
        &[
            ("__name__", "istio_requests_total"),
            ("destination_service", "reviews.bookinfo.svc.cluster.local"),
            ("response_code", "503"),
            ("job", "envoy-stats"),
        ],
        &[
            ("__name__", "up"),
            ("job", "envoy-stats"),
            ("instance", "10.0.0.1:15020"),
        ],
    ];
    for (i, labels) in series.iter().enumerate() {
        let r = store.get_or_create(&Labels::from_pairs(labels.iter().copied()));
        for k in 0..40 {
            let t = T0 + k * 15_000;
            store.append(r, t, (k * (i as i64 + 1)) as f64).expect("append");
        }
    }
    router(Arc::new(Engine::new(store, EngineOptions::default())))
}

struct Reply {
    status: StatusCode,
    json: Value,
}

/// What Grafana's backend sends for a `POST`: a form body, the form content type.
async fn post(uri: &str, form: &str) -> Reply {
    let req = Request::post(uri)
        .header("content-type", FORM)
        .header("user-agent", "Grafana/12.0.0")
        .body(Body::from(form.to_string()))
        .expect("request");
    send(req).await
}

async fn get(uri: &str) -> Reply {
    let req = Request::get(uri)
        .header("user-agent", "Grafana/12.0.0")
        .body(Body::empty())
        .expect("request");
    send(req).await
}

async fn send(req: Request<Body>) -> Reply {
    let resp = app().oneshot(req).await.expect("router is infallible");
    let status = resp.status();
    let body = to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Reply { status, json }
}

/// Grafana's resource client: `POST` first, `GET` with the same parameters on 405 or 400.
async fn resource(path: &str, form: &str) -> Reply {
    let first = post(path, form).await;
    if first.status == StatusCode::METHOD_NOT_ALLOWED || first.status == StatusCode::BAD_REQUEST {
        let sep = if path.contains('?') { '&' } else { '?' };
        let uri = if form.is_empty() {
            path.to_string()
        } else {
            format!("{path}{sep}{form}")
        };
        return get(&uri).await;
    }
    first
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn save_and_test_runs_one_plus_one_at_time_4() {
    let r = post("/api/v1/query", "query=1%2B1&time=4").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["status"], "success");
    assert_eq!(r.json["data"]["resultType"], "scalar");
    assert_eq!(r.json["data"]["result"], serde_json::json!([4, "2"]));
}

#[tokio::test]
async fn buildinfo_is_posted_then_fetched_and_reads_as_prometheus() {
    // Grafana POSTs `api/v1/status/buildinfo`; Prometheus answers 405 and Grafana retries as GET.
    let first = post("/api/v1/status/buildinfo", "").await;
    assert_eq!(first.status, StatusCode::METHOD_NOT_ALLOWED);
    let r = resource("/api/v1/status/buildinfo", "").await;
    assert_eq!(r.status, StatusCode::OK);
    let version = r.json["data"]["version"].as_str().expect("version string");
    let parts: Vec<u32> = version.split('.').filter_map(|p| p.parse().ok()).collect();
    assert!(parts.len() == 3 && (parts[0], parts[1]) >= (2, 24), "{version}");
    // An absent or empty `features` map is what makes Grafana say "Prometheus" (not Mimir).
    let features = &r.json["data"]["features"];
    assert!(features.is_null() || features.as_object().is_some_and(|m| m.is_empty()));
}

#[tokio::test]
async fn rules_are_fetched_for_recording_rule_mappings() {
    let r = resource("/api/v1/rules", "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.json["data"]["groups"].is_array());
}

#[tokio::test]
async fn exemplar_probe_with_millisecond_bounds_succeeds() {
    // The frontend sends it as a GET; the backend forwards it as a POST with the query string.
    let uri = "/api/v1/query_exemplars?query=test&start=1699998200000&end=1700000000000";
    let r = post(uri, "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["status"], "success");
    assert!(r.json["data"].is_array());
}

#[tokio::test]
async fn metric_names_metadata_and_label_names_for_the_query_editor() {
    let names = get("/api/v1/label/__name__/values?start=1700000000&end=1700000600").await;
    assert_eq!(names.status, StatusCode::OK);
    assert_eq!(strings(&names.json["data"]), ["istio_requests_total", "up"]);

    let meta = get("/api/v1/metadata").await;
    assert_eq!(meta.status, StatusCode::OK);
    assert!(meta.json["data"].is_object());

    let labels = resource(
        "/api/v1/labels",
        "start=1700000000&end=1700000600&match%5B%5D=istio_requests_total",
    )
    .await;
    assert_eq!(labels.status, StatusCode::OK);
    assert_eq!(
        strings(&labels.json["data"]),
        ["__name__", "destination_service", "job", "response_code"]
    );
}

#[tokio::test]
async fn label_values_with_match_and_escaped_names() {
    let uri = "/api/v1/label/response_code/values?start=1700000000&end=1700000600\
               &match%5B%5D=%7B__name__%3D%22istio_requests_total%22%7D";
    let r = get(uri).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(strings(&r.json["data"]), ["200", "503"]);
    // Grafana escapes names that are not legacy identifiers; an escaped legacy name decodes too.
    // (`__` stands for `_`, `_2e_` for `.`).
    let r = get("/api/v1/label/U__response__code/values").await;
    assert_eq!(strings(&r.json["data"]), ["200", "503"]);
    let r = get("/api/v1/label/U__job/values").await;
    assert_eq!(strings(&r.json["data"]), ["envoy-stats"]);
    let r = get("/api/v1/label/U__response_2e_code/values").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        strings(&r.json["data"]),
        Vec::<&str>::new(),
        "`response.code` has no values"
    );
}

#[tokio::test]
async fn series_lookup_with_grafanas_limit() {
    let r = resource(
        "/api/v1/series",
        "start=1700000000&end=1700000600&match%5B%5D=istio_requests_total&limit=40000",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let series = r.json["data"].as_array().expect("series list");
    assert_eq!(series.len(), 2);
    assert_eq!(series[0]["__name__"], "istio_requests_total");
}

#[tokio::test]
async fn panel_range_query_as_grafana_posts_it() {
    // Float-second bounds off the step grid, `step` in float seconds, the data source's
    // "Query timeout", and a custom query parameter Grafana appends to the URL.
    let form = "query=sum+by+%28response_code%29+%28rate%28istio_requests_total%5B1m%5D%29%29\
                &start=1700000030.5&end=1700000330.5&step=15&timeout=30s";
    let r = post("/api/v1/query_range?dedup=true", form).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["data"]["resultType"], "matrix");
    let result = r.json["data"]["result"].as_array().expect("matrix");
    assert_eq!(result.len(), 2);
    let first = &result[0]["values"][0];
    assert_eq!(first[0], serde_json::json!(1700000030.5));
    assert!(first[1].is_string(), "values are strings: {first}");
}

#[tokio::test]
async fn query_errors_use_the_envelope_grafana_shows() {
    let r = post("/api/v1/query_range", "query=sum(&start=1&end=2&step=1").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json["status"], "error");
    assert_eq!(r.json["errorType"], "bad_data");
    assert!(r.json["error"].as_str().is_some_and(|e| !e.is_empty()));

    let r = post("/api/v1/query", "query=up&time=4&timeout=soon").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.json["error"]
            .as_str()
            .is_some_and(|e| e.contains("\"timeout\"")),
        "{}",
        r.json
    );

    // A zero budget has always run out by the time evaluation starts.
    let r = post("/api/v1/query", "query=up&time=1700000300&timeout=0s").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json["errorType"], "timeout");
}
