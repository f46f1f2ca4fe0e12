//! `--ab off|on`: one side of an A/B of the whole ingest path with the graph's upkeep, one
//! aggregator per process (`bench/graph/run.sh` runs the sides alternately, in separate
//! processes, so neither inherits the other's heap or caches).
//!
//! Per scrape, as the aggregator does once per scrape interval with the default settings:
//! the relay batches go through protobuf decode, the relay's stream decoder and the ingest
//! (store with its WAL on disk, then the edge table); then the graph's upkeep runs (the refresh
//! schedule: 1m every time, 5m every 5th, 10m every 10th; the increments health takes, and
//! those the derived series take when they are on: `--derived`). The figure is process CPU
//! (all threads) per scrape over the scrapes from `--skip` (default 10), past the table's
//! one-off ring sizing. `off` runs the same with `graph.enabled: false`; the graph's cost is
//! `on - off`.

use std::time::Duration;

use meshfed_aggregator::{Aggregator, AggregatorConfig};
use meshfed_relay::decode::StreamDecoder;
use meshfed_relay::server::Ingest;
use tokio_util::sync::CancellationToken;

use crate::{Mesh, decode_batch, encode_mesh, ms, peak_rss_mib, process_cpu};

/// Runs one side; prints one `ab` line.
pub(crate) async fn run(config: AggregatorConfig, nodes: usize, edges: usize, scrapes: usize, skip: usize) {
    let (on, derived) = (config.graph.enabled, config.graph.derived_series);
    let Mesh {
        wire, t0, n_series, ..
    } = encode_mesh(nodes, edges, scrapes);
    let stop = CancellationToken::new();
    let agg = Aggregator::start(&config, stop.clone()).await.unwrap();
    let mut decoders: std::collections::HashMap<String, StreamDecoder> = Default::default();
    let mut resolved = Vec::new();
    let (mut ingest, mut upkeep) = (Duration::ZERO, Duration::ZERO);
    for (k, scrape) in wire.iter().enumerate() {
        let c0 = process_cpu();
        for (cluster, bytes) in scrape {
            decode_batch(&agg, &mut decoders, cluster, bytes, &mut resolved);
            agg.ingest.append(cluster, &resolved).unwrap();
        }
        let c1 = process_cpu();
        // Half an interval after the scrape, as a refresh between scrapes would run.
        agg.graph.refresh(t0 + k as i64 * 5_000 + 2_500);
        drop(agg.graph.table.take_health_inputs());
        if derived {
            drop(agg.graph.table.take_increments());
        }
        let c2 = process_cpu();
        if k >= skip {
            ingest += c1.saturating_sub(c0);
            upkeep += c2.saturating_sub(c1);
        }
    }
    let timed = (scrapes - skip) as f64;
    println!(
        "ab {}: {n_series} series, scrapes {skip}..{scrapes}: CPU per scrape: ingest {:.2} ms, upkeep {:.2} ms, \
         total {:.2} ms; peak RSS {:.0} MiB",
        if on { "on" } else { "off" },
        ms(ingest) / timed,
        ms(upkeep) / timed,
        ms(ingest + upkeep) / timed,
        peak_rss_mib()
    );
    stop.cancel();
    agg.join().await;
}
