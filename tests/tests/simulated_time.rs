//! End-to-end over real sockets (simulator pods → Scraper → relay → aggregator → PromQL/graph) on a
//! manual clock, so minutes of simulated traffic run in well under a second of test time and every
//! expectation comes from the simulator's ground truth.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use meshfed_aggregator::graph::GraphQuery;
use meshfed_sim::{Fault, FaultRequest, SimConfig};
use meshfed_tests::SteppedMesh;

const STEP_MS: u64 = 5_000;

fn config() -> SimConfig {
    meshfed_tests::stepped_config()
}

async fn run_until(mesh: &mut SteppedMesh, from_ms: u64, to_ms: u64) {
    mesh.run_until(from_ms, to_ms, STEP_MS).await.expect("run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_pair_rates_match_configured_rates_within_one_percent() {
    let mut mesh = SteppedMesh::start(config()).await.expect("start");
    run_until(&mut mesh, 0, 120_000).await;
    // Calls leaving the mesh (PassthroughCluster) have no destination reporter.
    let mut truth = std::collections::BTreeMap::new();
    for e in mesh
        .sim
        .mesh()
        .edge_rates()
        .into_iter()
        .filter(|e| e.destination_workload != "unknown")
    {
        *truth
            .entry((e.source_cluster, e.destination_cluster))
            .or_insert(0.0) += e.rate_rps;
    }
    let got = mesh
        .query(
            r#"sum by (source_cluster, destination_cluster) (rate(istio_requests_total{reporter="destination"}[1m]))"#,
            120_000,
        )
        .expect("query");
    assert!(!got.is_empty());
    let mut cross = 0;
    for (labels, rate) in &got {
        let key = (
            labels.get("source_cluster").unwrap_or("").to_owned(),
            labels.get("destination_cluster").unwrap_or("").to_owned(),
        );
        let want = truth.get(&key).copied().unwrap_or(0.0);
        assert!(want > 0.0, "unexpected pair {key:?} with rate {rate}");
        let rel = (rate - want).abs() / want;
        assert!(
            rel < 0.01,
            "{key:?}: got {rate}, configured {want} ({:.3}% off)",
            rel * 100.0
        );
        if key.0 != key.1 {
            cross += 1;
        }
    }
    assert_eq!(got.len(), truth.len(), "every configured pair is reported");
    assert!(cross >= 3, "cross-cluster pairs exist");
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_fault_shows_in_graph_edge_error_rate() {
    let mut mesh = SteppedMesh::start(config()).await.expect("start");
    mesh.sim
        .inject(FaultRequest {
            fault: Fault::ErrorRate {
                cluster: "cluster-1".into(),
                workload: "web-api".into(),
                fraction: 0.3,
                code: 503,
            },
            delay_secs: 60.0,
            duration_secs: Some(120.0),
        })
        .expect("inject");
    run_until(&mut mesh, 0, 150_000).await;
    let at = mesh.unix_ms(150_000);
    let g = mesh
        .aggregator
        .graph
        .graph("1m", Some(at), &GraphQuery::default())
        .expect("graph");
    let into_faulty: Vec<_> = g
        .edges
        .iter()
        .filter(|e| e.target.starts_with("cluster-1/") && e.target.ends_with("/web-api"))
        .collect();
    assert!(
        !into_faulty.is_empty(),
        "edges into cluster-1 web-api: {:?}",
        g.edges
    );
    for e in &into_faulty {
        assert!(
            (e.error_rate_percent - 30.0).abs() <= 2.0,
            "{} -> {}: {}%",
            e.source,
            e.target,
            e.error_rate_percent
        );
    }
    // The healthy replica in cluster-2 is unaffected.
    for e in g
        .edges
        .iter()
        .filter(|e| e.target.starts_with("cluster-2/") && e.target.ends_with("/web-api"))
    {
        assert!(
            e.error_rate_percent < 1.0,
            "{} -> {}: {}%",
            e.source,
            e.target,
            e.error_rate_percent
        );
    }
    assert_eq!(g.clusters, ["cluster-1", "cluster-2", "cluster-3"]);
    assert!(g.edges.iter().any(|e| e.cross_cluster));
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_restart_does_not_make_rates_negative_or_spike() {
    let mut mesh = SteppedMesh::start(config()).await.expect("start");
    let pod = mesh
        .sim
        .targets()
        .into_iter()
        .find(|t| t.cluster == "cluster-1" && t.workload == "web-api")
        .expect("a web-api pod in cluster-1")
        .pod;
    mesh.sim
        .inject(FaultRequest {
            fault: Fault::PodRestart { pod: pod.clone() },
            delay_secs: 82.0,
            duration_secs: None,
        })
        .expect("inject");
    run_until(&mut mesh, 0, 180_000).await;
    let truth = mesh
        .sim
        .mesh()
        .configured_rate(|e| e.destination_cluster == "cluster-1" && e.destination_workload == "web-api");
    let q = r#"sum(rate(istio_requests_total{reporter="destination",destination_cluster="cluster-1",destination_workload="web-api"}[1m]))"#;
    let per_series = format!(r#"rate(istio_requests_total{{pod="{pod}"}}[1m])"#);
    let mut t = 70_000;
    while t <= 180_000 {
        let got = mesh.query(q, t).expect("query");
        let rate = got[0].1;
        assert!(
            rate >= 0.9 * truth && rate <= 1.02 * truth,
            "at {t}: rate {rate}, configured {truth}"
        );
        for (labels, r) in mesh.query(&per_series, t).expect("query") {
            assert!(r >= 0.0, "negative rate {r} for {labels} at {t}");
        }
        t += STEP_MS;
    }
    let resets = mesh
        .query(
            &format!(r#"max(resets(istio_requests_total{{pod="{pod}"}}[3m]))"#),
            180_000,
        )
        .expect("resets");
    assert_eq!(resets[0].1, 1.0, "the restart is visible as one counter reset");
    mesh.shutdown().await;
}
