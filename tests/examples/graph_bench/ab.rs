//! `--ab off|on`: one side of an A/B of the whole ingest path with the graph's upkeep, one
//! aggregator per process (`bench/graph/run.sh` runs the sides alternately, in separate
//! processes, so neither inherits the other's heap or caches).
//!
//! Per scrape, as the aggregator does once per scrape interval with the default settings:
//! the relay batches go through protobuf decode, the relay's stream decoder and the ingest
//! (store with its WAL on disk, then the edge table); then the graph's upkeep runs (the refresh
//! schedule: 1m every time, 5m every 5th, 10m every 10th; the increments health takes; the
//! derived series, written as by default every 15 s = every 3rd scrape (`--derived-every n`),
//! unless `--no-derived`). The figure is process CPU
//! (all threads) per scrape over the scrapes from `--skip` (default 10), past the table's
//! one-off ring sizing. `off` runs the same with `graph.enabled: false`; the graph's cost is
//! `on - off`.

use std::collections::HashMap;
use std::time::Duration;

use meshfed_aggregator::{Aggregator, AggregatorConfig};
use meshfed_relay::decode::StreamDecoder;
use meshfed_relay::server::Ingest;
use tokio_util::sync::CancellationToken;

use crate::{Mesh, decode_batch, encode_mesh, ms, peak_rss_mib, process_cpu};

/// One side of an A/B: an aggregator with its stream decoders (also used by `paired.rs`).
pub(crate) struct Side {
    pub(crate) agg: Aggregator,
    decoders: HashMap<String, StreamDecoder>,
    /// The derived series are written after every this many scrapes (see [`derived_every`]).
    derived_every: Option<usize>,
    scrapes: usize,
}

/// Every how many 5 s scrapes the derived series are written (`None`: an aggregator with
/// `config` writes none): `--derived-every`, default 3, the aggregator's default 15 s. The bench
/// writes them itself, as the upkeep does every `graph.derived_interval_ms`; the aggregators'
/// own timer is set past the run.
pub(crate) fn derived_every(config: &AggregatorConfig) -> Option<usize> {
    let g = &config.graph;
    (g.enabled && g.derived_series).then(|| crate::arg("--derived-every", 3).max(1))
}

impl Side {
    /// A side for `agg`, started with `config`.
    pub(crate) fn new(agg: Aggregator, config: &AggregatorConfig) -> Self {
        Self {
            agg,
            decoders: HashMap::new(),
            derived_every: derived_every(config),
            scrapes: 0,
        }
    }

    /// Ingests one scrape, then runs the graph's upkeep as of `at_ms`; returns the process CPU
    /// of each.
    pub(crate) fn scrape(
        &mut self,
        scrape: &[(String, Vec<u8>)],
        at_ms: i64,
        resolved: &mut Vec<(u64, i64, f64)>,
    ) -> (Duration, Duration) {
        let c0 = process_cpu();
        for (cluster, bytes) in scrape {
            decode_batch(&self.agg, &mut self.decoders, cluster, bytes, resolved);
            self.agg.ingest.append(cluster, resolved).unwrap();
        }
        let c1 = process_cpu();
        self.agg.graph.refresh(at_ms);
        drop(self.agg.graph.table.take_health_inputs());
        if self.derived_every.is_some_and(|n| self.scrapes.is_multiple_of(n)) {
            self.agg.write_derived(at_ms);
        }
        self.scrapes += 1;
        let c2 = process_cpu();
        (c1.saturating_sub(c0), c2.saturating_sub(c1))
    }
}

/// Runs one side; prints one `ab` line.
pub(crate) async fn run(config: AggregatorConfig, nodes: usize, edges: usize, scrapes: usize, skip: usize) {
    let (on, derived) = (config.graph.enabled, derived_every(&config));
    let Mesh {
        wire, t0, n_series, ..
    } = encode_mesh(nodes, edges, scrapes);
    let stop = CancellationToken::new();
    let mut side = Side::new(Aggregator::start(&config, stop.clone()).await.unwrap(), &config);
    let mut resolved = Vec::new();
    let (mut ingest, mut upkeep) = (Duration::ZERO, Duration::ZERO);
    for (k, scrape) in wire.iter().enumerate() {
        // Half an interval after the scrape, as a refresh between scrapes would run.
        let (i, u) = side.scrape(scrape, t0 + k as i64 * 5_000 + 2_500, &mut resolved);
        if k >= skip {
            ingest += i;
            upkeep += u;
        }
    }
    let timed = (scrapes - skip) as f64;
    println!(
        "ab {}{}: {n_series} series, scrapes {skip}..{scrapes}: CPU per scrape: ingest {:.2} ms, upkeep {:.2} ms, \
         total {:.2} ms; peak RSS {:.0} MiB",
        if on { "on" } else { "off" },
        derived.map_or(String::new(), |n| format!(" (derived series every {n} scrapes)")),
        ms(ingest) / timed,
        ms(upkeep) / timed,
        ms(ingest + upkeep) / timed,
        peak_rss_mib()
    );
    stop.cancel();
    side.agg.join().await;
}
