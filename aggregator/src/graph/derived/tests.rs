#![allow(clippy::unwrap_used)]

use meshfed_store::StoreOptions;

use super::*;
use crate::graph::istio::Endpoint;

fn endpoint(cluster: &str, workload: &str, version: &str) -> Endpoint {
    let n = |s: &str| -> crate::graph::istio::Name { Arc::from(s) };
    Endpoint {
        cluster: n(cluster),
        namespace: n("shop"),
        workload: n(workload),
        app: n(workload),
        version: n(version),
        service: n(if workload == "web" { "" } else { workload }),
        service_namespace: n("shop"),
    }
}

fn edge(dst_version: &str, protocol: &str) -> Arc<FineEdge> {
    Arc::new(FineEdge {
        source: endpoint("cluster-1", "web", "v1"),
        destination: endpoint("cluster-2", "cart", dst_version),
        protocol: Arc::from(protocol),
    })
}

fn increments(requests: f64, errors: f64, buckets: &[(f64, f64)]) -> EdgeStats {
    EdgeStats {
        requests,
        errors,
        duration_sum_ms: 250.0 * requests,
        duration_buckets: buckets.to_vec(),
        ..EdgeStats::default()
    }
}

/// The value of the series `name{client,server[,le]}` at `at_ms`.
fn value(store: &Store, name: &str, le: Option<&str>, at_ms: i64) -> Option<f64> {
    let mut pairs = vec![
        ("__name__", name),
        ("client", "cluster-1/shop/web"),
        ("server", "cluster-2/shop/cart"),
        ("client_cluster", "cluster-1"),
        ("server_cluster", "cluster-2"),
        ("client_namespace", "shop"),
        ("server_namespace", "shop"),
    ];
    if let Some(le) = le {
        pairs.push(("le", le));
    }
    let r = store.get(&Labels::from_pairs(pairs))?;
    let mut out = Vec::new();
    store.read_samples(r, at_ms, at_ms, &mut out);
    out.first().map(|s| s.value)
}

/// The value of the pair's bucket `le` at `at_ms`.
fn bucket(store: &Store, le: &str, at_ms: i64) -> Option<f64> {
    value(
        store,
        "traces_service_graph_request_server_seconds_bucket",
        Some(le),
        at_ms,
    )
}

#[test]
fn edges_of_one_client_and_server_add_into_one_pair_of_running_totals() {
    let store = Arc::new(Store::new(StoreOptions::default()));
    let mut d = DerivedSeries::new(Arc::clone(&store));
    let buckets = [(100.0, 6.0), (1000.0, 9.0), (f64::INFINITY, 10.0)];
    // Two versions of the destination, over two protocols: one client/server pair.
    let (v1, v2) = (edge("v1", "http"), edge("v2", "grpc"));
    d.add(0, &v1, &increments(10.0, 1.0, &buckets));
    d.add(1, &v2, &increments(10.0, 0.0, &buckets));
    d.write(1_000, []);
    assert_eq!(d.pairs(), 1);
    let at = |name, le| value(&store, name, le, 1_000).unwrap();
    assert_eq!(at("traces_service_graph_request_total", None), 20.0);
    assert_eq!(at("traces_service_graph_request_failed_total", None), 1.0);
    assert_eq!(at("traces_service_graph_request_server_seconds_sum", None), 5.0);
    assert_eq!(
        at("traces_service_graph_request_server_seconds_count", None),
        20.0
    );
    // Istio's bounds in milliseconds become seconds.
    assert_eq!(bucket(&store, "0.1", 1_000), Some(12.0));
    assert_eq!(bucket(&store, "1", 1_000), Some(18.0));
    assert_eq!(bucket(&store, "+Inf", 1_000), Some(20.0));

    // Totals run on; a write without increments repeats them.
    d.add(0, &v1, &increments(5.0, 0.0, &buckets[..0]));
    d.write(2_000, []);
    d.write(3_000, []);
    assert_eq!(
        value(&store, "traces_service_graph_request_total", None, 2_000),
        Some(25.0)
    );
    assert_eq!(
        value(&store, "traces_service_graph_request_total", None, 3_000),
        Some(25.0)
    );
}

#[test]
fn a_new_bucket_bound_adds_its_series() {
    let store = Arc::new(Store::new(StoreOptions::default()));
    let mut d = DerivedSeries::new(Arc::clone(&store));
    let e = edge("v1", "http");
    d.add(0, &e, &increments(2.0, 0.0, &[(f64::INFINITY, 2.0)]));
    d.write(1_000, []);
    d.add(0, &e, &increments(2.0, 0.0, &[(50.0, 1.0), (f64::INFINITY, 2.0)]));
    d.write(2_000, []);
    assert_eq!(bucket(&store, "0.05", 2_000), Some(1.0));
    assert_eq!(bucket(&store, "+Inf", 2_000), Some(4.0));
    assert_eq!(bucket(&store, "+Inf", 1_000), Some(2.0));
}

