//! Aggregator side of the relay: the gRPC service that accepts collector streams.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use futures::Stream;
use meshfed_model::Labels;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, info, info_span, warn};

use crate::decode::{ResolvedSample, StreamDecoder};
use crate::proto::{self, AggregatorMessage, CollectorMessage, aggregator_message, collector_message};
use crate::tls::PeerIdentity;
use crate::tls::server::PeerInfo;
use crate::{Error, PROTOCOL_VERSION, Result};

/// Where the relay server hands what it receives. Implemented by the aggregator over its store.
pub trait Ingest: Send + Sync + 'static {
    /// The sink's id for a series (created if new). `labels` already carry the stream's cluster.
    fn register_series(&self, labels: &Labels) -> u64;
    /// Stores resolved samples from `cluster`. Returning `Ok` means the batch may be acknowledged.
    fn append(&self, cluster: &str, samples: &[ResolvedSample]) -> std::result::Result<(), String>;
    /// A collector of `cluster` opened a session.
    fn session_opened(&self, _cluster: &str, _collector_id: &str) {}
    /// A session of `cluster` ended.
    fn session_closed(&self, _cluster: &str, _collector_id: &str) {}
    /// Metric families' metadata scraped in `cluster` (new or changed ones).
    fn metadata(&self, _cluster: &str, _entries: &[proto::MetricMetadata]) {}
    /// A collector's report of its cluster's topology; replaces that collector's previous one.
    fn topology(&self, _cluster: &str, _collector_id: &str, _topology: proto::ClusterTopology) {}
    /// A collector applied (or failed to apply) a config snapshot.
    fn config_ack(&self, _cluster: &str, _collector_id: &str, _ack: proto::ConfigAck) {}
    /// The config snapshots meant for `cluster`, newest first; `None` when there is no controller.
    /// Each session sends the current one after the welcome and every later one as it changes.
    fn config_feed(&self, _cluster: &str) -> Option<ConfigFeed> {
        None
    }
}

/// A cluster's latest config snapshot, as a watch channel.
pub type ConfigFeed = watch::Receiver<Option<Arc<proto::ConfigSnapshot>>>;

/// Self-metrics of the relay server.
#[derive(Clone, Debug, Default)]
pub struct RelayServerMetrics {
    sessions_active: Gauge,
    sessions: Counter,
    batches: Family<Vec<(String, String)>, Counter>,
    samples: Family<Vec<(String, String)>, Counter>,
    rejected: Family<Vec<(String, String)>, Counter>,
    handshake_failures: Family<Vec<(String, String)>, Counter>,
    duplicate_batches: Family<Vec<(String, String)>, Counter>,
}

impl RelayServerMetrics {
    /// Registers the metrics under `meshfed_relay_*`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("meshfed_relay");
        r.register(
            "sessions_active",
            "Collector sessions currently open",
            self.sessions_active.clone(),
        );
        r.register("sessions", "Collector sessions opened", self.sessions.clone());
        r.register(
            "batches_received",
            "Sample batches stored, by cluster",
            self.batches.clone(),
        );
        r.register(
            "samples_received",
            "Samples stored, by cluster",
            self.samples.clone(),
        );
        r.register(
            "rejected",
            "Sessions or batches refused, by reason",
            self.rejected.clone(),
        );
        r.register(
            "handshake_failures",
            "TLS handshakes refused, by reason (unknown_ca, expired, no_certificate, ...)",
            self.handshake_failures.clone(),
        );
        r.register(
            "duplicate_batches",
            "Batches received again after a reconnect and not stored twice, by cluster",
            self.duplicate_batches.clone(),
        );
    }

    /// The handshake-failure counter family, for the TLS accept loop.
    pub fn handshake_failures(&self) -> Family<Vec<(String, String)>, Counter> {
        self.handshake_failures.clone()
    }

    fn reject(&self, reason: &'static str) {
        self.rejected
            .get_or_create(&vec![("reason".to_owned(), reason.to_owned())])
            .inc();
    }
}

