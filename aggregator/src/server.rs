//! Starting the aggregator: bind the relay and HTTP listeners, serve until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use meshfed_query::{Engine, EngineOptions};
use meshfed_relay::server::{RelayServerMetrics, RelayService, SessionLimits};
use meshfed_store::{Store, StoreOptions};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use std::time::Duration;

use meshfed_relay::tls::TlsReloader;
use meshfed_relay::tls::server::{build_server_config, tls_incoming};

use crate::config::{AggregatorConfig, GraphConfig};
use crate::graph::GraphService;
use crate::graph::derived::DerivedSeries;
use crate::graph_http::GraphState;
use crate::health::HealthModel;
use crate::http::{AppState, SelfGauges, router};
use crate::ingest::StoreIngest;
use crate::metadata::{MetadataLimits, MetadataStore};
use crate::{Error, Result};
use parking_lot::Mutex;

/// How long HTTP responses in flight may take to finish after shutdown starts.
const HTTP_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running aggregator.
pub struct Aggregator {
    /// Where collectors connect.
    pub relay_addr: SocketAddr,
    /// Where the HTTP API is served.
    pub http_addr: SocketAddr,
    /// The store.
    pub store: Arc<Store>,
    /// The PromQL engine.
    pub engine: Arc<Engine>,
    /// The relay sink (connected clusters).
    pub ingest: Arc<StoreIngest>,
    /// The service graph.
    pub graph: Arc<GraphService>,
    /// Service health.
    pub health: Arc<HealthModel>,
    /// The derived series' totals (`graph.derived_series`), written every
    /// `graph.derived_interval_ms`.
    pub derived: Option<Arc<Mutex<DerivedSeries>>>,
    /// The failover and routing controller.
    pub controller: Arc<crate::controller::Controller>,
    tasks: Vec<JoinHandle<()>>,
}

