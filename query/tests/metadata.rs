//! `/api/v1/metadata` over a fixed [`MetadataSource`], without a socket: Prometheus' shape and its
//! `metric`, `limit` and `limit_per_metric` parameters.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use meshfed_query::{Engine, EngineOptions, MetadataSource, MetricMetadata, router};
use meshfed_store::{Store, StoreOptions};
use tower::ServiceExt;

struct Fixed(Vec<(String, Vec<MetricMetadata>)>);

impl MetadataSource for Fixed {
    fn metadata(&self, metric: Option<&str>) -> Vec<(String, Vec<MetricMetadata>)> {
        self.0
            .iter()
            .filter(|(name, _)| metric.is_none_or(|m| m == name))
            .cloned()
            .collect()
    }
}

fn entry(t: &str, help: &str, unit: &str) -> MetricMetadata {
    MetricMetadata {
        metric_type: t.into(),
        help: help.into(),
        unit: unit.into(),
    }
}

async fn get(with_source: bool, uri: &str) -> (StatusCode, String) {
    let store = Arc::new(Store::new(StoreOptions::default()));
    let mut engine = Engine::new(store, EngineOptions::default());
    if with_source {
        engine = engine.with_metadata(Arc::new(Fixed(vec![
            (
                "istio_requests_total".into(),
                vec![entry("counter", "Total requests.", "")],
            ),
            (
                "up".into(),
                vec![entry("gauge", "Target up.", ""), entry("unknown", "", "")],
            ),
            (
                "z_seconds".into(),
                vec![entry("histogram", "Latency \"quoted\".", "seconds")],
            ),
        ])));
    }
    let req = Request::get(uri).body(Body::empty()).expect("request");
    let resp = router(Arc::new(engine)).oneshot(req).await.expect("infallible");
    let status = resp.status();
    let body = to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    (status, String::from_utf8_lossy(&body).to_string())
}

#[tokio::test]
async fn all_families_in_prometheus_shape() {
    let (status, body) = get(true, "/api/v1/metadata").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        concat!(
            r#"{"status":"success","data":{"istio_requests_total":[{"type":"counter","help":"Total requests.","unit":""}],"#,
            r#""up":[{"type":"gauge","help":"Target up.","unit":""},{"type":"unknown","help":"","unit":""}],"#,
            r#""z_seconds":[{"type":"histogram","help":"Latency \"quoted\".","unit":"seconds"}]}}"#
        )
    );
}

#[tokio::test]
async fn parameters_filter_and_limit() {
    let (_, body) = get(true, "/api/v1/metadata?metric=up").await;
    assert!(body.contains(r#""up":["#) && !body.contains("istio"), "{body}");
    let (_, body) = get(true, "/api/v1/metadata?metric=absent").await;
    assert_eq!(body, r#"{"status":"success","data":{}}"#);
    let (_, body) = get(true, "/api/v1/metadata?limit=2").await;
    assert!(
        body.contains("istio") && body.contains(r#""up""#) && !body.contains("z_seconds"),
        "{body}"
    );
    let (_, body) = get(true, "/api/v1/metadata?limit=0").await;
    assert_eq!(body, r#"{"status":"success","data":{}}"#);
    let (_, body) = get(true, "/api/v1/metadata?limit=-1&limit_per_metric=1").await;
    assert!(body.contains("z_seconds") && !body.contains("unknown"), "{body}");
    let (_, body) = get(true, "/api/v1/metadata?limit_per_metric=0").await;
    assert!(body.contains("unknown"), "0 means no per-metric limit: {body}");
}

#[tokio::test]
async fn bad_limits_are_bad_data() {
    for uri in [
        "/api/v1/metadata?limit=x",
        "/api/v1/metadata?limit_per_metric=1.5",
    ] {
        let (status, body) = get(true, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(
            body.contains(r#""errorType":"bad_data""#) && body.contains("must be a number"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn no_source_is_an_empty_object() {
    let (status, body) = get(false, "/api/v1/metadata").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, r#"{"status":"success","data":{}}"#);
}
