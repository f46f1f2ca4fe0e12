//! Collector side of the relay: a long-lived task that keeps one stream open to an aggregator,
//! sends queued sample batches, and reconnects with exponential backoff and jitter, trying each
//! configured aggregator address in turn.
//!
//! Every batch gets a sequence number and is kept until the aggregator acknowledges it: in memory,
//! or in a [`DiskBuffer`] that also survives a collector restart. After a reconnect everything
//! unacknowledged is sent again, in order; the aggregator drops batches it already stored.
//! Heartbeats detect a silent aggregator within `peer_timeout_ms`.
//!
//! Besides samples the stream carries the collector's control state (metric metadata, its
//! cluster's topology, config acks; see [`control`]) and, downstream, config snapshots.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Endpoint;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::buffer::DiskBuffer;
use crate::encode::{OutgoingSample, StreamEncoder};
use crate::proto::{self, CollectorMessage, aggregator_message, collector_message};
use crate::tls::TlsReloader;
use crate::{Error, PROTOCOL_VERSION, Result};

mod control;
mod pending;

use control::{Control, Outbox, Sent};
use pending::Pending;

/// How the client connects.
#[derive(Clone, Debug)]
pub struct RelayClientOptions {
    /// Aggregator addresses (`https://host:port`), tried in turn.
    pub endpoints: Vec<String>,
    /// The cluster this collector reports for.
    pub cluster: String,
    /// This collector's id within the cluster.
    pub collector_id: String,
    /// Batches held in memory (queued plus unacknowledged) before `send` waits; with a disk
    /// buffer, only the queue in front of it.
    pub max_queued_batches: usize,
    /// Keep unacknowledged batches in this directory (survives restarts); memory only when `None`.
    pub buffer_dir: Option<PathBuf>,
    /// Most bytes the disk buffer holds before dropping its oldest data (counted).
    pub buffer_max_bytes: u64,
    /// First reconnect delay.
    pub initial_backoff_ms: u64,
    /// Longest reconnect delay.
    pub max_backoff_ms: u64,
    /// How long shutdown waits for the last acknowledgements.
    pub drain_timeout_ms: u64,
    /// Interval between heartbeats.
    pub heartbeat_interval_ms: u64,
    /// An aggregator silent this long is considered dead and the stream is re-established.
    pub peer_timeout_ms: u64,
    /// mTLS material; `None` only in the explicit insecure mode.
    pub tls: Option<Arc<TlsReloader<rustls::ClientConfig>>>,
    /// The name the aggregator's certificate must carry; the address's host when `None`.
    pub server_name: Option<String>,
}