/// The gRPC service. Wrap it with [`proto::relay_server::RelayServer`] to serve it.
pub struct RelayService<I> {
    ingest: Arc<I>,
    metrics: RelayServerMetrics,
    require_identity: bool,
    /// Highest stored sequence per stream key, shared by all sessions so a reconnect's replay
    /// is not stored twice.
    delivered: Arc<Mutex<HashMap<StreamKey, u64>>>,
    idle_timeout: Duration,
    limits: SessionLimits,
}

/// Per-session limits, so one collector cannot grow the aggregator's memory without bound or
/// take more than its share of ingest.
#[derive(Clone, Copy, Debug)]
pub struct SessionLimits {
    /// Most series one stream may define (the per-stream dictionary's size).
    pub max_series: usize,
    /// Samples per second one session may ingest; beyond it the session is slowed down (its
    /// stream is read later, which pushes back on the collector), never dropped. 0: unlimited.
    pub max_samples_per_sec: u64,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            max_series: 4_000_000,
            max_samples_per_sec: 0,
        }
    }
}

impl<I: Ingest> RelayService<I> {
    /// A service storing into `ingest`. With `require_identity`, every session must come through
    /// the mTLS accept loop and its cluster is the one its certificate names; without it (the
    /// explicit `--insecure` mode) the hello's cluster is believed.
    pub fn new(ingest: Arc<I>, metrics: RelayServerMetrics, require_identity: bool) -> Self {
        Self {
            ingest,
            metrics,
            require_identity,
            delivered: Arc::default(),
            idle_timeout: Duration::from_secs(60),
            limits: SessionLimits::default(),
        }
    }

    /// Applies per-session limits.
    pub fn with_limits(mut self, limits: SessionLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Ends a session that sent nothing (not even a heartbeat) for `timeout`.
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The tonic server wrapper with message-size limits applied.
    pub fn into_server(self, max_message_bytes: usize) -> proto::relay_server::RelayServer<Self> {
        proto::relay_server::RelayServer::new(self).max_decoding_message_size(max_message_bytes)
    }
}

type DownStream = Pin<Box<dyn Stream<Item = std::result::Result<AggregatorMessage, Status>> + Send>>;

#[tonic::async_trait]
impl<I: Ingest> proto::relay_server::Relay for RelayService<I> {
    type SessionStream = DownStream;

