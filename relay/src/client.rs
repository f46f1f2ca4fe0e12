//! Collector side of the relay: a long-lived task that keeps one stream open to an aggregator,
//! sends queued sample batches, and reconnects with exponential backoff and jitter.
//!
//! Batches stay in memory until the aggregator acknowledges them and are sent again, in order, on
//! the next stream after a disconnect. Re-sending a stored sample is harmless: the store ignores an
//! identical repeat of a sample.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Endpoint;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::encode::{OutgoingSample, StreamEncoder};
use crate::proto::{self, CollectorMessage, aggregator_message, collector_message};
use crate::tls::TlsReloader;
use crate::{Error, PROTOCOL_VERSION, Result};

/// How the client connects.
#[derive(Clone, Debug)]
pub struct RelayClientOptions {
    /// Aggregator addresses (`http://host:port`), tried in turn.
    pub endpoints: Vec<String>,
    /// The cluster this collector reports for.
    pub cluster: String,
    /// This collector's id within the cluster.
    pub collector_id: String,
    /// Batches held in memory (queued plus unacknowledged) before `send` waits.
    pub max_queued_batches: usize,
    /// First reconnect delay.
    pub initial_backoff_ms: u64,
    /// Longest reconnect delay.
    pub max_backoff_ms: u64,
    /// How long shutdown waits for the last acknowledgements.
    pub drain_timeout_ms: u64,
    /// mTLS material; `None` only in the explicit insecure mode.
    pub tls: Option<Arc<TlsReloader<rustls::ClientConfig>>>,
    /// The name the aggregator's certificate must carry; the address's host when `None`.
    pub server_name: Option<String>,
}

impl Default for RelayClientOptions {
    fn default() -> Self {
        Self {
            endpoints: vec!["http://127.0.0.1:7070".into()],
            cluster: String::new(),
            collector_id: "collector-0".into(),
            max_queued_batches: 256,
            initial_backoff_ms: 200,
            max_backoff_ms: 10_000,
            drain_timeout_ms: 5_000,
            tls: None,
            server_name: None,
        }
    }
}

/// Counters the client keeps about itself.
#[derive(Debug, Default)]
pub struct RelayClientStats {
    /// Batches handed to [`RelayClient::send`].
    pub batches_queued: AtomicU64,
    /// Whether a stream is open now.
    pub connected: AtomicBool,
    /// Batches the aggregator acknowledged.
    pub batches_acked: AtomicU64,
    /// Samples in acknowledged batches.
    pub samples_acked: AtomicU64,
    /// Streams opened.
    pub connects: AtomicU64,
}

/// Handle used by scrape loops to send samples.
#[derive(Clone)]
pub struct RelayClient {
    tx: mpsc::Sender<Vec<OutgoingSample>>,
    stats: Arc<RelayClientStats>,
}

impl RelayClient {
    /// Starts the connection task. It runs until `shutdown` fires and the queue is drained (or the
    /// drain timeout passes).
    pub fn spawn(options: RelayClientOptions, shutdown: CancellationToken) -> (RelayClient, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(options.max_queued_batches.max(1));
        let stats = Arc::new(RelayClientStats::default());
        let span = info_span!("relay_client", cluster = %options.cluster);
        let worker = Worker {
            options,
            rx,
            stats: Arc::clone(&stats),
            unacked: VecDeque::new(),
            shutdown,
        };
        let handle = tokio::spawn(worker.run().instrument(span));
        (RelayClient { tx, stats }, handle)
    }

