//! `--ab paired`: the A/B of the whole ingest path with the graph's upkeep, with both sides in
//! one process and paired scrape by scrape, so that the machine's drift (other tenants of a
//! VM, frequency) hits both alike; separate-process runs (`--ab off|on`) differ by ±20%
//! between runs of the same side here, more than the effect measured.
//!
//! Two aggregators run side by side, one with `graph.enabled: false`; each scrape goes into
//! both, in alternating order. Before each side's turn the caches are flushed (64 MiB written
//! and read), so neither side runs on what the other left in cache: at 440,000 series the
//! store's working set is several times the last-level cache, so a scrape in production starts
//! as cold as this. Per scrape, as in `ab.rs`: protobuf decode, the relay's stream decoder and
//! the ingest (store with its WAL on disk, then the edge table); then, on the graph side, the
//! graph's upkeep (the refresh schedule and the increments health takes; the derived series'
//! with `--derived`). The figure is process CPU per scrape; the cost is the median over the
//! timed scrapes of (on - off) / off, with the mean of each side beside it.
//!
//! `--no-flush` skips the flush; `--aa` runs both sides without the graph (what the pairing
//! itself adds: it should come out near zero).

use std::hint::black_box;
use std::time::Duration;

use meshfed_aggregator::{Aggregator, AggregatorConfig};
use tokio_util::sync::CancellationToken;

use crate::ab::Side;
use crate::{Mesh, encode_mesh, ms};

/// More than the last-level cache (32 MiB here).
const FLUSH_BYTES: usize = 64 << 20;

/// Evicts what the caches hold: writes then reads every line of `buf`.
fn flush(buf: &mut [u8]) {
    for line in buf.chunks_mut(64) {
        line[0] = line[0].wrapping_add(1);
    }
    black_box(buf.iter().step_by(64).fold(0u8, |a, &b| a ^ b));
}

/// Runs both sides; prints one line per timed scrape's pair and the summary.
pub(crate) async fn run(
    off: AggregatorConfig,
    on: AggregatorConfig,
    nodes: usize,
    edges: usize,
    scrapes: usize,
    skip: usize,
) {
    let derived = on.graph.derived_series;
    let Mesh {
        wire, t0, n_series, ..
    } = encode_mesh(nodes, edges, scrapes);
    let stop = CancellationToken::new();
    let mut sides = [
        Side::new(Aggregator::start(&off, stop.clone()).await.unwrap(), false),
        Side::new(Aggregator::start(&on, stop.clone()).await.unwrap(), derived),
    ];
    // `--no-flush`: each side runs on what the previous turn (its own or the other's) left.
    let mut buf = vec![0u8; if crate::flag("--no-flush") { 0 } else { FLUSH_BYTES }];
    let mut resolved = Vec::new();
    // Per timed scrape: off total, on ingest, on upkeep.
    let mut timed: Vec<(f64, f64, f64)> = Vec::new();
    for (k, scrape) in wire.iter().enumerate() {
        // Half an interval after the scrape, as a refresh between scrapes would run.
        let at = t0 + k as i64 * 5_000 + 2_500;
        let mut got = [(Duration::ZERO, Duration::ZERO); 2];
        let order = if k % 2 == 0 { [0, 1] } else { [1, 0] };
        for s in order {
            flush(&mut buf);
            got[s] = sides[s].scrape(scrape, at, &mut resolved);
        }
        if k >= skip {
            timed.push((ms(got[0].0 + got[0].1), ms(got[1].0), ms(got[1].1)));
        }
    }
    let n = timed.len() as f64;
    let mean = |f: &dyn Fn(&(f64, f64, f64)) -> f64| timed.iter().map(f).sum::<f64>() / n;
    let (off_ms, on_ingest, on_upkeep) = (mean(&|t| t.0), mean(&|t| t.1), mean(&|t| t.2));
    let mut ratios: Vec<f64> = timed
        .iter()
        .map(|&(off, ingest, upkeep)| (ingest + upkeep - off) / off * 100.0)
        .collect();
    ratios.sort_by(f64::total_cmp);
    let q = |p: f64| ratios[((ratios.len() - 1) as f64 * p).round() as usize];
    println!(
        "ab paired: {n_series} series, scrapes {skip}..{scrapes}{}: CPU per scrape (mean): off {off_ms:.2} ms, \
         on {:.2} ms (ingest {on_ingest:.2}, upkeep {on_upkeep:.2}); graph cost per scrape: median {:+.1}% \
         (quartiles {:+.1}%, {:+.1}%)",
        if derived { ", derived series on" } else { "" },
        on_ingest + on_upkeep,
        q(0.5),
        q(0.25),
        q(0.75),
    );
    stop.cancel();
    let [a, b] = sides;
    a.agg.join().await;
    b.agg.join().await;
}
