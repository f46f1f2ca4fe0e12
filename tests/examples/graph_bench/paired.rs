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
//! graph's upkeep (the refresh schedule and the increments health takes; the derived series
//! as the aggregator writes them every 15 s, every 3rd scrape, `--derived-every n` to change
//! it, unless `--no-derived`). The
//! figure is process CPU per scrape; the cost is (median over the timed scrapes of on ingest -
//! off + mean upkeep) / median off (why, at the computation below). The timed scrapes should be
//! whole cycles of the upkeep's bursts (30 scrapes with the derived series, 10 without).
//!
//! `--per-scrape` prints each timed scrape's figures; `--no-flush` skips the flush; `--aa` runs both sides without the graph (what the pairing
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
    let derived = crate::ab::derived_every(&on);
    let Mesh {
        wire, t0, n_series, ..
    } = encode_mesh(nodes, edges, scrapes);
    let stop = CancellationToken::new();
    let mut sides = [
        Side::new(Aggregator::start(&off, stop.clone()).await.unwrap(), &off),
        Side::new(Aggregator::start(&on, stop.clone()).await.unwrap(), &on),
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
            if crate::flag("--per-scrape") {
                let (off, ingest, upkeep) = timed[timed.len() - 1];
                println!("scrape {k}: off {off:.2} ms, on ingest {ingest:.2} ms, upkeep {upkeep:.2} ms");
            }
        }
    }
    let n = timed.len() as f64;
    let mean = |f: &dyn Fn(&(f64, f64, f64)) -> f64| timed.iter().map(f).sum::<f64>() / n;
    let (off_mean, on_ingest_mean, on_upkeep) = (mean(&|t| t.0), mean(&|t| t.1), mean(&|t| t.2));
    let median = |f: &dyn Fn(&(f64, f64, f64)) -> f64| {
        let mut v: Vec<f64> = timed.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    // The store's own bursts (chunks cut for every series within a few scrapes) cost both
    // sides seconds of CPU at random magnitudes, so the means carry noise far above the
    // graph's cost. The ingest path's share is therefore the median of the paired differences
    // and the base the median graph-off scrape. The upkeep is timed on its own and comes in
    // bursts of its own (the 5m window every 5th scrape, the 10m every 10th, the derived series
    // every 3rd): its mean over whole cycles counts each at its frequency.
    let (base, ingest_delta) = (median(&|t| t.0), median(&|t| t.1 - t.0));
    let cost = (ingest_delta + on_upkeep) / base * 100.0;
    let cycle = derived.map_or(10, |d| num_lcm(10, d));
    if !timed.len().is_multiple_of(cycle) {
        eprintln!(
            "warning: {} timed scrapes are not whole cycles of {cycle}: the upkeep's bursts are not weighted evenly",
            timed.len()
        );
    }
    // How many of the series the graph keeps (all of them in `--mix graph`).
    let (tracked, edges_tracked) = sides[1].agg.graph.table.size();
    println!(
        "ab paired: {n_series} series ({tracked} kept by the graph, {edges_tracked} edges), scrapes {skip}..{scrapes}{}: \
         CPU per scrape: off median {base:.2} ms (mean {off_mean:.2}), on: ingest median difference {ingest_delta:+.2} ms \
         (means {on_ingest_mean:.2} vs {off_mean:.2}), upkeep mean {on_upkeep:.2} ms; graph cost {cost:+.1}%",
        derived.map_or(String::new(), |n| {
            let pairs = sides[1].agg.derived.as_ref().map_or(0, |d| d.lock().pairs());
            format!(", derived series of {pairs} client/server pairs every {n} scrapes")
        }),
    );
    stop.cancel();
    let [a, b] = sides;
    a.agg.join().await;
    b.agg.join().await;
}

/// Least common multiple.
fn num_lcm(a: usize, b: usize) -> usize {
    let gcd = |mut a: usize, mut b: usize| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    a / gcd(a, b) * b
}