    async fn session(
        &self,
        request: Request<Streaming<CollectorMessage>>,
    ) -> std::result::Result<Response<Self::SessionStream>, Status> {
        let peer = request.extensions().get::<PeerInfo>().map(|p| p.identity.clone());
        let mut inbound = request.into_inner();
        let hello = match inbound.next().await {
            Some(Ok(CollectorMessage {
                kind: Some(collector_message::Kind::Hello(h)),
            })) => h,
            Some(Err(status)) => {
                self.metrics.reject(Error::Status(status.clone()).reason());
                return Err(status);
            }
            _ => {
                self.metrics.reject(Error::MissingHello.reason());
                return Err(Error::MissingHello.into());
            }
        };
        let cluster = match self.session_cluster(&hello, peer.as_ref()) {
            Ok(c) => c,
            Err(e) => {
                warn!(collector = %hello.collector_id, error = %e, "Refused relay session.");
                self.metrics.reject(e.reason());
                return Err(e.into());
            }
        };
        let (tx, rx) = mpsc::channel(64);
        let welcome = aggregator_message::Kind::Welcome(proto::Welcome {
            protocol_version: PROTOCOL_VERSION,
            cluster: cluster.clone(),
        });
        // The channel is new and empty, so this cannot fail.
        let _ = tx.try_send(Ok(AggregatorMessage { kind: Some(welcome) }));
        let session = Session {
            ingest: Arc::clone(&self.ingest),
            metrics: self.metrics.clone(),
            decoder: StreamDecoder::new(cluster.clone()),
            collector_id: hello.collector_id.clone(),
            stream_key: (cluster.clone(), hello.collector_id.clone(), hello.buffer_epoch),
            delivered: Arc::clone(&self.delivered),
            idle_timeout: self.idle_timeout,
            limits: self.limits,
            tx,
        };
        let span = info_span!("relay_session", cluster = %cluster, collector = %hello.collector_id);
        if let Some(feed) = self.ingest.config_feed(&cluster) {
            let tx = session.tx.clone();
            tokio::spawn(forward_config(feed, tx).instrument(span.clone()));
        }
        tokio::spawn(session.run(inbound).instrument(span));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

impl<I> RelayService<I> {
    /// The session's cluster: the certificate's, which the hello must not contradict; or, in
    /// insecure mode only, the hello's.
    fn session_cluster(&self, hello: &proto::Hello, peer: Option<&PeerIdentity>) -> Result<String> {
        if hello.protocol_version != PROTOCOL_VERSION {
            return Err(Error::UnsupportedVersion {
                got: hello.protocol_version,
                supported: PROTOCOL_VERSION,
            });
        }
        match peer {
            Some(id) if hello.cluster.is_empty() || hello.cluster == id.cluster => Ok(id.cluster.clone()),
            Some(id) => Err(Error::ForeignCluster {
                sequence: 0,
                cluster: id.cluster.clone(),
                claimed: hello.cluster.clone(),
            }),
            None if self.require_identity => Err(Error::Unauthenticated),
            None if hello.cluster.is_empty() => Err(Error::MissingCluster {
                collector_id: hello.collector_id.clone(),
            }),
            None => Ok(hello.cluster.clone()),
        }
    }
}

struct Session<I> {
    ingest: Arc<I>,
    metrics: RelayServerMetrics,
    decoder: StreamDecoder,
    collector_id: String,
    stream_key: StreamKey,
    delivered: Arc<Mutex<HashMap<StreamKey, u64>>>,
    idle_timeout: Duration,
    limits: SessionLimits,
    tx: mpsc::Sender<std::result::Result<AggregatorMessage, Status>>,
}

/// (cluster, collector id, buffer epoch): the scope in which batch sequences are unique.
type StreamKey = (String, String, u64);

impl<I: Ingest> Session<I> {
    async fn run(mut self, mut inbound: Streaming<CollectorMessage>) {
        let cluster = self.decoder.cluster().to_owned();
        info!("Collector connected.");
        self.metrics.sessions.inc();
        self.metrics.sessions_active.inc();
        self.ingest.session_opened(&cluster, &self.collector_id);
        let labels = vec![("cluster".to_owned(), cluster.clone())];
        let batches = self.metrics.batches.get_or_create(&labels).clone();
        let samples = self.metrics.samples.get_or_create(&labels).clone();
        let duplicates = self.metrics.duplicate_batches.get_or_create(&labels).clone();
        let mut resolved = Vec::new();
        let mut pace = Pace::new(self.limits.max_samples_per_sec);
        let outcome: Result<()> = async {
            loop {
                let msg = match tokio::time::timeout(self.idle_timeout, inbound.next()).await {
                    Ok(Some(msg)) => msg?,
                    Ok(None) => return Ok(()),
                    Err(_) => return Err(Error::IdleTimeout(self.idle_timeout)),
                };
                match msg.kind {
                    Some(collector_message::Kind::Batch(batch)) => {
                        let ingest = &self.ingest;
                        // Always decode: a replayed batch may define series later batches use.
                        self.decoder
                            .decode(&batch, |l| ingest.register_series(l), &mut resolved)?;
                        if self.decoder.defined_series() > self.limits.max_series {
                            return Err(Error::TooManySeries {
                                limit: self.limits.max_series,
                            });
                        }
                        pace.take(resolved.len() as u64).await;
                        let seen = self.delivered.lock().get(&self.stream_key).copied().unwrap_or(0);
                        if batch.sequence <= seen {
                            duplicates.inc();
                        } else {
                            let ingest = Arc::clone(&self.ingest);
                            let c = cluster.clone();
                            // Storing waits for the WAL's fsync: keep it off the async workers.
                            let (r, back) = tokio::task::spawn_blocking(move || {
                                let r = ingest.append(&c, &resolved);
                                (r, resolved)
                            })
                            .await
                            .map_err(|e| Error::Ingest(e.to_string()))?;
                            resolved = back;
                            r.map_err(Error::Ingest)?;
                            let mut delivered = self.delivered.lock();
                            let entry = delivered.entry(self.stream_key.clone()).or_default();
                            *entry = (*entry).max(batch.sequence);
                            batches.inc();
                            samples.inc_by(resolved.len() as u64);
                        }
                        let ack = aggregator_message::Kind::Ack(proto::BatchAck {
                            sequence: batch.sequence,
                        });
                        if self
                            .tx
                            .send(Ok(AggregatorMessage { kind: Some(ack) }))
                            .await
                            .is_err()
                        {
                            return Ok(());
                        }
                    }
                    Some(collector_message::Kind::Heartbeat(hb)) => {
                        let reply = aggregator_message::Kind::Heartbeat(hb);
                        let _ = self.tx.send(Ok(AggregatorMessage { kind: Some(reply) })).await;
                    }
                    Some(collector_message::Kind::Metadata(batch)) => {
                        self.ingest.metadata(&cluster, &batch.entries);
                    }
                    Some(collector_message::Kind::Topology(topology)) => {
                        self.ingest.topology(&cluster, &self.collector_id, topology);
                    }
                    Some(collector_message::Kind::ConfigAck(ack)) => {
                        self.ingest.config_ack(&cluster, &self.collector_id, ack);
                    }
                    Some(collector_message::Kind::Hello(_)) | None => {}
                }
            }
        }
        .await;
        if let Err(e) = outcome {
            warn!(error = %e, "Relay session failed.");
            self.metrics.reject(e.reason());
            let _ = self.tx.send(Err(e.into())).await;
        } else {
            info!("Collector disconnected.");
        }
        self.metrics.sessions_active.dec();
        self.ingest.session_closed(&cluster, &self.collector_id);
    }
}

/// Sends the session's cluster its current config snapshot and each newer one, until the stream
/// closes.
async fn forward_config(
    mut feed: ConfigFeed,
    tx: mpsc::Sender<std::result::Result<AggregatorMessage, Status>>,
) {
    loop {
        let current = feed.borrow_and_update().clone();
        if let Some(snapshot) = current {
            let kind = aggregator_message::Kind::Config((*snapshot).clone());
            info!(
                version = snapshot.version,
                objects = snapshot.objects.len(),
                "Sending config snapshot."
            );
            if tx.send(Ok(AggregatorMessage { kind: Some(kind) })).await.is_err() {
                return;
            }
        }
        tokio::select! {
            _ = tx.closed() => return,
            changed = feed.changed() => if changed.is_err() { return },
        }
    }
}

/// A token bucket over samples per second (one second of burst) that delays instead of dropping.
struct Pace {
    rate: u64,
    tokens: f64,
    last: tokio::time::Instant,
}

impl Pace {
    fn new(rate: u64) -> Self {
        Self {
            rate,
            tokens: rate as f64,
            last: tokio::time::Instant::now(),
        }
    }

    async fn take(&mut self, n: u64) {
        if self.rate == 0 {
            return;
        }
        let now = tokio::time::Instant::now();
        let rate = self.rate as f64;
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * rate).min(rate);
        self.last = now;
        self.tokens -= n as f64;
        if self.tokens < 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(-self.tokens / rate)).await;
        }
    }
}
