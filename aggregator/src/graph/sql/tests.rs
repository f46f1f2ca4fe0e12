#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::Float64Type;
use meshfed_model::Labels;

use super::*;
use crate::graph::istio::Name;
use crate::health::HealthPolicy;

fn requests(src: &str, dst: &str, code: &str) -> Labels {
    Labels::from_pairs([
        ("__name__", "istio_requests_total"),
        ("reporter", "source"),
        ("source_workload", src),
        ("source_workload_namespace", "shop"),
        ("source_cluster", "c1"),
        ("destination_workload", dst),
        ("destination_workload_namespace", "shop"),
        ("destination_service_name", dst),
        ("destination_service_namespace", "shop"),
        ("destination_cluster", "c2"),
        ("request_protocol", "http"),
        ("response_code", code),
    ])
}

/// A graph with `frontend → cart` (9/s ok, 1/s 503) and `frontend → pay` (2/s ok), 61 s of
/// samples 1 s apart, refreshed at the last one; health evaluated on the same data.
fn fixture() -> (SessionContext, Arc<GraphService>, Arc<HealthModel>) {
    let graph = Arc::new(GraphService::new(&["1m".into(), "5m".into()]).unwrap());
    let health = Arc::new(HealthModel::new(HealthPolicy::default()));
    let series = [
        (requests("frontend", "cart", "200"), 9.0),
        (requests("frontend", "cart", "503"), 1.0),
        (requests("frontend", "pay", "200"), 2.0),
    ];
    for (i, (l, _)) in series.iter().enumerate() {
        graph.table.observe_series(i as u64, l);
    }
    let fresh: HashMap<Name, i64> = [(Arc::from("c1"), 0), (Arc::from("c2"), 0)].into_iter().collect();
    for s in 0..=60 {
        let t = 1_000_000 + s * 1_000;
        let batch: Vec<_> = (0..series.len())
            .map(|i| (i as u64, t, series[i].1 * s as f64))
            .collect();
        graph.table.append("c1", &batch);
        if s % 5 == 0 {
            health.evaluate(&graph.table, t, &fresh);
        }
    }
    graph.refresh_all(1_060_000);
    let ctx = SessionContext::new();
    register(&ctx, Arc::clone(&graph), Arc::clone(&health)).unwrap();
    (ctx, graph, health)
}

async fn rows(ctx: &SessionContext, sql: &str) -> RecordBatch {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

fn strings(b: &RecordBatch, col: usize) -> Vec<String> {
    let a = b.column(col).as_string::<i32>();
    (0..a.len()).map(|i| a.value(i).to_owned()).collect()
}

fn floats(b: &RecordBatch, col: usize) -> Vec<f64> {
    b.column(col).as_primitive::<Float64Type>().values().to_vec()
}

#[tokio::test]
async fn edges_table_holds_every_window_of_the_graph_api() {
    let (ctx, graph, _) = fixture();
    let b = rows(
        &ctx,
        "SELECT window, source, destination, destination_name, request_rate, rate_5xx, \
         error_rate_percent, share_percent, cross_cluster \
         FROM edges ORDER BY window, destination",
    )
    .await;
    assert_eq!(
        strings(&b, 0),
        ["1m", "1m", "5m", "5m"],
        "one row per edge per window"
    );
    assert_eq!(strings(&b, 1)[0], "c1/shop/frontend");
    assert_eq!(strings(&b, 2)[..2], ["c2/shop/cart", "c2/shop/pay"]);
    assert_eq!(strings(&b, 3)[..2], ["cart", "pay"]);
    // The same figures the graph API gives, to the bit.
    let api = graph.graph("1m", None, &GraphQuery::default()).unwrap();
    for (i, e) in api.edges.iter().enumerate() {
        assert_eq!(floats(&b, 4)[i], e.request_rate);
        assert_eq!(floats(&b, 6)[i], e.error_rate_percent);
        assert_eq!(floats(&b, 7)[i], e.share_percent);
    }
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    assert!(close(floats(&b, 4)[0], 10.0), "{:?}", floats(&b, 4));
    assert!(close(floats(&b, 5)[0], 1.0));
    assert!(close(floats(&b, 6)[0], 10.0));
    assert!(close(floats(&b, 7)[1], 100.0 * 2.0 / 12.0));
    assert!(b.column(8).as_boolean().value(0), "c1 → c2 is cross-cluster");

    // Any SQL over it: requests per destination cluster in the 1m window.
    let b = rows(
        &ctx,
        "SELECT destination_cluster, sum(request_rate) AS rps FROM edges \
         WHERE window = '1m' GROUP BY destination_cluster",
    )
    .await;
    assert_eq!(strings(&b, 0), ["c2"]);
    assert!(close(floats(&b, 1)[0], 12.0));
}

#[tokio::test]
async fn health_table_lists_every_service_with_its_state() {
    let (ctx, _, health) = fixture();
    let b = rows(
        &ctx,
        "SELECT cluster, namespace, service, state, error_percent FROM health ORDER BY service",
    )
    .await;
    assert_eq!(strings(&b, 2), ["cart", "pay"]);
    assert_eq!(strings(&b, 0), ["c2", "c2"]);
    let want: Vec<String> = health
        .rows()
        .iter()
        .map(|r| r.health.state.as_str().to_owned())
        .collect();
    assert_eq!(strings(&b, 3), want);
    assert_eq!(strings(&b, 3)[0], "failing", "10% errors");
    let errors = b.column(4).as_primitive::<Float64Type>();
    assert!((errors.value(0) - 10.0).abs() < 1e-9, "{errors:?}");
}

#[test]
fn empty_graph_and_health_give_empty_tables() {
    let graph = GraphService::new(&["1m".into()]).unwrap();
    assert_eq!(edges_batch(&graph).unwrap().num_rows(), 0);
    assert_eq!(health_batch(&[]).unwrap().num_rows(), 0);
}
