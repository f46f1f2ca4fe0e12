//! The incrementally maintained service graph and health against the PromQL engine and the
//! simulator's ground truth, on simulated time.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use std::collections::BTreeMap;

use meshfed_aggregator::graph::{Graph, GraphQuery};
use meshfed_aggregator::health::HealthState;
use meshfed_model::Labels;
use meshfed_sim::{Fault, FaultRequest, SimConfig};
use meshfed_tests::SteppedMesh;

const STEP_MS: u64 = 5_000;

fn config() -> SimConfig {
    meshfed_tests::stepped_config()
}

fn graph(mesh: &SteppedMesh, window: &str, at_ms: u64) -> Graph {
    mesh.aggregator
        .graph
        .graph(window, Some(mesh.unix_ms(at_ms)), &GraphQuery::default())
        .unwrap()
}

/// The graph's edges that carry requests, by source and target id.
fn edges_with_requests(g: &Graph) -> BTreeMap<(String, String), &meshfed_aggregator::graph::Edge> {
    g.edges
        .iter()
        .filter(|e| e.request_rate > 0.0)
        .map(|e| ((e.source.clone(), e.target.clone()), e))
        .collect()
}

/// The workload-graph node ids of a series, as the graph draws them.
fn edge_of(l: &Labels) -> (String, String) {
    let get = |k: &str| l.get(k).filter(|v| !v.is_empty()).unwrap_or("unknown");
    let src_cluster = get("source_cluster");
    let mut dst_cluster = get("destination_cluster");
    if dst_cluster == "unknown" {
        dst_cluster = src_cluster;
    }
    let src = format!(
        "{src_cluster}/{}/{}",
        get("source_workload_namespace"),
        get("source_workload")
    );
    let dst = if get("destination_workload") == "unknown" {
        format!(
            "{dst_cluster}/{}/svc:{}",
            get("destination_service_namespace"),
            get("destination_service_name")
        )
    } else {
        format!(
            "{dst_cluster}/{}/{}",
            get("destination_workload_namespace"),
            get("destination_workload")
        )
    };
    (src, dst)
}

const EDGE_LABELS: &str = "source_cluster, source_workload_namespace, source_workload, destination_cluster, \
     destination_workload_namespace, destination_workload, destination_service_namespace, destination_service_name";

/// Kiali's reporter choice as PromQL: the source's report for callers in the mesh, the
/// destination's for callers outside it.
fn primary(metric: &str, extra: &str, window: &str) -> String {
    format!(
        "rate({metric}{{reporter=\"source\",source_workload!=\"unknown\"{extra}}}[{window}]) or \
         rate({metric}{{reporter=\"destination\",source_workload=\"unknown\"{extra}}}[{window}])"
    )
}

fn by_edge(rows: Vec<(Labels, f64)>) -> BTreeMap<(String, String), f64> {
    let mut out = BTreeMap::new();
    for (l, v) in rows {
        *out.entry(edge_of(&l)).or_insert(0.0) += v;
    }
    out
}

/// Quantiles cannot be added: each edge must come from exactly one PromQL row.
fn unique_by_edge(rows: Vec<(Labels, f64)>) -> BTreeMap<(String, String), f64> {
    let mut out = BTreeMap::new();
    for (l, v) in rows {
        let key = edge_of(&l);
        assert!(
            out.insert(key.clone(), v).is_none(),
            "two quantile rows for {key:?}"
        );
    }
    out
}