impl Aggregator {
    /// Binds both listeners (port 0 picks a free port) and starts serving until `shutdown` fires.
    pub async fn start(config: &AggregatorConfig, shutdown: CancellationToken) -> Result<Self> {
        let store = Arc::new(open_store(config)?);
        let metadata = Arc::new(MetadataStore::new(MetadataLimits::default()));
        let engine = Arc::new(
            Engine::new(Arc::clone(&store), EngineOptions::default()).with_metadata(metadata.clone()),
        );
        config.validate().map_err(|reason| Error::Config {
            path: "aggregator config".into(),
            reason,
        })?;
        let mut graph = GraphService::new(&config.graph.windows).map_err(|reason| Error::Config {
            path: "graph.windows".into(),
            reason,
        })?;
        if !config.graph.enabled {
            graph = graph.without_tracking();
        }
        // Edge increments feed only the derived series.
        graph.table.collect_edge_increments(config.graph.derived_series);
        let graph = Arc::new(graph);
        let health = Arc::new(HealthModel::new(config.health.clone()));
        let controller = Arc::new(crate::controller::Controller::new(config.controller.clone()));
        let mut ingest = StoreIngest::new(Arc::clone(&store), Arc::clone(&graph.table))
            .with_metadata(Arc::clone(&metadata));
        if controller.enabled() {
            ingest = ingest.with_control(Arc::clone(&controller.hub));
        }
        let ingest = Arc::new(ingest);
        let relay_metrics = RelayServerMetrics::default();
        let gauges = SelfGauges::default();
        let mut registry = Registry::default();
        relay_metrics.register(&mut registry);
        ingest.register(&mut registry);
        metadata.register(&mut registry);
        controller.register(&mut registry);
        gauges.register(&mut registry);

        let bind = |addr: &str| {
            let addr = addr.to_owned();
            async move {
                TcpListener::bind(&addr)
                    .await
                    .map_err(|source| Error::Listen { addr, source })
            }
        };
        let relay_listener = bind(&config.relay_listen).await?;
        let http_listener = bind(&config.http_listen).await?;
        let relay_addr = local_addr(&relay_listener, &config.relay_listen)?;
        let http_addr = local_addr(&http_listener, &config.http_listen)?;

        let service = RelayService::new(Arc::clone(&ingest), relay_metrics.clone(), config.tls.is_some())
            .with_limits(SessionLimits {
                max_series: config.max_series_per_collector,
                max_samples_per_sec: config.max_samples_per_sec_per_collector,
            })
            .into_server(config.max_relay_message_bytes);
        let server = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(20)))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)))
            .add_service(service);
        let stop = shutdown.clone();
        let mut tls_reloader = None;
        let relay_task = match &config.tls {
            Some(files) => {
                let tls = Arc::new(TlsReloader::new(files.clone(), build_server_config).map_err(|e| {
                    Error::Config {
                        path: "relay tls".into(),
                        reason: e.to_string(),
                    }
                })?);
                tls.spawn_watch(Duration::from_secs(2), shutdown.clone());
                let incoming = tls_incoming(
                    relay_listener,
                    Arc::clone(&tls),
                    relay_metrics.handshake_failures(),
                    Duration::from_secs(10),
                    shutdown.clone(),
                );
                tls_reloader = Some(tls);
                tokio::spawn(async move {
                    if let Err(e) = server
                        .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                        .await
                    {
                        tracing::error!(error = %e, "Relay server failed.");
                    }
                })
            }
            None => {
                warn!(addr = %relay_addr, "Relay runs WITHOUT TLS (--insecure): any client can claim any cluster.");
                let incoming = tokio_stream::wrappers::TcpListenerStream::new(relay_listener);
                tokio::spawn(async move {
                    if let Err(e) = server
                        .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                        .await
                    {
                        tracing::error!(error = %e, "Relay server failed.");
                    }
                })
            }
        };
        if let Some(tls) = &tls_reloader {
            registry.register_collector(Box::new(CertExpiry(Arc::clone(tls))));
        }

        let derived = (config.graph.enabled && config.graph.derived_series)
            .then(|| Arc::new(Mutex::new(DerivedSeries::new(Arc::clone(&store)))));
        let graph_state = GraphState {
            graph: Arc::clone(&graph),
            health: Arc::clone(&health),
            refresh_ms: config.graph.refresh_ms as i64,
            shutdown: shutdown.clone(),
            rendered: Default::default(),
        };
        let state = AppState {
            engine: Arc::clone(&engine),
            ingest: Arc::clone(&ingest),
            registry: Arc::new(registry),
            gauges,
            graph: graph_state.clone(),
        };
        let app = router(state).merge(crate::controller::http::router(Arc::clone(&controller)));
        let stop = shutdown.clone();
        let http_task = tokio::spawn(async move {
            let serve =
                axum::serve(http_listener, app).with_graceful_shutdown(stop.clone().cancelled_owned());
            // Graceful shutdown waits for open responses; a client that stops reading an event
            // stream must not keep the process alive.
            let deadline = async {
                stop.cancelled().await;
                tokio::time::sleep(HTTP_SHUTDOWN_GRACE).await;
            };
            tokio::select! {
                result = serve => {
                    if let Err(e) = result {
                        tracing::error!(error = %e, "HTTP server failed.");
                    }
                }
                () = deadline => warn!("HTTP connections still open after the shutdown grace period; closing them."),
            }
        });
        let mut tasks = vec![relay_task, http_task];
        if config.graph.enabled {
            tasks.push(spawn_graph_upkeep(
                graph_state,
                derived.clone(),
                &config.graph,
                shutdown.clone(),
            ));
        }
        if controller.enabled() {
            tasks.push(crate::controller::spawn(
                Arc::clone(&controller),
                Arc::clone(&health),
                Arc::clone(&graph),
                shutdown.clone(),
            ));
        }
        if config.data_dir.is_some() {
            tasks.push(spawn_maintenance(Arc::clone(&store), shutdown.clone()));
        }
        info!(relay = %relay_addr, http = %http_addr, "Aggregator listening.");
        Ok(Self {
            relay_addr,
            http_addr,
            store,
            engine,
            ingest,
            graph,
            health,
            derived,
            controller,
            tasks,
        })
    }

    /// Waits until both servers have stopped (after the shutdown token fired).
    pub async fn join(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Exports the relay server certificate's expiry at scrape time.
#[derive(Debug)]
struct CertExpiry(Arc<TlsReloader<rustls::ServerConfig>>);

impl prometheus_client::collector::Collector for CertExpiry {
    fn encode(&self, mut encoder: prometheus_client::encoding::DescriptorEncoder<'_>) -> std::fmt::Result {
        use prometheus_client::encoding::EncodeMetric;
        let gauge = prometheus_client::metrics::gauge::ConstGauge::new(self.0.not_after_unix());
        let metric = encoder.encode_descriptor(
            "meshfed_relay_certificate_expiry_timestamp_seconds",
            "Expiry of the relay server certificate in use (Unix seconds)",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(metric)
    }
}

fn open_store(config: &AggregatorConfig) -> Result<Store> {
    let Some(dir) = &config.data_dir else {
        warn!("No data_dir: the store is in memory and everything is lost on restart.");
        return Ok(Store::new(StoreOptions::default()));
    };
    let options = StoreOptions {
        retention_ms: Some((config.retention_days * 86_400_000.0) as i64),
        ..StoreOptions::default()
    };
    let store = Store::open(dir, options).map_err(|e| Error::Config {
        path: dir.display().to_string(),
        reason: e.to_string(),
    })?;
    if let Some(r) = store.replay_stats() {
        info!(
            dir = %dir.display(),
            series = r.series,
            samples = r.samples,
            dropped_records = r.dropped_records,
            took = ?r.duration,
            "Store opened; WAL replayed."
        );
    }
    Ok(store)
}

/// Cuts old head data into blocks, compacts and applies retention, once a minute.
fn spawn_maintenance(store: Arc<Store>, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let s = Arc::clone(&store);
            match tokio::task::spawn_blocking(move || s.maintain()).await {
                Ok(Ok(report)) => tracing::debug!(?report, "Store maintenance done."),
                Ok(Err(e)) => warn!(error = %e, "Store maintenance failed."),
                Err(e) => warn!(error = %e, "Store maintenance panicked."),
            }
        }
    })
}

