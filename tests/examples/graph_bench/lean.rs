//! `--lean` (for 20,000 nodes / 200,000 edges, 4.4 M series): the aggregator alone, series
//! registered with its ingest directly and each scrape's batches built just in time (see
//! `main.rs`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use meshfed_aggregator::Aggregator;
use meshfed_relay::server::Ingest;

use crate::mix::Mix;
use crate::{BATCH_SAMPLES, edge_series, ms, peak_rss_mib};

/// `--lean`: registers every series with the aggregator's ingest (no relay, no copies kept but
/// the series ids) and appends `scrapes` scrapes 5 s apart as per-cluster batches of
/// `BATCH_SAMPLES`, built just in time; prints the store-with-WAL + table time per scrape.
pub(crate) async fn ingest(agg: &Aggregator, nodes: usize, edges: usize, scrapes: usize) {
    let t = Instant::now();
    let t0 = meshfed_aggregator::http::now_ms() - (scrapes as i64) * 5_000;
    // Per cluster: (series id, rate). Scrape 0 goes in as the series are registered, a batch at
    // a time as the relay would deliver it: the store forgets series that stay without samples.
    let mut by_cluster: BTreeMap<String, Vec<(u64, f64)>> = BTreeMap::new();
    let mut sent: BTreeMap<String, usize> = BTreeMap::new();
    let first = |cluster: &str, series: &[(u64, f64)], from: usize| {
        let batch: Vec<(u64, i64, f64)> = series[from..].iter().map(|&(id, _)| (id, t0, 0.0)).collect();
        agg.ingest.append(cluster, &batch).unwrap();
    };
    // Edge series only: `--mix istio`'s pod series are left out here.
    let mix = Mix::from_args();
    for i in 0..edges {
        let src = i % nodes;
        let dst = (src + 1 + i / nodes) % nodes;
        for (labels, share) in edge_series(src, dst, mix) {
            let cluster = labels.get("cluster").unwrap().to_owned();
            let id = agg.ingest.register_series(&labels);
            let series = by_cluster.entry(cluster.clone()).or_default();
            series.push((id, share * (1.0 + (i % 7) as f64)));
            let from = sent.entry(cluster.clone()).or_default();
            if series.len() - *from == BATCH_SAMPLES {
                first(&cluster, series, *from);
                *from = series.len();
            }
        }
    }
    for (cluster, series) in &by_cluster {
        first(cluster, series, sent[cluster]);
    }
    let n_series: usize = by_cluster.values().map(Vec::len).sum();
    eprintln!(
        "lean: {n_series} series registered with scrape 0 in {:.1?}; peak RSS {:.0} MiB",
        t.elapsed(),
        peak_rss_mib()
    );
    // Registering millions of series takes minutes: the later scrapes end 5 s before now, so
    // every window has them (scrape 0 is then further back; only the 10m window reaches it).
    let end = meshfed_aggregator::http::now_ms();
    let at = |k: usize| {
        if k == 0 {
            t0
        } else {
            end - (scrapes - k) as i64 * 5_000
        }
    };
    let mut took = Duration::ZERO;
    let mut batch = Vec::with_capacity(BATCH_SAMPLES);
    for k in 1..scrapes {
        for (cluster, series) in &by_cluster {
            for chunk in series.chunks(BATCH_SAMPLES) {
                batch.clear();
                batch.extend(
                    chunk
                        .iter()
                        .map(|&(id, rate)| (id, at(k), (rate * 5.0 * k as f64).floor())),
                );
                let t = Instant::now();
                agg.ingest.append(cluster, &batch).unwrap();
                took += t.elapsed();
            }
        }
    }
    println!(
        "lean: per scrape of {n_series} samples: store with WAL + table {:.1} ms (scrapes 1..{scrapes}); \
         peak RSS after ingest {:.0} MiB",
        ms(took) / (scrapes - 1) as f64,
        peak_rss_mib()
    );
}