#[test]
fn buckets_of_different_bounds_merge_and_stay_cumulative() {
    let store = Arc::new(Store::new(StoreOptions::default()));
    let mut d = DerivedSeries::new(Arc::clone(&store));
    let (a, b) = (edge("v1", "http"), edge("v2", "http"));
    // `a`'s proxies have a 100 ms bound that `b`'s lack (custom buckets mid-rollout).
    d.add(
        0,
        &a,
        &increments(20.0, 0.0, &[(50.0, 10.0), (100.0, 15.0), (f64::INFINITY, 20.0)]),
    );
    d.add(1, &b, &increments(3.0, 0.0, &[(50.0, 1.0), (f64::INFINITY, 3.0)]));
    d.write(1_000, []);
    let at_1s = |le| bucket(&store, le, 1_000);
    // `b`'s one request at most 50 ms was also at most 100 ms.
    assert_eq!(at_1s("0.05"), Some(11.0));
    assert_eq!(at_1s("0.1"), Some(16.0));
    assert_eq!(at_1s("+Inf"), Some(23.0));
    // A bound new to the pair starts from what the pair counted below it.
    let c = edge("v3", "http");
    d.add(
        2,
        &c,
        &increments(1.0, 0.0, &[(50.0, 0.0), (75.0, 1.0), (f64::INFINITY, 1.0)]),
    );
    d.write(2_000, []);
    let at_2s = |le| bucket(&store, le, 2_000);
    assert_eq!(at_2s("0.05"), Some(11.0));
    assert_eq!(at_2s("0.075"), Some(12.0));
    assert_eq!(at_2s("0.1"), Some(17.0));
    assert_eq!(at_2s("+Inf"), Some(24.0));
}

#[test]
fn an_edge_id_the_table_reused_counts_for_its_new_pair() {
    let store = Arc::new(Store::new(StoreOptions::default()));
    let mut d = DerivedSeries::new(Arc::clone(&store));
    d.add(0, &edge("v1", "http"), &increments(3.0, 0.0, &[]));
    // Id 0 now belongs to an edge from another client.
    let other = Arc::new(FineEdge {
        source: endpoint("cluster-3", "batch", "v1"),
        ..(*edge("v1", "http")).clone()
    });
    d.add(0, &other, &increments(4.0, 0.0, &[]));
    d.write(1_000, []);
    assert_eq!(d.pairs(), 2);
    assert_eq!(
        value(&store, "traces_service_graph_request_total", None, 1_000),
        Some(3.0)
    );
}

#[test]
fn an_idle_pair_is_no_longer_written_and_starts_from_zero_when_traffic_returns() {
    let store = Arc::new(Store::new(StoreOptions::default()));
    let mut d = DerivedSeries::new(Arc::clone(&store));
    let e = edge("v1", "http");
    d.add(0, &e, &increments(7.0, 0.0, &[]));
    d.write(0, []);
    d.write(IDLE_MS, []);
    assert_eq!(d.pairs(), 1, "idle for exactly the limit: still written");
    d.write(IDLE_MS + 5_000, []);
    assert_eq!(d.pairs(), 0);
    assert_eq!(
        value(
            &store,
            "traces_service_graph_request_total",
            None,
            IDLE_MS + 5_000
        ),
        None
    );
    d.add(0, &e, &increments(1.0, 0.0, &[]));
    d.write(IDLE_MS + 10_000, []);
    assert_eq!(
        value(
            &store,
            "traces_service_graph_request_total",
            None,
            IDLE_MS + 10_000
        ),
        Some(1.0),
        "a counter reset, which rate() handles"
    );
}

#[test]
fn increments_of_zero_leave_a_pair_idle() {
    let store = Arc::new(Store::new(StoreOptions::default()));
    let mut d = DerivedSeries::new(Arc::clone(&store));
    let e = edge("v1", "http");
    d.add(0, &e, &increments(7.0, 0.0, &[(f64::INFINITY, 7.0)]));
    d.write(0, []);
    // The proxy keeps exporting counters that no longer move.
    let zeros = increments(0.0, 0.0, &[(f64::INFINITY, 0.0)]);
    for k in 1..=(IDLE_MS / 5_000 + 1) {
        d.add(0, &e, &zeros);
        d.write(k * 5_000, []);
    }
    assert_eq!(d.pairs(), 0);
    // A pair that never had traffic is not written at all.
    d.add(1, &edge("v2", "http"), &zeros);
    d.write(IDLE_MS + 10_000, []);
    assert_eq!(d.pairs(), 0);
}

#[test]
fn other_series_are_written_alongside() {
    let store = Arc::new(Store::new(StoreOptions::default()));
    let mut d = DerivedSeries::new(Arc::clone(&store));
    let health = Labels::from_pairs([("__name__", "meshfed_service_health"), ("state", "healthy")]);
    d.write(1_000, [(health.clone(), 1.0)]);
    d.write(2_000, [(health.clone(), 0.0)]);
    let mut out = Vec::new();
    store.read_samples(store.get(&health).unwrap(), 0, 2_000, &mut out);
    let values: Vec<f64> = out.iter().map(|s| s.value).collect();
    assert_eq!(values, [1.0, 0.0]);
}
