//! End to end with the demo topology and the shipped `web-api.global` VirtualDestination: fail
//! `web-api` in cluster-1 → its health goes bad → the controller shifts `web-api.global` to
//! cluster-2 → the collectors' agents apply it to the simulator → the simulator's traffic and the
//! telemetry that follows show the shift; after the fault clears, traffic shifts back.
//!
//! Real time, 1 s scrapes. Prints the fault-to-shift times (the target, ≤ 2 scrape intervals +
//! 2 s, is reported, not asserted: timing belongs to benchmarks).

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use meshfed_cli::mesh::{LocalMesh, MeshOptions};
use meshfed_sim::SimConfig;
use meshfed_sim::faults::Fault;
use meshfed_tests::{get_json, vector_of};

const SHIPPED: &str = include_str!("../../deploy/examples/virtualdestination-web-api.yaml");
const KEY: &str = "web.web-api";

fn weights(mesh: &LocalMesh) -> BTreeMap<String, u32> {
    mesh.aggregator
        .controller
        .decision(KEY)
        .map(|d| d.weights)
        .unwrap_or_default()
}

/// Every frontend's rule in the simulator sends web-api to `cluster` only.
fn sim_routes_to(mesh: &LocalMesh, cluster: &str) -> bool {
    let rules = mesh.sim.mesh().routing().rules;
    rules.len() == 3
        && rules.iter().all(|r| {
            r.destination_service == "web-api" && r.weights.len() == 1 && r.weights.contains_key(cluster)
        })
}

async fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_web_api_shifts_web_api_global_to_cluster_2_and_back() {
    let dir = std::env::temp_dir().join(format!("meshfed-failover-{}", std::process::id()));
    let vd_dir = dir.join("vd");
    std::fs::create_dir_all(&vd_dir).unwrap();
    // The shipped resource with a shorter hysteresis and cooldown, to keep the test short.
    let vd = SHIPPED
        .replace("hysteresis: 30s", "hysteresis: 3s")
        .replace("cooldown: 30s", "cooldown: 3s");
    std::fs::write(vd_dir.join("web-api.yaml"), vd).unwrap();
    let out = dir.join("out");
    let options = MeshOptions {
        sim: SimConfig {
            control_listen: Some("127.0.0.1:0".into()),
            scenario: Some(Vec::new()),
            ..SimConfig::default()
        },
        scrape_interval_secs: 1.0,
        scrape_timeout_ms: Some(900),
        controller_dir: Some(vd_dir),
        config_out: Some(out.clone()),
        ..MeshOptions::default()
    };
    let mesh = LocalMesh::start(options).await.unwrap();
    let one = |c: &str| BTreeMap::from([(c.to_owned(), 100)]);

    // Converged: all healthy, priority order, applied in every cluster with frontends.
    let converged = wait_for("routing to cluster-1 applied", Duration::from_secs(40), || {
        weights(&mesh) == one("cluster-1") && sim_routes_to(&mesh, "cluster-1")
    });
    tokio::select! {
        _ = converged => {}
        _ = tokio::time::sleep(Duration::from_secs(39)) => {
            panic!(
                "not converged: decision {:?}, simulator rules {:?}, status {:?}",
                mesh.aggregator.controller.decision(KEY),
                mesh.sim.mesh().routing().rules,
                mesh.aggregator.controller.statuses(),
            );
        }
    }
    for c in ["cluster-1", "cluster-2", "cluster-3"] {
        let files = std::fs::read_dir(out.join(c)).unwrap().count();
        assert!(files >= 4, "{c}: {files} files in --config-out");
    }

    let fault = mesh
        .sim
        .inject(Fault::ErrorRate {
            cluster: "cluster-1".into(),
            workload: "web-api".into(),
            fraction: 0.3,
            code: 503,
        })
        .unwrap();
    let decided = wait_for(
        "the decision to move to cluster-2",
        Duration::from_secs(30),
        || weights(&mesh) == one("cluster-2"),
    )
    .await;
    let applied = decided
        + wait_for("the simulator to obey it", Duration::from_secs(10), || {
            sim_routes_to(&mesh, "cluster-2")
        })
        .await;
    println!(
        "fault-to-shift: decided after {:.2} s, applied in the simulator after {:.2} s (1 s scrapes; target 2 × 1 s + 2 s = 4 s)",
        decided.as_secs_f64(),
        applied.as_secs_f64()
    );
    let truth = mesh.sim.mesh().configured_rate(|e| {
        e.source_workload == "frontend"
            && e.destination_workload == "web-api"
            && e.destination_cluster == "cluster-1"
    });
    assert_eq!(truth, 0.0, "no frontend calls web-api in cluster-1 any more");

    // The telemetry that follows: every frontend's calls land in cluster-2.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let http = mesh.aggregator.http_addr;
    let q = "sum by (destination_cluster) (increase(istio_requests_total{reporter=\"source\",source_workload=\"frontend\",destination_workload=\"web-api\"}[3s]))";
    let resp = get_json(http, "/api/v1/query", &[("query", q)]).await.unwrap();
    let by_cluster: BTreeMap<String, f64> = vector_of(&resp)
        .unwrap()
        .into_iter()
        .map(|(l, v)| (l.get("destination_cluster").cloned().unwrap_or_default(), v))
        .collect();
    assert!(
        by_cluster.get("cluster-2").copied().unwrap_or(0.0) > 0.0,
        "{by_cluster:?}"
    );
    assert_eq!(
        by_cluster.get("cluster-1").copied().unwrap_or(0.0),
        0.0,
        "{by_cluster:?}"
    );

    // Recovery: the fault ends, health clears, and after the hysteresis traffic returns.
    assert!(mesh.sim.clear_fault(fault));
    let back = wait_for("the shift back to cluster-1", Duration::from_secs(60), || {
        weights(&mesh) == one("cluster-1") && sim_routes_to(&mesh, "cluster-1")
    })
    .await;
    println!(
        "recovery: routed back to cluster-1 {:.1} s after the fault cleared",
        back.as_secs_f64()
    );
    let status = get_json(http, "/api/v1/virtualdestinations", &[]).await.unwrap();
    let resource = &status["data"]["resources"][0];
    assert_eq!(resource["key"], KEY);
    for d in resource["delivery"].as_array().unwrap() {
        assert!(d["errors"].as_array().unwrap().is_empty(), "{d}");
    }
    mesh.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