/// 30% of `web-api`'s responses in cluster-1 fail with 503 from `delay_secs` on.
fn web_api_errors(delay_secs: f64) -> FaultRequest {
    FaultRequest {
        fault: Fault::ErrorRate {
            cluster: "cluster-1".into(),
            workload: "web-api".into(),
            fraction: 0.3,
            code: 503,
        },
        delay_secs,
        duration_secs: None,
    }
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-6 * want.abs().max(1e-9)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_equal_promql_over_the_same_series_for_every_window() {
    let mut mesh = SteppedMesh::start(config()).await.unwrap();
    // A fault so error rates are not all zero.
    mesh.sim.inject(web_api_errors(400.0)).unwrap();
    let end = 660_000;
    mesh.run_until(0, end, STEP_MS).await.unwrap();
    // An instant between scrapes, so extrapolation to the window's edges is exercised.
    let at = end + 2_500;
    for window in ["1m", "5m", "10m"] {
        let g = graph(&mesh, window, at);
        let total = by_edge(
            mesh.query(
                &format!(
                    "sum by ({EDGE_LABELS}) ({})",
                    primary("istio_requests_total", "", window)
                ),
                at,
            )
            .unwrap(),
        );
        let errors = by_edge(
            mesh.query(
                &format!(
                    "sum by ({EDGE_LABELS}) ({} or {})",
                    primary("istio_requests_total", ",response_code=~\"5..|0\"", window),
                    primary("istio_requests_total", ",grpc_response_status!~\"0|\"", window)
                ),
                at,
            )
            .unwrap(),
        );
        let p95 = unique_by_edge(
            mesh.query(
                &format!(
                    "histogram_quantile(0.95, sum by ({EDGE_LABELS}, le) ({}))",
                    primary("istio_request_duration_milliseconds_bucket", "", window)
                ),
                at,
            )
            .unwrap(),
        );
        let http_edges = edges_with_requests(&g);
        let want_edges: Vec<_> = total
            .iter()
            .filter(|(_, v)| **v > 0.0)
            .map(|(k, _)| k.clone())
            .collect();
        let mut got_edges: Vec<_> = http_edges.keys().cloned().collect();
        got_edges.sort();
        assert_eq!(got_edges, want_edges, "window {window}: edge sets differ");
        assert!(got_edges.len() > 20, "a real graph: {}", got_edges.len());
        let mut with_errors = 0;
        for (key, want) in total.iter().filter(|(_, v)| **v > 0.0) {
            let e = http_edges[key];
            assert!(
                close(e.request_rate, *want),
                "{window} {key:?}: rate {} vs {want}",
                e.request_rate
            );
            let err = errors.get(key).copied().unwrap_or(0.0);
            let want_pct = 100.0 * err / want;
            assert!(
                close(e.error_rate_percent, want_pct),
                "{window} {key:?}: error {}% vs {want_pct}%",
                e.error_rate_percent
            );
            if err > 0.0 {
                with_errors += 1;
            }
            match (e.latency_ms.p95, p95.get(key)) {
                (Some(got), Some(want)) if want.is_finite() => {
                    assert!(close(got, *want), "{window} {key:?}: p95 {got} vs {want}");
                }
                (got, want) => assert!(
                    got.is_none() && want.is_none_or(|w| !w.is_finite()),
                    "{window} {key:?}: p95 {got:?} vs {want:?}"
                ),
            }
        }
        assert!(with_errors > 0, "{window}: the fault shows");
    }
    mesh.shutdown().await;
}

/// `traces_service_graph_*`, as Grafana's service-graph view queries them, against the workload
/// graph's edges. The derived series are written half a scrape interval after each scrape, as
/// the upkeep's refresh would, so their 1m rate at `t + 2.5 s` covers the same scrapes as the
/// graph's at `t`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn derived_service_graph_series_give_the_graphs_rates_through_promql() {
    // The background writes stay out of the way (they would write at the wall clock, after
    // which the store refuses the simulated times as out of order).
    let mut mesh = SteppedMesh::start_with(config(), |c| c.graph.derived_interval_ms = 3_600_000)
        .await
        .unwrap();
    mesh.sim.inject(web_api_errors(0.0)).unwrap();
    let end = 300_000;
    let mut t = 0;
    while t <= end {
        mesh.scrape_at(t).await.unwrap();
        mesh.flush().await.unwrap();
        mesh.aggregator.write_derived(mesh.unix_ms(t + STEP_MS / 2));
        t += STEP_MS;
    }
    let g = graph(&mesh, "1m", end);
    let edges = edges_with_requests(&g);
    let at = end + STEP_MS / 2;
    let by_pair = |q: &str| -> BTreeMap<(String, String), f64> {
        mesh.query(q, at)
            .unwrap()
            .into_iter()
            .map(|(l, v)| {
                let get = |k| l.get(k).unwrap().to_owned();
                ((get("client"), get("server")), v)
            })
            .collect()
    };
    let total = by_pair("sum by (client, server) (rate(traces_service_graph_request_total[1m]))");
    let failed = by_pair("sum by (client, server) (rate(traces_service_graph_request_failed_total[1m]))");
    let count =
        by_pair("sum by (client, server) (rate(traces_service_graph_request_server_seconds_count[1m]))");
    let p95 = by_pair(
        "histogram_quantile(0.95, sum by (client, server, le) \
         (rate(traces_service_graph_request_server_seconds_bucket[1m])))",
    );
    let pairs: Vec<_> = total.iter().filter(|(_, v)| **v > 0.0).map(|(k, _)| k).collect();
    assert_eq!(pairs, edges.keys().collect::<Vec<_>>());
    assert!(pairs.len() > 20, "a real graph: {}", pairs.len());
    let mut with_errors = 0;
    for (key, e) in &edges {
        assert!(
            close(total[key], e.request_rate),
            "{key:?}: {} vs {}",
            total[key],
            e.request_rate
        );
        let pct = 100.0 * failed.get(key).copied().unwrap_or(0.0) / total[key];
        assert!(
            close(pct, e.error_rate_percent),
            "{key:?}: {pct}% vs {}%",
            e.error_rate_percent
        );
        with_errors += usize::from(pct > 0.0);
        if let Some(want) = e.latency_ms.p95 {
            let got = p95[key];
            assert!(close(got * 1000.0, want), "{key:?}: p95 {got} s vs {want} ms");
            // Every request the histogram counted is one the edge counts.
            assert!(
                close(count[key], total[key]),
                "{key:?}: count {} vs {}",
                count[key],
                total[key]
            );
        }
    }
    assert!(with_errors > 0, "the fault shows");
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_rates_match_the_simulators_configured_rates() {
    let mut mesh = SteppedMesh::start(config()).await.unwrap();
    mesh.run_until(0, 120_000, STEP_MS).await.unwrap();
    let mut truth: BTreeMap<(String, String), f64> = BTreeMap::new();
    for e in mesh.sim.mesh().edge_rates() {
        if e.destination_workload == "unknown" {
            continue; // Calls leaving the mesh end at a service node; compared below by count.
        }
        let key = (
            format!(
                "{}/{}/{}",
                e.source_cluster, e.source_namespace, e.source_workload
            ),
            format!(
                "{}/{}/{}",
                e.destination_cluster, e.destination_namespace, e.destination_workload
            ),
        );
        *truth.entry(key).or_default() += e.rate_rps;
    }
    let g = graph(&mesh, "1m", 120_000);
    let got: BTreeMap<(String, String), f64> = g
        .edges
        .iter()
        .filter(|e| e.request_rate > 0.0 && !e.target.contains("/svc:"))
        .map(|e| ((e.source.clone(), e.target.clone()), e.request_rate))
        .collect();
    assert_eq!(got.keys().collect::<Vec<_>>(), truth.keys().collect::<Vec<_>>());
    for (k, want) in &truth {
        let rel = (got[k] - want).abs() / want;
        assert!(rel < 0.01, "{k:?}: {} vs configured {want}", got[k]);
    }
    assert_eq!(g.clusters, ["cluster-1", "cluster-2", "cluster-3"]);
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_turns_health_failing_within_two_scrapes_and_back_after_recovery() {
    let mut mesh = SteppedMesh::start(config()).await.unwrap();
    let fault_at = 60_000;
    let fault_end = 120_000;
    mesh.sim
        .inject(FaultRequest {
            fault: Fault::ErrorRate {
                cluster: "cluster-1".into(),
                workload: "web-api".into(),
                fraction: 0.3,
                code: 503,
            },
            delay_secs: fault_at as f64 / 1000.0,
            duration_secs: Some((fault_end - fault_at) as f64 / 1000.0),
        })
        .unwrap();
    let health = mesh.aggregator.health.clone();
    let web_api = |cluster: &str| {
        health
            .rows()
            .into_iter()
            .find(|r| r.cluster == cluster && r.service == "web-api")
            .map(|r| r.health.state)
    };
    let mut failing_at = None;
    let mut healthy_again_at = None;
    let mut t = 0;
    while t <= 200_000 {
        mesh.scrape_at(t).await.unwrap();
        mesh.flush().await.unwrap();
        mesh.aggregator.evaluate_health();
        let s = web_api("cluster-1");
        if t < fault_at {
            assert_ne!(s, Some(HealthState::Failing), "before the fault at {t}");
        }
        if failing_at.is_none() && s == Some(HealthState::Failing) {
            failing_at = Some(t);
        }
        if t > fault_end
            && failing_at.is_some()
            && healthy_again_at.is_none()
            && s == Some(HealthState::Healthy)
        {
            healthy_again_at = Some(t);
        }
        assert_ne!(
            web_api("cluster-2"),
            Some(HealthState::Failing),
            "cluster-2 is unaffected at {t}"
        );
        t += STEP_MS;
    }
    let failing_at = failing_at.expect("cluster-1 web-api became Failing");
    assert!(
        failing_at <= fault_at + 2 * STEP_MS,
        "Failing {} ms after the fault",
        failing_at - fault_at
    );
    let healthy_again_at = healthy_again_at.expect("healthy again after recovery");
    let clear_ms = (mesh.aggregator.health.policy().clear_after_secs * 1000.0) as u64;
    assert!(
        healthy_again_at <= fault_end + 2 * STEP_MS + clear_ms,
        "Healthy again {} ms after recovery",
        healthy_again_at - fault_end
    );
    assert!(
        healthy_again_at >= fault_end + clear_ms,
        "hysteresis holds Failing for the clear window"
    );
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_health_and_stream_endpoints_over_http() {
    let mut mesh = SteppedMesh::start(config()).await.unwrap();
    mesh.run_until(0, 60_000, STEP_MS).await.unwrap();
    mesh.aggregator.evaluate_health();
    let addr = mesh.aggregator.http_addr;
    let time = format!("{}", mesh.unix_ms(60_000) as f64 / 1000.0);
    let client = reqwest::Client::new();
    let get = |path: &str, query: &[(&str, &str)]| {
        let url = reqwest::Url::parse_with_params(&format!("http://{addr}{path}"), query).unwrap();
        client.get(url).send()
    };
    let time = time.as_str();

    for graph_type in ["workload", "app", "versionedApp", "service"] {
        let r = get("/api/v1/graph", &[("time", time), ("graphType", graph_type)])
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{graph_type}");
        let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        let edges = body["data"]["edges"].as_array().unwrap();
        assert!(edges.len() > 5, "{graph_type}: {body}");
        assert_eq!(body["data"]["graph_type"], graph_type);
        let nodes = body["data"]["nodes"].as_array().unwrap();
        if graph_type == "service" {
            assert!(nodes.iter().any(|n| n["type"] == "service"));
        }
    }
    // Filters: only edges touching cluster-3.
    let body: serde_json::Value = serde_json::from_str(
        &get("/api/v1/graph", &[("time", time), ("clusters", "cluster-3")])
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    for e in body["data"]["edges"].as_array().unwrap() {
        let (s, d) = (e["source"].as_str().unwrap(), e["target"].as_str().unwrap());
        assert!(
            s.starts_with("cluster-3/") || d.starts_with("cluster-3/"),
            "{s} -> {d}"
        );
    }
    // Bad parameters are 400 with Prometheus' error envelope.
    for (k, v) in [("window", "7m"), ("graphType", "pods"), ("format", "png")] {
        let r = get("/api/v1/graph", &[(k, v)]).await.unwrap();
        assert_eq!(r.status(), 400, "{k}={v}");
        let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert_eq!(body["errorType"], "bad_data");
        assert!(body["error"].as_str().unwrap().contains(v), "{body}");
    }
    let dot = get("/api/v1/graph", &[("time", time), ("format", "dot")])
        .await
        .unwrap();
    assert_eq!(dot.headers()["content-type"], "text/vnd.graphviz");
    assert!(dot.text().await.unwrap().starts_with("digraph"));

    let frames: serde_json::Value = serde_json::from_str(
        &get("/api/v1/graph/nodegraph", &[("time", time)])
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(frames["nodes"].as_array().unwrap().len() > 5);
    let fields: serde_json::Value = serde_json::from_str(
        &get("/api/v1/graph/nodegraph/api/graph/fields", &[])
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(fields["edges_fields"][0]["field_name"], "id");

    let health: serde_json::Value =
        serde_json::from_str(&get("/api/v1/health", &[]).await.unwrap().text().await.unwrap()).unwrap();
    let rows = health["data"].as_array().unwrap();
    assert!(
        rows.iter()
            .any(|r| r["service"] == "web-api" && r["cluster"] == "cluster-1"),
        "{health}"
    );
    assert!(rows.iter().all(|r| r["state"] == "healthy"), "{health}");

    // The same graph and health through SQL: the latest snapshot of each window. The
    // background refresh (on the wall clock, where this mesh has no data) may replace the
    // snapshot between the two reads: then both are read again.
    let sql = |q: &str| {
        client
            .post(format!("http://{addr}/api/v1/sql"))
            .header("content-type", "text/plain")
            .body(q.to_owned())
            .send()
    };
    let at = mesh.unix_ms(60_000);
    let mut compared = false;
    for _ in 0..3 {
        mesh.aggregator.graph.refresh_all(at);
        let api: serde_json::Value = serde_json::from_str(
            &get("/api/v1/graph", &[("window", "1m")])
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        )
        .unwrap();
        let r = sql(
            "SELECT source, destination, request_rate, CAST(ts AS BIGINT) FROM edges \
             WHERE window = '1m' ORDER BY source, destination",
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        let rows_of = body["data"]["rows"].as_array().unwrap();
        let stamps_ok = api["data"]["timestamp"].as_f64() == Some(at as f64 / 1000.0)
            && rows_of.iter().all(|r| r[3].as_i64() == Some(at));
        if !stamps_ok {
            continue;
        }
        let got: Vec<(String, String, f64)> = rows_of
            .iter()
            .map(|r| {
                (
                    r[0].as_str().unwrap().to_owned(),
                    r[1].as_str().unwrap().to_owned(),
                    r[2].as_f64().unwrap(),
                )
            })
            .collect();
        let mut want: Vec<(String, String, f64)> = api["data"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["source"].as_str().unwrap().to_owned(),
                    e["target"].as_str().unwrap().to_owned(),
                    e["request_rate"].as_f64().unwrap(),
                )
            })
            .collect();
        want.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        assert!(want.len() > 5);
        assert_eq!(got.len(), want.len(), "{body}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!((&g.0, &g.1), (&w.0, &w.1));
            assert!(close(g.2, w.2), "{g:?} vs {w:?}");
        }
        compared = true;
        break;
    }
    assert!(compared, "the snapshot kept changing under the comparison");
    let r = sql("SELECT count(*) AS n FROM health WHERE state = 'healthy'")
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(body["data"]["rows"][0][0], rows.len(), "{body}");

    // The stream sends edges at each refresh (the aggregator's refresh is 5 s by default; the
    // first tick is immediate).
    let mut stream = get("/api/v1/stream", &[("edges", "true")]).await.unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), stream.chunk())
        .await
        .expect("an event within 10 s")
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&chunk);
    assert!(text.starts_with("event: edges"), "{text}");
    drop(stream);
    mesh.shutdown().await;
}