    /// Queues one batch, waiting while the queue is full. Fails only after the client stopped.
    pub async fn send(&self, samples: Vec<OutgoingSample>) -> std::result::Result<(), Vec<OutgoingSample>> {
        self.tx.send(samples).await.map_err(|e| e.0)?;
        self.stats.batches_queued.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Batches queued or sent but not yet acknowledged.
    pub fn pending(&self) -> u64 {
        let queued = self.stats.batches_queued.load(Ordering::Relaxed);
        queued.saturating_sub(self.stats.batches_acked.load(Ordering::Relaxed))
    }

    /// The client's counters.
    pub fn stats(&self) -> &RelayClientStats {
        &self.stats
    }
}

struct Worker {
    options: RelayClientOptions,
    rx: mpsc::Receiver<Vec<OutgoingSample>>,
    stats: Arc<RelayClientStats>,
    /// Sent but not yet acknowledged, oldest first, with the sequence used on the current stream.
    unacked: VecDeque<(u64, Vec<OutgoingSample>)>,
    shutdown: CancellationToken,
}

impl Worker {
    async fn run(mut self) {
        let mut attempt: u32 = 0;
        let mut endpoint = 0usize;
        loop {
            let addr = self.options.endpoints[endpoint % self.options.endpoints.len().max(1)].clone();
            match self.stream(&addr).await {
                Ok(Finished::Shutdown) => return,
                Ok(Finished::Disconnected) => attempt = 0,
                Err(e) => warn!(aggregator = %addr, error = %e, "Relay connection failed."),
            }
            self.stats.connected.store(false, Ordering::Relaxed);
            if self.shutdown.is_cancelled() {
                return;
            }
            endpoint += 1;
            let delay = backoff(
                attempt,
                self.options.initial_backoff_ms,
                self.options.max_backoff_ms,
            );
            attempt = attempt.saturating_add(1);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.shutdown.cancelled() => return,
            }
        }
    }

    /// One stream's life: hello, replay of unacknowledged batches, then the send/ack loop.
    async fn stream(&mut self, addr: &str) -> Result<Finished> {
        // With TLS our connector does the handshake, so tonic itself speaks plain h2 to it.
        let plain = match &self.options.tls {
            Some(_) => addr.replacen("https://", "http://", 1),
            None => addr.to_owned(),
        };
        let endpoint = Endpoint::from_shared(plain)
            .map_err(|e| Error::Rejected(format!("bad aggregator address {addr:?}: {e}")))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        let channel = match &self.options.tls {
            Some(tls) => {
                let connector =
                    crate::tls::client::connector(Arc::clone(tls), self.options.server_name.clone());
                tokio::time::timeout(
                    Duration::from_secs(10),
                    endpoint.connect_with_connector(connector),
                )
                .await
                .map_err(|_| Error::Rejected(format!("connecting to {addr} timed out")))??
            }
            None => endpoint.connect().await?,
        };
        let mut client = proto::relay_client::RelayClient::new(channel);
        let (up, up_rx) = mpsc::channel::<CollectorMessage>(16);
        let hello = proto::Hello {
            protocol_version: PROTOCOL_VERSION,
            collector_id: self.options.collector_id.clone(),
            cluster: self.options.cluster.clone(),
            software_version: env!("CARGO_PKG_VERSION").to_owned(),
            capabilities: Vec::new(),
        };
        let _ = up.send(msg(collector_message::Kind::Hello(hello))).await;
        let mut down = client.session(ReceiverStream::new(up_rx)).await?.into_inner();
        match down.message().await? {
            Some(proto::AggregatorMessage {
                kind: Some(aggregator_message::Kind::Welcome(w)),
            }) => {
                info!(aggregator = %addr, cluster = %w.cluster, "Relay connected.");
            }
            _ => return Err(Error::Rejected("no welcome".into())),
        }
        self.stats.connected.store(true, Ordering::Relaxed);
        self.stats.connects.fetch_add(1, Ordering::Relaxed);
        let mut enc = StreamEncoder::new();
        // Replay what the previous stream did not get acknowledged, with this stream's sequences.
        for (seq, samples) in self.unacked.iter_mut() {
            let batch = enc.encode(samples);
            *seq = batch.sequence;
            if up.send(msg(collector_message::Kind::Batch(batch))).await.is_err() {
                return Ok(Finished::Disconnected);
            }
        }
        let mut draining = false;
        loop {
            let room = self.unacked.len() < self.options.max_queued_batches;
            tokio::select! {
                next = self.rx.recv(), if room && !draining => match next {
                    Some(samples) => {
                        let batch = enc.encode(&samples);
                        self.unacked.push_back((batch.sequence, samples));
                        if up.send(msg(collector_message::Kind::Batch(batch))).await.is_err() {
                            return Ok(Finished::Disconnected);
                        }
                    }
                    None => draining = true,
                },
                reply = down.message() => match reply? {
                    Some(proto::AggregatorMessage { kind: Some(aggregator_message::Kind::Ack(ack)) }) => {
                        self.acknowledge(ack.sequence);
                        if draining && self.unacked.is_empty() && self.rx.is_empty() {
                            return Ok(Finished::Shutdown);
                        }
                    }
                    Some(proto::AggregatorMessage { kind: Some(aggregator_message::Kind::Reject(r)) }) => {
                        return Err(Error::Rejected(r.reason));
                    }
                    Some(_) => {}
                    None => return Ok(Finished::Disconnected),
                },
                _ = self.shutdown.cancelled(), if !draining => {
                    self.rx.close();
                    debug!("Draining relay queue before shutdown.");
                    if self.unacked.is_empty() && self.rx.is_empty() {
                        return Ok(Finished::Shutdown);
                    }
                    let timeout = Duration::from_millis(self.options.drain_timeout_ms);
                    let deadline = tokio::time::Instant::now() + timeout;
                    return self.drain(&mut enc, &up, &mut down, deadline).await;
                }
            }
        }
    }