impl Default for RelayClientOptions {
    fn default() -> Self {
        Self {
            endpoints: vec!["https://127.0.0.1:7070".into()],
            cluster: String::new(),
            collector_id: "collector-0".into(),
            max_queued_batches: 256,
            buffer_dir: None,
            buffer_max_bytes: 256 << 20,
            initial_backoff_ms: 200,
            max_backoff_ms: 10_000,
            drain_timeout_ms: 5_000,
            heartbeat_interval_ms: 5_000,
            peer_timeout_ms: 20_000,
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
    /// Samples dropped because the buffer was full or could not be written.
    pub samples_dropped: AtomicU64,
}

/// Handle used by scrape loops to send samples.
#[derive(Clone)]
pub struct RelayClient {
    tx: mpsc::Sender<Vec<OutgoingSample>>,
    stats: Arc<RelayClientStats>,
    control: Arc<Control>,
}

impl RelayClient {
    /// Starts the connection task. It runs until `shutdown` fires and the queue is drained (or the
    /// drain timeout passes). Fails only if the disk buffer cannot be opened.
    pub fn try_spawn(
        options: RelayClientOptions,
        shutdown: CancellationToken,
    ) -> std::result::Result<(RelayClient, JoinHandle<()>), crate::buffer::BufferError> {
        let pending = match &options.buffer_dir {
            Some(dir) => Pending::Disk(DiskBuffer::open(dir, options.buffer_max_bytes)?),
            None => Pending::Memory {
                batches: VecDeque::new(),
                next: 1,
                epoch: rand::random::<u64>() | 1,
            },
        };
        let (tx, rx) = mpsc::channel(options.max_queued_batches.max(1));
        let stats = Arc::new(RelayClientStats::default());
        let control = Arc::new(Control::new());
        let span = info_span!("relay_client", cluster = %options.cluster);
        let worker = Worker {
            options,
            rx,
            stats: Arc::clone(&stats),
            pending,
            shutdown,
            control: Arc::clone(&control),
        };
        let handle = tokio::spawn(worker.run().instrument(span));
        Ok((RelayClient { tx, stats, control }, handle))
    }

    /// [`RelayClient::try_spawn`] for in-memory buffering, which cannot fail.
    pub fn spawn(
        mut options: RelayClientOptions,
        shutdown: CancellationToken,
    ) -> (RelayClient, JoinHandle<()>) {
        options.buffer_dir = None;
        match Self::try_spawn(options, shutdown) {
            Ok(x) => x,
            Err(_) => unreachable!("an in-memory buffer cannot fail to open"),
        }
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

    /// A shared handle to the counters, for metrics collectors.
    pub fn stats_handle(&self) -> Arc<RelayClientStats> {
        Arc::clone(&self.stats)
    }

    /// Publishes metric families' metadata. Only families that are new or changed are sent;
    /// returns whether there were any. Cheap to call after every scrape.
    pub fn publish_metadata(&self, entries: Vec<proto::MetricMetadata>) -> bool {
        self.control.publish_metadata(entries)
    }

    /// Publishes the cluster's topology, replacing the previous report. Sent only when it
    /// differs; returns whether it did.
    pub fn publish_topology(&self, topology: proto::ClusterTopology) -> bool {
        self.control.publish_topology(topology)
    }

    /// Config snapshots from the aggregator, newest version only.
    pub fn config_snapshots(&self) -> watch::Receiver<Option<Arc<proto::ConfigSnapshot>>> {
        self.control.subscribe_config()
    }

    /// Reports the outcome of applying a config snapshot (resent after each reconnect).
    pub fn ack_config(&self, ack: proto::ConfigAck) {
        self.control.ack_config(ack)
    }
}

struct Worker {
    options: RelayClientOptions,
    rx: mpsc::Receiver<Vec<OutgoingSample>>,
    stats: Arc<RelayClientStats>,
    pending: Pending,
    shutdown: CancellationToken,
    control: Arc<Control>,
}

enum Finished {
    Shutdown,
    Disconnected,
}

/// One open stream: the sender half and what was sent on it but not yet acknowledged.
struct Stream {
    up: mpsc::Sender<CollectorMessage>,
    encoder: StreamEncoder,
    /// (sequence, samples) sent on this stream and not yet acknowledged, for the counters.
    in_flight: VecDeque<(u64, usize)>,
}

impl Stream {
    async fn send(&mut self, seq: u64, samples: &[OutgoingSample]) -> bool {
        let batch = self.encoder.encode(seq, samples);
        self.in_flight.push_back((seq, samples.len()));
        self.up
            .send(msg(collector_message::Kind::Batch(batch)))
            .await
            .is_ok()
    }

    /// Sends control state; false when the stream is gone.
    async fn send_control(&mut self, out: Outbox) -> bool {
        let mut kinds = Vec::new();
        if !out.metadata.is_empty() {
            kinds.push(collector_message::Kind::Metadata(proto::MetadataBatch {
                entries: out.metadata,
            }));
        }
        if let Some(t) = out.topology {
            kinds.push(collector_message::Kind::Topology(t));
        }
        if let Some(a) = out.ack {
            kinds.push(collector_message::Kind::ConfigAck(a));
        }
        for kind in kinds {
            if self.up.send(msg(kind)).await.is_err() {
                return false;
            }
        }
        true
    }
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
                return self.keep_queued();
            }
            endpoint += 1;
            let delay = backoff(
                attempt,
                self.options.initial_backoff_ms,
                self.options.max_backoff_ms,
            );
            attempt = attempt.saturating_add(1);
            // While disconnected, keep taking batches so scrapes never block on a dead link.
            let until = Instant::now() + delay;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => break,
                    _ = self.shutdown.cancelled() => return self.keep_queued(),
                    next = self.rx.recv(), if self.pending.has_room(self.options.max_queued_batches) => match next {
                        Some(samples) => self.record(samples).map(|_| ()).unwrap_or(()),
                        None => return,
                    },
                }
            }
        }
    }

    /// At shutdown without a connection: move what is still queued into the buffer, so a disk
    /// buffer sends it after the next start.
    fn keep_queued(&mut self) {
        self.rx.close();
        while let Ok(samples) = self.rx.try_recv() {
            let _ = self.record(samples);
        }
    }

    fn record(&mut self, samples: Vec<OutgoingSample>) -> Option<(u64, Arc<Vec<OutgoingSample>>)> {
        let n = samples.len() as u64;
        let dropped_before = self.pending.dropped_samples();
        let out = match self.pending.record(samples) {
            Ok(x) => Some(x),
            Err(e) => {
                warn!(error = %e, samples = n, "Could not buffer a batch; dropped it.");
                self.stats.samples_dropped.fetch_add(n, Ordering::Relaxed);
                None
            }
        };
        let dropped = self.pending.dropped_samples() - dropped_before;
        self.stats.samples_dropped.fetch_add(dropped, Ordering::Relaxed);
        out
    }

    async fn connect(&self, addr: &str) -> Result<tonic::transport::Channel> {
        // With TLS our connector does the handshake, so tonic itself speaks plain h2 to it.
        let plain = match &self.options.tls {
            Some(_) => addr.replacen("https://", "http://", 1),
            None => addr.to_owned(),
        };
        let endpoint = Endpoint::from_shared(plain)
            .map_err(|e| Error::Rejected(format!("bad aggregator address {addr:?}: {e}")))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        Ok(match &self.options.tls {
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
        })
    }

    /// One stream's life: hello, replay of unacknowledged batches, then the send/ack loop.
    async fn stream(&mut self, addr: &str) -> Result<Finished> {
        let mut client = proto::relay_client::RelayClient::new(self.connect(addr).await?);
        let (up, up_rx) = mpsc::channel::<CollectorMessage>(16);
        let hello = proto::Hello {
            protocol_version: PROTOCOL_VERSION,
            collector_id: self.options.collector_id.clone(),
            cluster: self.options.cluster.clone(),
            software_version: env!("CARGO_PKG_VERSION").to_owned(),
            capabilities: Vec::new(),
            buffer_epoch: self.pending.epoch(),
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
        let mut stream = Stream {
            up,
            encoder: StreamEncoder::new(),
            in_flight: VecDeque::new(),
        };
        let mut sent = Sent::default();
        if !stream.send_control(self.control.full(&mut sent)).await {
            return Ok(Finished::Disconnected);
        }
        let replay = self.pending.unacknowledged()?;
        if !replay.is_empty() {
            info!(batches = replay.len(), "Replaying unacknowledged batches.");
        }
        for (seq, samples) in replay {
            if !stream.send(seq, &samples).await {
                return Ok(Finished::Disconnected);
            }
        }
        let mut heartbeat =
            tokio::time::interval(Duration::from_millis(self.options.heartbeat_interval_ms.max(10)));
        let peer_timeout = Duration::from_millis(self.options.peer_timeout_ms.max(10));
        let mut last_heard = Instant::now();
        loop {
            let room = self.pending.has_room(self.options.max_queued_batches);
            tokio::select! {
                next = self.rx.recv(), if room => match next {
                    Some(samples) => {
                        if let Some((seq, samples)) = self.record(samples)
                            && !stream.send(seq, &samples).await {
                                return Ok(Finished::Disconnected);
                            }
                    }
                    None => return self.drain(&mut stream, &mut down).await,
                },
                reply = down.message() => {
                    last_heard = Instant::now();
                    match reply? {
                        Some(proto::AggregatorMessage { kind: Some(aggregator_message::Kind::Ack(ack)) }) => {
                            self.acknowledge(&mut stream, ack.sequence);
                        }
                        Some(proto::AggregatorMessage { kind: Some(aggregator_message::Kind::Reject(r)) }) => {
                            return Err(Error::Rejected(r.reason));
                        }
                        Some(proto::AggregatorMessage { kind: Some(aggregator_message::Kind::Config(snapshot)) }) => {
                            let version = snapshot.version;
                            let objects = snapshot.objects.len();
                            if self.control.received_config(snapshot) {
                                info!(version, objects, "Received a config snapshot.");
                            }
                        }
                        Some(_) => {}
                        None => return Ok(Finished::Disconnected),
                    }
                },
                _ = self.control.changed.notified() => {
                    if !stream.send_control(self.control.changes(&mut sent)).await {
                        return Ok(Finished::Disconnected);
                    }
                },
                _ = heartbeat.tick() => {
                    if last_heard.elapsed() > peer_timeout {
                        warn!(aggregator = %addr, silent_for = ?last_heard.elapsed(), "Aggregator stopped answering; reconnecting.");
                        return Ok(Finished::Disconnected);
                    }
                    let hb = proto::Heartbeat { sent_at_ms: now_ms() };
                    if stream.up.send(msg(collector_message::Kind::Heartbeat(hb))).await.is_err() {
                        return Ok(Finished::Disconnected);
                    }
                },
                _ = self.shutdown.cancelled() => return self.drain(&mut stream, &mut down).await,
            }
        }
    }

    /// Sends everything still queued and waits (bounded) for its acknowledgement.
    async fn drain(
        &mut self,
        stream: &mut Stream,
        down: &mut tonic::Streaming<proto::AggregatorMessage>,
    ) -> Result<Finished> {
        debug!("Draining relay queue before shutdown.");
        self.rx.close();
        while let Ok(samples) = self.rx.try_recv() {
            if let Some((seq, samples)) = self.record(samples)
                && !stream.send(seq, &samples).await
            {
                break;
            }
        }
        let deadline = Instant::now() + Duration::from_millis(self.options.drain_timeout_ms);
        while !self.pending.is_empty() {
            match tokio::time::timeout_at(deadline, down.message()).await {
                Ok(Ok(Some(proto::AggregatorMessage {
                    kind: Some(aggregator_message::Kind::Ack(ack)),
                }))) => self.acknowledge(stream, ack.sequence),
                Ok(Ok(Some(_))) => {}
                _ => break,
            }
        }
        if !self.pending.is_empty() {
            warn!(
                "Shut down with unacknowledged batches; they are sent after the next start if buffered on disk."
            );
        }
        Ok(Finished::Shutdown)
    }

    fn acknowledge(&mut self, stream: &mut Stream, sequence: u64) {
        self.pending.acknowledge(sequence);
        while stream.in_flight.front().is_some_and(|(seq, _)| *seq <= sequence) {
            if let Some((_, n)) = stream.in_flight.pop_front() {
                self.stats.batches_acked.fetch_add(1, Ordering::Relaxed);
                self.stats.samples_acked.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }
}

fn msg(kind: collector_message::Kind) -> CollectorMessage {
    CollectorMessage { kind: Some(kind) }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Exponential backoff with jitter in the upper half: `[d/2, d]` where `d = initial·2^attempt`.
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
