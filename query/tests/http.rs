//! The Prometheus HTTP API, exercised without a socket.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use meshfed_model::Labels;
use meshfed_query::{Engine, EngineOptions, router};
use meshfed_store::{Store, StoreOptions};
use tower::ServiceExt;

type Fixture<'a> = (&'a [(&'a str, &'a str)], &'a [(i64, f64)]);

fn app() -> axum::Router {
    let store = Arc::new(Store::new(StoreOptions::default()));
    let series: &[Fixture<'_>] = &[
        (
            &[("__name__", "up"), ("job", "api"), ("instance", "a")],
            &[(1_700_000_000_000, 1.0), (1_700_000_015_000, 1.0)],
        ),
        (
            &[("__name__", "up"), ("job", "web"), ("instance", "b")],
            &[(1_700_000_000_000, 0.0)],
        ),
        (
            &[("__name__", "ratio"), ("job", "api")],
            &[(1_700_000_000_000, f64::NAN)],
        ),
    ];
    for (labels, samples) in series {
        let r = store.get_or_create(&Labels::from_pairs(labels.iter().copied()));
        for (t, v) in samples.iter() {
            store.append(r, *t, *v).expect("append");
        }
    }
    router(Arc::new(Engine::new(store, EngineOptions::default())))
}

async fn call(req: Request<Body>) -> (StatusCode, String) {
    let resp = app().oneshot(req).await.expect("router is infallible");
    let status = resp.status();
    let body = to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    (status, String::from_utf8_lossy(&body).to_string())
}

async fn get(uri: &str) -> (StatusCode, String) {
    call(Request::get(uri).body(Body::empty()).expect("request")).await
}

#[tokio::test]
async fn instant_query_shape() {
    let (status, body) = get("/api/v1/query?query=up%7Bjob%3D%22api%22%7D&time=1700000000.123").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","instance":"a","job":"api"},"value":[1700000000.123,"1"]}]}}"#
    );
}

#[tokio::test]
async fn special_values_and_scalars() {
    let (_, body) = get("/api/v1/query?query=ratio&time=2023-11-14T22:13:20Z").await;
    assert!(body.contains(r#""value":[1700000000,"NaN"]"#), "{body}");
    let (_, body) = get("/api/v1/query?query=1%2F0&time=1700000000").await;
    assert_eq!(
        body,
        r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"+Inf"]}}"#
    );
}

#[tokio::test]
async fn range_query_post_form() {
    let req = Request::post("/api/v1/query_range")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(
            "query=sum+by+(job)(up)&start=1700000000&end=1700000030&step=15s",
        ))
        .expect("request");
    let (status, body) = call(req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"job":"api"},"values":[[1700000000,"1"],[1700000015,"1"],[1700000030,"1"]]},{"metric":{"job":"web"},"values":[[1700000000,"0"],[1700000015,"0"],[1700000030,"0"]]}]}}"#
    );
}

#[tokio::test]
async fn error_envelopes() {
    let (status, body) = get("/api/v1/query?query=sum(").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.starts_with(r#"{"status":"error","errorType":"bad_data","error":"#),
        "{body}"
    );
    let (status, _) = get("/api/v1/query_range?query=up&start=10&end=0&step=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = get("/api/v1/query_range?query=up&start=0&end=10&step=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = get("/api/v1/query?query=up+*+on()+up&time=1700000000").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains(r#""errorType":"execution""#), "{body}");
}

#[tokio::test]
async fn metadata_endpoints() {
    let (status, body) = get("/api/v1/labels").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        r#"{"status":"success","data":["__name__","instance","job"]}"#
    );
    let (_, body) = get("/api/v1/label/job/values?match[]=up").await;
    assert_eq!(body, r#"{"status":"success","data":["api","web"]}"#);
    let (_, body) =
        get("/api/v1/series?match[]=up%7Bjob%3D%22web%22%7D&start=1699999000&end=1700001000").await;
    assert_eq!(
        body,
        r#"{"status":"success","data":[{"__name__":"up","instance":"b","job":"web"}]}"#
    );
    let (status, _) = get("/api/v1/series").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, body) = get("/api/v1/series?match[]=up&limit=1").await;
    assert_eq!(body.matches("__name__").count(), 1, "{body}");
    let (_, body) = get("/api/v1/status/buildinfo").await;
    assert!(body.contains(r#""version":"2.42.0""#), "{body}");
}
