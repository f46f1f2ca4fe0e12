//! Starting the aggregator: bind the relay and HTTP listeners, serve until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use meshfed_query::{Engine, EngineOptions};
use meshfed_relay::server::{RelayServerMetrics, RelayService};
use meshfed_store::{Store, StoreOptions};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::AggregatorConfig;
use crate::http::{AppState, SelfGauges, router};
use crate::ingest::StoreIngest;
use crate::{Error, Result};

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
    tasks: Vec<JoinHandle<()>>,
}

impl Aggregator {
    /// Binds both listeners (port 0 picks a free port) and starts serving until `shutdown` fires.
    pub async fn start(config: &AggregatorConfig, shutdown: CancellationToken) -> Result<Self> {
        let store = Arc::new(Store::new(StoreOptions::default()));
        let engine = Arc::new(Engine::new(Arc::clone(&store), EngineOptions::default()));
        let ingest = Arc::new(StoreIngest::new(Arc::clone(&store)));
        let relay_metrics = RelayServerMetrics::default();
        let gauges = SelfGauges::default();
        let mut registry = Registry::default();
        relay_metrics.register(&mut registry);
        ingest.register(&mut registry);
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

        let service =
            RelayService::new(Arc::clone(&ingest), relay_metrics).into_server(config.max_relay_message_bytes);
        let stop = shutdown.clone();
        let relay_task = tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(relay_listener);
            let result = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "Relay server failed.");
            }
        });

        let state = AppState {
            engine: Arc::clone(&engine),
            ingest: Arc::clone(&ingest),
            registry: Arc::new(registry),
            gauges,
        };
        let app = router(state);
        let stop = shutdown.clone();
        let http_task = tokio::spawn(async move {
            let result = axum::serve(http_listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "HTTP server failed.");
            }
        });
        info!(relay = %relay_addr, http = %http_addr, "Aggregator listening.");
        Ok(Self {
            relay_addr,
            http_addr,
            store,
            engine,
            ingest,
            tasks: vec![relay_task, http_task],
        })
    }

    /// Waits until both servers have stopped (after the shutdown token fired).
    pub async fn join(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
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
