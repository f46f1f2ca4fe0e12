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

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A router over recent samples (federation only looks back 5m from now).
fn recent_app() -> axum::Router {
    let store = Arc::new(Store::new(StoreOptions::default()));
    let now = now_ms();
    let add = |pairs: &[(&str, &str)], samples: &[(i64, f64)]| {
        let r = store.get_or_create(&Labels::from_pairs(pairs.iter().copied()));
        for (t, v) in samples {
            store.append(r, *t, *v).expect("append");
        }
    };
    add(
        &[("__name__", "up"), ("job", "api"), ("instance", "a")],
        &[(now - 30_000, 1.0), (now - 15_000, 1.0)],
    );
    add(
        &[("__name__", "up"), ("job", "api"), ("instance", "gone")],
        &[(now - 30_000, 1.0), (now - 15_000, meshfed_model::stale_nan())],
    );
    add(
        &[("__name__", "up"), ("job", "api"), ("instance", "old")],
        &[(now - 600_000, 1.0)],
    );
    add(
        &[
            ("__name__", "istio_requests_total"),
            ("job", "api"),
            ("Zone", "x"),
        ],
        &[(now - 10_000, 42.0)],
    );
    router(Arc::new(Engine::new(store, EngineOptions::default())))
}

#[tokio::test]
async fn federate_latest_samples_in_text_format() {
    let resp = recent_app()
        .oneshot(
            Request::get("/federate?match[]=up&match[]=%7Bjob%3D%22api%22%7D")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let body = to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    let body = String::from_utf8_lossy(&body);
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 4, "{body}");
    assert_eq!(lines[0], "# TYPE istio_requests_total untyped");
    assert!(
        lines[1].starts_with(r#"istio_requests_total{Zone="x",job="api"} 42 "#),
        "{body}"
    );
    assert_eq!(lines[2], "# TYPE up untyped");
    assert!(lines[3].starts_with(r#"up{instance="a",job="api"} 1 "#), "{body}");
    let ts: i64 = lines[3]
        .rsplit(' ')
        .next()
        .and_then(|t| t.parse().ok())
        .expect("ts");
    assert!((now_ms() - ts - 15_000).abs() < 5_000, "{ts}");

    // Like Prometheus 2.42: no match[] selects nothing.
    let resp = recent_app()
        .oneshot(Request::get("/federate").body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    let body = to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    assert!(body.is_empty());
    let resp = recent_app()
        .oneshot(
            Request::get("/federate?match[]=rate(up[1m])")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn rules_alerts_and_format_query() {
    let (status, body) = get("/api/v1/rules").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, r#"{"status":"success","data":{"groups":[]}}"#);
    let (_, body) = get("/api/v1/alerts").await;
    assert_eq!(body, r#"{"status":"success","data":{"alerts":[]}}"#);
    let (status, body) = get("/api/v1/format_query?query=sum%20by(job)(rate(up%5B5m%5D))").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        r#"{"status":"success","data":"sum by (job) (rate(up[5m]))"}"#
    );
    let (status, body) = get("/api/v1/format_query?query=sum(").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains(r#""errorType":"bad_data""#), "{body}");
}

#[tokio::test]
async fn gzip_when_asked() {
    let resp = app()
        .oneshot(
            Request::get("/api/v1/labels")
                .header("accept-encoding", "gzip")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    let resp = app()
        .oneshot(
            Request::get("/api/v1/labels")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert!(resp.headers().get("content-encoding").is_none());
}
