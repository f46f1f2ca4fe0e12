//! Graph API latency and graph-maintenance cost at a chosen size (see `bench/graph/run.sh`).
//!
//! Starts a real aggregator (in-memory store), defines `--edges` synthetic Istio edges between
//! `--nodes` workloads over three clusters (each edge: `istio_requests_total` for 200 and 503 and
//! the 20-series duration histogram, full Istio label sets, source-reported), ingests `--scrapes`
//! scrapes 5 s apart through the relay sink, refreshes the graph, then times `GET /api/v1/graph`
//! over HTTP. Also times the edge table's share of ingest: the same batches through a bare
//! `EdgeTable` against the whole sink (store + WAL-less commit + table).

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use meshfed_aggregator::graph::EdgeTable;
use meshfed_aggregator::{Aggregator, AggregatorConfig};
use meshfed_model::Labels;
use meshfed_relay::server::Ingest;
use tokio_util::sync::CancellationToken;

const LE: [&str; 20] = [
    "0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000", "30000",
    "60000", "300000", "600000", "1800000", "3600000", "+Inf",
];

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().unwrap())
}

fn node(i: usize) -> (String, String, String) {
    (
        format!("cluster-{}", i % 3 + 1),
        format!("ns-{}", i % 50),
        format!("wl-{i}"),
    )
}

