//! The forwarder coalesces scrape outputs and sends everything before it ends.

use meshfed_model::Labels;
use meshfed_relay::client::RelayClientOptions;
use meshfed_relay::encode::SeriesLabels;
use tokio_util::sync::CancellationToken;

use super::*;

fn samples(n: usize) -> Vec<OutgoingSample> {
    let labels = SeriesLabels::new(&Labels::from_pairs([("__name__", "m")]));
    (0..n)
        .map(|i| OutgoingSample {
            labels: labels.clone(),
            timestamp_ms: i as i64,
            value: 1.0,
        })
        .collect()
}

#[tokio::test]
async fn outputs_are_coalesced_and_flushed_at_the_end() {
    // An aggregator that is not there: batches stay queued in the client, which counts them.
    let options = RelayClientOptions {
        endpoints: vec!["http://127.0.0.1:1".into()],
        ..RelayClientOptions::default()
    };
    let stop = CancellationToken::new();
    let (relay, _task) = RelayClient::spawn(options, stop.clone());
    let metrics = CollectorMetrics::default();
    let (forwarder, task) = Forwarder::spawn(relay.clone(), metrics.clone());
    for _ in 0..3 {
        forwarder.send(samples(100), &metrics).await;
    }
    forwarder.send(Vec::new(), &metrics).await;
    drop(forwarder);
    task.await.expect("forwarder task");
    assert_eq!(
        relay
            .stats()
            .batches_queued
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(metrics.samples_forwarded.get(), 300);
    stop.cancel();
}
