//! Metric metadata end to end: two collectors (two clusters) scrape a target serving istiod's real
//! `/metrics` (the shared fixture, HELP and TYPE lines) and one serving OpenMetrics with a UNIT,
//! publish what they read over the relay, and the aggregator serves it at `/api/v1/metadata` in
//! Prometheus' shape, one entry per family however many clusters report it.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use meshfed_aggregator::{Aggregator, AggregatorConfig};
use meshfed_collector::CollectorConfig;
use meshfed_collector::config::{RelayConfig, ScrapeConfig, StaticTarget, TargetsConfig};
use meshfed_tests::get_json;
use tokio_util::sync::CancellationToken;

const OPENMETRICS: &str = "# TYPE grpc_latency_seconds histogram\n# UNIT grpc_latency_seconds seconds\n\
# HELP grpc_latency_seconds Latency of \\\"gRPC\\\" calls.\n\
grpc_latency_seconds_bucket{le=\"0.1\"} 1\ngrpc_latency_seconds_bucket{le=\"+Inf\"} 2\n\
grpc_latency_seconds_count 2\ngrpc_latency_seconds_sum 0.3\n# EOF\n";

async fn serve(istiod: String) -> SocketAddr {
    let app = Router::new()
        .route("/istiod", get(move || async move { istiod.clone() }))
        .route(
            "/om",
            get(|| async {
                (
                    [(
                        "content-type",
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    OPENMETRICS,
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

fn collector(cluster: &str, relay: SocketAddr, targets: Vec<String>) -> CollectorConfig {
    CollectorConfig {
        cluster: cluster.into(),
        collector_id: format!("{cluster}-collector"),
        relay: RelayConfig {
            endpoints: vec![format!("http://{relay}")],
            insecure: true,
            ..RelayConfig::default()
        },
        scrape: ScrapeConfig {
            interval_secs: 0.2,
            timeout_ms: 2_000,
            ..ScrapeConfig::default()
        },
        targets: TargetsConfig {
            static_targets: targets
                .into_iter()
                .map(|url| StaticTarget {
                    url,
                    labels: BTreeMap::new(),
                })
                .collect(),
            ..TargetsConfig::default()
        },
        listen_addr: None,
        topology: None,
        agent: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scraped_metadata_reaches_the_metadata_api() {
    let Some(dir) = meshfed_model::fixtures::fixture_dir("istio-control-plane") else {
        return;
    };
    let istiod = std::fs::read_to_string(dir.join("datadog/istio-1.5-fixture_istiod.txt")).unwrap();
    // Ground truth straight from the file: every family named by a `# TYPE` line.
    let families: BTreeSet<&str> = istiod
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next())
        .collect();
    let help = "The unix timestamp, in seconds, when Citadel cert chain will expire. A negative time indicates the cert is expired.";
    assert!(istiod.contains(&format!(
        "# HELP citadel_server_cert_chain_expiry_timestamp {help}\n"
    )));

    let target = serve(istiod.clone()).await;
    let stop = CancellationToken::new();
    let agg_config = AggregatorConfig {
        relay_listen: "127.0.0.1:0".into(),
        http_listen: "127.0.0.1:0".into(),
        insecure: true,
        ..AggregatorConfig::default()
    };
    let aggregator = Aggregator::start(&agg_config, stop.clone()).await.unwrap();
    let urls = vec![format!("http://{target}/istiod"), format!("http://{target}/om")];
    let mut collectors = Vec::new();
    for cluster in ["east", "west"] {
        let config = collector(cluster, aggregator.relay_addr, urls.clone());
        collectors.push(tokio::spawn(meshfed_collector::run(config, stop.child_token())));
    }

    let want = families.len() + 1;
    let mut all = serde_json::Value::Null;
    for _ in 0..100 {
        all = get_json(aggregator.http_addr, "/api/v1/metadata", &[])
            .await
            .unwrap();
        if all["data"].as_object().is_some_and(|d| d.len() >= want) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(all["status"], "success", "{all}");
    let data = all["data"].as_object().unwrap();
    let got: BTreeSet<&str> = data.keys().map(String::as_str).collect();
    let mut expected = families.clone();
    expected.insert("grpc_latency_seconds");
    assert_eq!(got, expected, "families");
    // Both clusters report identical metadata: one entry per family.
    assert!(
        data.values().all(|v| v.as_array().is_some_and(|a| a.len() == 1)),
        "{all}"
    );
    assert_eq!(
        data["citadel_server_cert_chain_expiry_timestamp"][0],
        serde_json::json!({"type": "gauge", "help": help, "unit": ""})
    );
    assert_eq!(
        data["grpc_latency_seconds"][0],
        serde_json::json!({"type": "histogram", "help": "Latency of \"gRPC\" calls.", "unit": "seconds"})
    );

    let one = get_json(
        aggregator.http_addr,
        "/api/v1/metadata",
        &[("metric", "grpc_latency_seconds")],
    )
    .await
    .unwrap();
    assert_eq!(one["data"].as_object().map(|d| d.len()), Some(1), "{one}");
    let two = get_json(aggregator.http_addr, "/api/v1/metadata", &[("limit", "2")])
        .await
        .unwrap();
    assert_eq!(two["data"].as_object().map(|d| d.len()), Some(2), "{two}");

    stop.cancel();
    for c in collectors {
        let _ = c.await;
    }
    aggregator.join().await;
}