    /// Sends everything still queued and waits for its acknowledgement until `deadline`.
    async fn drain(
        &mut self,
        enc: &mut StreamEncoder,
        up: &mpsc::Sender<CollectorMessage>,
        down: &mut tonic::Streaming<proto::AggregatorMessage>,
        deadline: tokio::time::Instant,
    ) -> Result<Finished> {
        while let Ok(samples) = self.rx.try_recv() {
            let batch = enc.encode(&samples);
            self.unacked.push_back((batch.sequence, samples));
            if up.send(msg(collector_message::Kind::Batch(batch))).await.is_err() {
                break;
            }
        }
        while !self.unacked.is_empty() {
            match tokio::time::timeout_at(deadline, down.message()).await {
                Ok(Ok(Some(proto::AggregatorMessage {
                    kind: Some(aggregator_message::Kind::Ack(ack)),
                }))) => self.acknowledge(ack.sequence),
                Ok(Ok(Some(_))) => {}
                _ => break,
            }
        }
        if !self.unacked.is_empty() {
            warn!(
                batches = self.unacked.len(),
                "Shut down with unacknowledged batches."
            );
        }
        Ok(Finished::Shutdown)
    }

    fn acknowledge(&mut self, sequence: u64) {
        while self.unacked.front().is_some_and(|(seq, _)| *seq <= sequence) {
            if let Some((_, samples)) = self.unacked.pop_front() {
                self.stats.batches_acked.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .samples_acked
                    .fetch_add(samples.len() as u64, Ordering::Relaxed);
            }
        }
    }
}

enum Finished {
    Shutdown,
    Disconnected,
}

fn msg(kind: collector_message::Kind) -> CollectorMessage {
    CollectorMessage { kind: Some(kind) }
}

/// Exponential backoff with full jitter in the upper half: `[d/2, d]` where `d = initial·2^attempt`.
fn backoff(attempt: u32, initial_ms: u64, max_ms: u64) -> Duration {
    let d = initial_ms
        .saturating_mul(1u64 << attempt.min(20))
        .min(max_ms)
        .max(1);
    Duration::from_millis(rand::rng().random_range(d / 2..=d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        for attempt in 0..30 {
            let d = backoff(attempt, 100, 5_000).as_millis() as u64;
            let full = (100u64 << attempt.min(20)).min(5_000);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d}");
        }
    }
}
