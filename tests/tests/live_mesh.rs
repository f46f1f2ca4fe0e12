//! The whole federation on real time, as `meshfed demo` runs it: simulator, one collector per
//! cluster with its own scrape loops, relay, aggregator, all over loopback sockets. What the
//! aggregator holds after the collectors stop must equal what the simulator served, exactly.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use std::collections::BTreeMap;
use std::time::Duration;

use meshfed_cli::mesh::{LocalMesh, MeshOptions};
use meshfed_sim::SimConfig;
use meshfed_tests::{get_json, vector_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_totals_equal_what_the_simulator_served() {
    let options = MeshOptions {
        sim: SimConfig {
            record_scrapes: 8,
            control_listen: None,
            scenario: Some(Vec::new()),
            ..SimConfig::default()
        },
        scrape_interval_secs: 1.0,
        // Generous, so a loaded test machine does not fail a scrape the simulator counted as served.
        scrape_timeout_ms: Some(5_000),
        // As the demo runs: mTLS with a development CA.
        tls_dir: Some(std::env::temp_dir().join(format!("meshfed-live-mesh-{}", std::process::id()))),
        ..MeshOptions::default()
    };
    let mut mesh = LocalMesh::start(options).await.expect("start");
    let pods: Vec<String> = mesh.sim.targets().into_iter().map(|t| t.pod).collect();
    // Let every pod be scraped a few times.
    for _ in 0..150 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let done = pods
            .iter()
            .all(|p| mesh.sim.served_scrapes(p).is_ok_and(|s| s.len() >= 3));
        if done {
            break;
        }
    }
    mesh.stop_collectors().await;

    // Ground truth: the last scrape each pod served, summed like the query below.
    let mut want: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut last_served = 0;
    for p in &pods {
        let scrapes = mesh.sim.served_scrapes(p).expect("served");
        assert!(scrapes.len() >= 3, "pod {p} was scraped {} times", scrapes.len());
        let last = scrapes.last().expect("a scrape");
        last_served = last_served.max(last.unix_ms);
        for (labels, v) in &last.samples {
            if labels.metric_name() == Some("istio_requests_total")
                && labels.get("reporter") == Some("destination")
            {
                let key = (
                    labels.get("source_cluster").unwrap_or_default().to_owned(),
                    labels.get("destination_cluster").unwrap_or_default().to_owned(),
                );
                *want.entry(key).or_default() += v;
            }
        }
    }
    assert!(want.len() >= 6, "several cluster pairs: {want:?}");

    // The collector stamps its own scrape time, which is after the simulator served the body, so
    // evaluate just after the last scrape.
    let time = format!("{:.3}", (last_served + 1_000) as f64 / 1000.0);
    // Every scrape succeeded (a failed one would leave staleness markers instead of values).
    let up = get_json(
        mesh.aggregator.http_addr,
        "/api/v1/query",
        &[("query", "sum(up)"), ("time", &time)],
    )
    .await
    .expect("up");
    assert_eq!(vector_of(&up).expect("vector")[0].1, pods.len() as f64);
    let query =
        r#"sum by (source_cluster, destination_cluster) (istio_requests_total{reporter="destination"})"#;
    let resp = get_json(
        mesh.aggregator.http_addr,
        "/api/v1/query",
        &[("query", query), ("time", &time)],
    )
    .await
    .expect("query");
    let got: BTreeMap<(String, String), f64> = vector_of(&resp)
        .expect("vector")
        .into_iter()
        .map(|(m, v)| ((m["source_cluster"].clone(), m["destination_cluster"].clone()), v))
        .collect();
    assert_eq!(got, want);

    // The graph spans all three clusters with cross-cluster edges.
    let graph = get_json(
        mesh.aggregator.http_addr,
        "/api/v1/graph",
        &[("time", &time), ("window", "1m")],
    )
    .await
    .expect("graph");
    assert_eq!(
        graph["data"]["clusters"],
        serde_json::json!(["cluster-1", "cluster-2", "cluster-3"])
    );
    let edges = graph["data"]["edges"].as_array().expect("edges");
    assert!(edges.iter().any(|e| e["cross_cluster"] == true), "{graph}");
    mesh.shutdown().await;
}