fn edge_series(src: usize, dst: usize) -> Vec<(Labels, f64)> {
    let (sc, sns, sw) = node(src);
    let (dc, dns, dw) = node(dst);
    let base = |name: &str| {
        let mut b = Labels::from_pairs([
            ("__name__", name),
            ("cluster", sc.as_str()),
            ("namespace", sns.as_str()),
            ("pod", &format!("{sw}-0")),
            ("reporter", "source"),
            ("source_cluster", sc.as_str()),
            ("source_workload", sw.as_str()),
            ("source_workload_namespace", sns.as_str()),
            ("source_canonical_service", sw.as_str()),
            ("source_canonical_revision", "v1"),
            (
                "source_principal",
                &format!("spiffe://cluster.local/ns/{sns}/sa/{sw}"),
            ),
            ("destination_cluster", dc.as_str()),
            ("destination_workload", dw.as_str()),
            ("destination_workload_namespace", dns.as_str()),
            ("destination_canonical_service", dw.as_str()),
            ("destination_canonical_revision", "v1"),
            ("destination_service", &format!("{dw}.{dns}.svc.cluster.local")),
            ("destination_service_name", dw.as_str()),
            ("destination_service_namespace", dns.as_str()),
            ("request_protocol", "http"),
            ("connection_security_policy", "unknown"),
        ])
        .to_builder();
        b.set("response_flags", "-");
        b
    };
    let mut out = Vec::new();
    for (code, share) in [("200", 0.98), ("503", 0.02)] {
        let mut b = base("istio_requests_total");
        b.set("response_code", code);
        out.push((b.build(), share));
    }
    for (i, le) in LE.iter().enumerate() {
        let mut b = base("istio_request_duration_milliseconds_bucket");
        b.set("response_code", "200");
        b.set("le", *le);
        out.push((b.build(), ((i + 1) as f64 / LE.len() as f64).min(1.0)));
    }
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let nodes = arg("--nodes", 2_000);
    let edges = arg("--edges", 20_000);
    let scrapes = arg("--scrapes", 13);
    let requests = arg("--requests", 200);
    assert!(edges <= nodes * (nodes - 1), "too many edges for the nodes");

    let stop = CancellationToken::new();
    let config = AggregatorConfig {
        relay_listen: "127.0.0.1:0".into(),
        http_listen: "127.0.0.1:0".into(),
        insecure: true,
        // Refreshed by hand below, so background work does not blur the timings.
        graph: meshfed_aggregator::config::GraphConfig {
            refresh_ms: 3_600_000,
            health_interval_ms: 3_600_000,
            derived_series: false,
            ..Default::default()
        },
        ..AggregatorConfig::default()
    };
    let agg = Aggregator::start(&config, stop.clone()).await.unwrap();

    // Define the series as a collector stream would.
    let t = Instant::now();
    let mut series: Vec<(u64, f64)> = Vec::new();
    let mut labels_of = Vec::new();
    for i in 0..edges {
        let src = i % nodes;
        let dst = (src + 1 + i / nodes) % nodes;
        for (labels, share) in edge_series(src, dst) {
            let r = agg.ingest.register_series(&labels);
            series.push((r, share * (1.0 + (i % 7) as f64)));
            labels_of.push(labels);
        }
    }
    eprintln!("defined {} series in {:.1?}", series.len(), t.elapsed());

    let t0 = meshfed_aggregator::http::now_ms() - (scrapes as i64) * 5_000;
    let batch = |k: usize| -> Vec<(u64, i64, f64)> {
        series
            .iter()
            .map(|&(r, rate)| (r, t0 + k as i64 * 5_000, (rate * 5.0 * k as f64).floor()))
            .collect()
    };
    let mut sink = Duration::ZERO;
    for k in 0..scrapes {
        let b = batch(k);
        let t = Instant::now();
        for chunk in b.chunks(10_000) {
            agg.ingest.append("bench", chunk).unwrap();
        }
        sink += t.elapsed();
    }
    // The same batches through a bare table: the graph's share of the ingest path.
    let table = EdgeTable::new(600_000);
    for (i, l) in labels_of.iter().enumerate() {
        table.observe_series(series[i].0, l);
    }
    let mut graph_only = Duration::ZERO;
    for k in 0..scrapes {
        let b = batch(k);
        let t = Instant::now();
        for chunk in b.chunks(10_000) {
            table.append("bench", chunk);
        }
        graph_only += t.elapsed();
    }
    let now = meshfed_aggregator::http::now_ms();
    let t = Instant::now();
    agg.graph.refresh(now);
    let refresh = t.elapsed();
    eprintln!(
        "edge table: {:?} (series, fine edges); bare table {:?}; store series {}",
        agg.graph.table.size(),
        table.size(),
        agg.store.stats().series
    );

    let client = reqwest::Client::new();
    let url = format!("http://{}/api/v1/graph?window=1m", agg.http_addr);
    let t = Instant::now();
    let body = client.get(&url).send().await.unwrap().text().await.unwrap();
    let first = t.elapsed();
    let graph: serde_json::Value = serde_json::from_str(&body).unwrap();
    let (n_nodes, n_edges) = (
        graph["data"]["nodes"].as_array().unwrap().len(),
        graph["data"]["edges"].as_array().unwrap().len(),
    );
    let mut times = Vec::with_capacity(requests);
    for _ in 0..requests {
        let t = Instant::now();
        let r = client.get(&url).send().await.unwrap();
        let _ = r.bytes().await.unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    let samples = series.len() * scrapes;
    // Per 5 s of data: one scrape's table appends plus one refresh (three windows).
    let per_scrape_graph = graph_only / scrapes as u32 + refresh;
    let per_scrape_sink = sink / scrapes as u32;
    println!(
        "graph {n_nodes} nodes / {n_edges} edges ({} series, {samples} samples, {} KiB JSON)",
        series.len(),
        body.len() / 1024
    );
    println!(
        "render of the graph JSON (once per refresh, in the background after each refresh): {:.1} ms",
        first.as_secs_f64() * 1e3
    );
    println!(
        "GET /api/v1/graph: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {requests} requests",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3
    );
    println!(
        "ingest per scrape: whole sink {:.1} ms, of which edge table {:.1} ms; refresh (1m+5m+10m) {:.1} ms; \
         graph maintenance = {:.1}% of ingest CPU",
        per_scrape_sink.as_secs_f64() * 1e3,
        (graph_only / scrapes as u32).as_secs_f64() * 1e3,
        refresh.as_secs_f64() * 1e3,
        100.0 * per_scrape_graph.as_secs_f64()
            / (per_scrape_sink.as_secs_f64() - (graph_only / scrapes as u32).as_secs_f64())
    );
    stop.cancel();
    agg.join().await;
}