/// Keeps the graph current: refreshes the window snapshots every `refresh_ms`, evaluates health
/// every `health_interval_ms` and writes the derived series every `derived_interval_ms`.
fn spawn_graph_upkeep(
    state: GraphState,
    derived: Option<Arc<Mutex<DerivedSeries>>>,
    config: &GraphConfig,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let ticker = |ms: u64, first: Duration| {
        let period = Duration::from_millis(ms);
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + first.min(period), period);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    };
    let mut refresh = ticker(config.refresh_ms, Duration::ZERO);
    let mut evaluate = ticker(config.health_interval_ms, Duration::ZERO);
    // The first write after one interval: there is nothing to write before.
    let mut write = ticker(config.derived_interval_ms, Duration::MAX);
    if derived.is_some() && config.derived_interval_ms > 300_000 {
        warn!(
            derived_interval_ms = config.derived_interval_ms,
            "The derived series are written less often than Prometheus' 5 minute lookback: they go stale between writes."
        );
    }
    let (graph, health) = (Arc::clone(&state.graph), Arc::clone(&state.health));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = evaluate.tick() => {
                    evaluate_health(&graph, &health);
                }
                _ = refresh.tick() => {
                    let s = state.clone();
                    let now = crate::http::now_ms();
                    if let Err(e) = tokio::task::spawn_blocking(move || {
                        s.graph.refresh(now);
                        s.prerender();
                    }).await {
                        warn!(error = %e, "Graph refresh panicked.");
                    }
                }
                _ = write.tick(), if derived.is_some() => {
                    let (g, h, d) = (Arc::clone(&graph), Arc::clone(&health), derived.clone());
                    let now = crate::http::now_ms();
                    if let Err(e) = tokio::task::spawn_blocking(move || write_derived(&g, &h, d.as_deref(), now)).await {
                        warn!(error = %e, "Writing the derived series panicked.");
                    }
                }
            }
        }
    })
}

/// Adds the graph's increments since the last call to the derived series and writes them, with
/// health's series, at `at_ms` (nothing without derived series).
fn write_derived(
    graph: &GraphService,
    health: &HealthModel,
    derived: Option<&Mutex<DerivedSeries>>,
    at_ms: i64,
) {
    let Some(derived) = derived else { return };
    let mut d = derived.lock();
    graph.table.drain_increments(|id, edge, inc| d.add(id, edge, inc));
    d.write(at_ms, health.series());
}

fn local_addr(l: &TcpListener, addr: &str) -> Result<SocketAddr> {
    l.local_addr().map_err(|source| Error::Listen {
        addr: addr.to_owned(),
        source,
    })
}

/// Runs the aggregator until `shutdown` fires.
pub async fn run(config: AggregatorConfig, shutdown: CancellationToken) -> Result<()> {
    let agg = Aggregator::start(&config, shutdown).await?;
    agg.join().await;
    Ok(())
}

impl Aggregator {
    /// Writes the derived series now, at `at_ms` (the background task does this every
    /// `graph.derived_interval_ms`): the graph's increments since the last write, and health's
    /// series.
    pub fn write_derived(&self, at_ms: i64) {
        write_derived(&self.graph, &self.health, self.derived.as_deref(), at_ms);
    }

    /// Evaluates health now (the background task does this every `health_interval_ms`).
    pub fn evaluate_health(&self) -> Vec<crate::health::Transition> {
        evaluate_health(&self.graph, &self.health)
    }
}

fn evaluate_health(graph: &GraphService, health: &HealthModel) -> Vec<crate::health::Transition> {
    let now = crate::http::now_ms();
    let ages = graph
        .table
        .cluster_last_seen()
        .into_iter()
        .map(|(c, t)| (c, now - t))
        .collect();
    health.evaluate(&graph.table, now, &ages)
}
