//! Coalesces the scrape loops' output into fewer, larger relay batches.
//!
//! Each scrape yields one target's samples (~150 for an Istio sidecar). Sent as they are, every
//! one becomes a relay batch with its own Arrow IPC message, zstd context, gRPC frame, WAL
//! write and acknowledgement: at hundreds of targets those per-batch costs were a large share of
//! the collector's CPU. The loops hand their samples to one [`Forwarder`] task instead, which
//! sends what it holds once it reaches [`MAX_BATCH_SAMPLES`] or once the oldest of it has waited
//! [`MAX_DELAY`]. A loop's samples stay in order (one FIFO channel), and a full channel makes the
//! loops wait, as a full relay queue did before.

use std::time::Duration;

use meshfed_relay::client::RelayClient;
use meshfed_relay::encode::OutgoingSample;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::metrics::CollectorMetrics;

#[cfg(test)]
mod tests;

/// Samples held before a batch is sent without waiting for [`MAX_DELAY`].
pub const MAX_BATCH_SAMPLES: usize = 4_096;
/// Longest a sample waits in the forwarder.
pub const MAX_DELAY: Duration = Duration::from_millis(250);
/// Scrape outputs queued between the loops and the forwarder.
const CHANNEL_DEPTH: usize = 256;

/// The loops' handle on the forwarder (cheap to clone).
#[derive(Clone)]
pub struct Forwarder {
    tx: mpsc::Sender<Vec<OutgoingSample>>,
}

impl Forwarder {
    /// Starts the forwarding task. It ends, after sending what it holds, once every
    /// [`Forwarder`] clone is dropped.
    pub fn spawn(relay: RelayClient, metrics: CollectorMetrics) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let task = tokio::spawn(run(rx, relay, metrics).in_current_span());
        (Self { tx }, task)
    }

    /// Queues `samples` for the relay; waits while the forwarder is behind.
    pub async fn send(&self, samples: Vec<OutgoingSample>, metrics: &CollectorMetrics) {
        if samples.is_empty() {
            return;
        }
        let n = samples.len() as u64;
        if self.tx.send(samples).await.is_err() {
            // The forwarder is gone (shutdown): nothing will send these.
            metrics.samples_dropped.inc_by(n);
        }
    }
}

async fn run(mut rx: mpsc::Receiver<Vec<OutgoingSample>>, relay: RelayClient, metrics: CollectorMetrics) {
    loop {
        // Wait for the first samples of the next batch, then for more until it is full or due.
        let Some(mut pending) = rx.recv().await else { break };
        let due = tokio::time::Instant::now() + MAX_DELAY;
        let mut closed = false;
        while pending.len() < MAX_BATCH_SAMPLES {
            match tokio::time::timeout_at(due, rx.recv()).await {
                Ok(Some(mut more)) => pending.append(&mut more),
                Ok(None) => {
                    closed = true;
                    break;
                }
                Err(_) => break,
            }
        }
        flush(&relay, &metrics, pending).await;
        if closed {
            break;
        }
    }
}

async fn flush(relay: &RelayClient, metrics: &CollectorMetrics, samples: Vec<OutgoingSample>) {
    let n = samples.len() as u64;
    match relay.send(samples).await {
        Ok(()) => metrics.samples_forwarded.inc_by(n),
        Err(_) => metrics.samples_dropped.inc_by(n),
    };
}
