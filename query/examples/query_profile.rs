//! Runs the query benchmark's dashboard panels (`bench/query-vs-prometheus/queries.py`) in
//! process against a store directory, without HTTP: a driver for `perf record` and for quick
//! before/after timings of the engine alone.
//!
//! ```text
//! cargo run --release -p meshfed-query --example query_profile -- \
//!     --store DIR --end <unix s> [--reps 20] [--only <substring of a class>]
//! ```
//!
//! The range is the hour before `--end` at a 15 s step, as the benchmark sends it. Prints one line
//! per class: median and minimum milliseconds over the rounds and the number of output series.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A benchmark driver: a panic is the failure report.

use std::time::Instant;

use meshfed_query::{Engine, EngineOptions, Value};
use meshfed_store::{Store, StoreOptions};

const SVC: &str = r#"destination_service=~"reviews.ns-0.svc.cluster.local""#;
const WL: &str = r#"destination_workload_namespace=~"ns-0", destination_workload=~"reviews-v1""#;

fn queries() -> Vec<(&'static str, String)> {
    vec![
        (
            "mesh: total rate",
            r#"round(sum(irate(istio_requests_total{reporter="destination"}[1m])), 0.001)"#.into(),
        ),
        (
            "mesh: success ratio",
            r#"sum(rate(istio_requests_total{reporter="destination",response_code!~"5.*"}[1m])) / sum(rate(istio_requests_total{reporter="destination"}[1m]))"#.into(),
        ),
        (
            "mesh: rate by workload",
            r#"sum(rate(istio_requests_total{reporter="source", response_code="200"}[1m])) by (destination_workload, destination_workload_namespace)"#.into(),
        ),
        (
            "mesh: p90 by workload",
            r#"histogram_quantile(0.90, sum(rate(istio_request_duration_milliseconds_bucket{reporter="source"}[1m])) by (le, destination_workload, destination_workload_namespace))"#.into(),
        ),
        (
            "service: rate",
            format!(r#"round(sum(irate(istio_requests_total{{reporter="destination",{SVC}}}[5m])), 0.001)"#),
        ),
        (
            "service: p50/p90/p99",
            format!(
                r#"histogram_quantile(0.99, sum(irate(istio_request_duration_milliseconds_bucket{{reporter="destination",{SVC}}}[1m])) by (le))"#
            ),
        ),
        (
            "service: by source and code",
            format!(
                r#"sum(irate(istio_requests_total{{reporter="destination",{SVC}}}[5m])) by (source_workload, source_workload_namespace, response_code)"#
            ),
        ),
        (
            "workload: inbound p99 by source",
            format!(
                r#"histogram_quantile(0.99, sum(irate(istio_request_duration_milliseconds_bucket{{reporter="destination",{WL}}}[1m])) by (source_workload, source_workload_namespace, le))"#
            ),
        ),
        (
            "workload: topk outbound",
            r#"topk(5, sum(rate(istio_requests_total{reporter="source",source_workload_namespace=~"ns-0",source_workload=~"reviews-v1"}[5m])) by (destination_service))"#.into(),
        ),
    ]
}

fn main() {
    let mut dir = None;
    let mut end_s: Option<i64> = None;
    let mut reps = 20usize;
    let mut only: Option<String> = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--store" => dir = Some(value),
            "--end" => end_s = Some(value.parse().expect("--end: unix seconds")),
            "--reps" => reps = value.parse().expect("--reps: a number"),
            "--only" => only = Some(value),
            other => panic!("unknown flag {other}"),
        }
    }
    let dir = dir.expect("--store DIR is required");
    let end_ms = end_s.expect("--end is required") * 1000;
    let start_ms = end_ms - 3_600_000;
    let store = Store::open(std::path::Path::new(&dir), StoreOptions::default()).expect("open store");
    let options = EngineOptions {
        max_samples: 1_000_000_000,
        ..EngineOptions::default()
    };
    let engine = Engine::new(std::sync::Arc::new(store), options);
    for (class, q) in queries() {
        if only.as_deref().is_some_and(|o| !class.contains(o)) {
            continue;
        }
        let mut times = Vec::with_capacity(reps);
        let mut out_series = 0;
        for _ in 0..reps.max(1) {
            let t = Instant::now();
            let v = engine.query_range(&q, start_ms, end_ms, 15_000).expect("query");
            times.push(t.elapsed().as_secs_f64() * 1e3);
            if let Value::Matrix(m) = v {
                out_series = m.len();
            }
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{class:<34} p50 {:>9.2} ms  min {:>9.2} ms  series {out_series}",
            times[times.len() / 2],
            times[0]
        );
    }
}
