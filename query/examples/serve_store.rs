//! Serves a persistent meshfed store directory over the Prometheus HTTP API
//! ([`meshfed_query::router`]), for `bench/query-vs-prometheus`: the store is filled by
//! `store/examples/remote_write_load.rs --store DIR`, then opened here read-mostly and queried over
//! HTTP exactly as Prometheus is.
//!
//! ```text
//! cargo run --release -p meshfed-query --example serve_store -- \
//!     --store DIR [--listen 127.0.0.1:19091] [--max-samples 50000000] [--timeout-secs 120]
//! ```
//!
//! Prints `ready series=<n>` on stdout once it listens; runs until killed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A benchmark driver: a panic is the failure report.

use std::sync::Arc;

use meshfed_query::{Engine, EngineOptions};
use meshfed_store::{Store, StoreOptions};

fn main() {
    let mut dir = None;
    let mut listen = "127.0.0.1:19091".to_owned();
    let mut options = EngineOptions::default();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--store" => dir = Some(value),
            "--listen" => listen = value,
            "--max-samples" => options.max_samples = value.parse().expect("--max-samples: a number"),
            "--timeout-secs" => {
                options.timeout =
                    std::time::Duration::from_secs(value.parse().expect("--timeout-secs: a number"));
            }
            other => panic!("unknown flag {other}"),
        }
    }
    let dir = dir.expect("--store DIR is required");
    let store = Store::open(std::path::Path::new(&dir), StoreOptions::default()).expect("open store");
    let series = store.stats().series;
    let engine = Arc::new(Engine::new(Arc::new(store), options));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen).await.expect("bind");
        println!("ready series={series}");
        axum::serve(listener, meshfed_query::router(engine))
            .await
            .expect("serve");
    });
}
