//! The collector's main loop: discovery refresh, scrape loops, relay client, own HTTP endpoint.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use meshfed_relay::client::{RelayClient, RelayClientOptions};
use meshfed_relay::client_metrics::RelayClientCollector;
use meshfed_relay::tls::TlsReloader;
use meshfed_relay::tls::client::build_client_config;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::CollectorConfig;
use crate::discovery::discover;
use crate::manager::ScrapeManager;
use crate::metrics::CollectorMetrics;
use crate::{Error, Result};

/// Runs the collector until `shutdown` fires, then stops scraping, hands the last scrapes to the
/// relay and waits (bounded) for the aggregator to acknowledge them.
pub async fn run(config: CollectorConfig, shutdown: CancellationToken) -> Result<()> {
    let metrics = CollectorMetrics::default();
    let mut registry = Registry::default();
    metrics.register(&mut registry);

    let relay_stop = CancellationToken::new();
    let tls = match &config.relay.tls {
        Some(files) => {
            let tls = TlsReloader::new(files.clone(), build_client_config).map_err(|e| Error::Config {
                path: "relay.tls".into(),
                reason: e.to_string(),
            })?;
            let tls = Arc::new(tls);
            tls.spawn_watch(Duration::from_secs(2), relay_stop.clone());
            Some(tls)
        }
        None => {
            warn!("Relay runs WITHOUT TLS (relay.insecure): the aggregator cannot verify this cluster.");
            None
        }
    };
    let options = RelayClientOptions {
        endpoints: config.relay.endpoints.clone(),
        cluster: config.cluster.clone(),
        collector_id: config.collector_id.clone(),
        tls,
        server_name: config.relay.server_name.clone(),
        buffer_dir: config.relay.buffer_dir.clone(),
        buffer_max_bytes: config.relay.buffer_max_bytes,
        max_backoff_ms: config.relay.max_backoff_ms,
        peer_timeout_ms: config.relay.peer_timeout_ms,
        heartbeat_interval_ms: (config.relay.peer_timeout_ms / 4).max(100),
        ..RelayClientOptions::default()
    };
    let (relay, relay_task) =
        RelayClient::try_spawn(options, relay_stop.clone()).map_err(|e| Error::Config {
            path: "relay.buffer_dir".into(),
            reason: e.to_string(),
        })?;
    registry.register_collector(Box::new(RelayClientCollector(relay.stats_handle())));
    let registry = Arc::new(registry);

    if let Some(addr) = &config.listen_addr {
        serve_http(addr, Arc::clone(&registry), shutdown.clone()).await?;
    }

    info!(cluster = %config.cluster, "Collector started.");
    let side_stop = CancellationToken::new();
    let mut side_tasks = vec![tokio::spawn(crate::agent::run(
        config.agent.clone(),
        config.cluster.clone(),
        relay.clone(),
        metrics.clone(),
        side_stop.clone(),
    ))];
    if let Some(topology) = &config.topology {
        side_tasks.push(tokio::spawn(crate::topology::run(
            topology.clone(),
            relay.clone(),
            metrics.clone(),
            side_stop.clone(),
        )));
    }
    let mut manager = ScrapeManager::new(
        config.scrape.clone(),
        config.cluster.clone(),
        relay.clone(),
        metrics.clone(),
    );
    let mut refresh = tokio::time::interval(Duration::from_secs_f64(config.targets.refresh_secs.max(0.1)));
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut known = Vec::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = refresh.tick() => {}
        }
        let (targets, errors) = discover(&config.targets, &config.scrape);
        for e in &errors {
            warn!(error = %e, "Target discovery failed.");
            metrics.discovery_errors.inc();
        }
        if targets != known {
            info!(targets = targets.len(), "Targets changed.");
            manager.sync(&targets);
            known = targets;
        }
    }
    side_stop.cancel();
    for t in side_tasks {
        let _ = t.await;
    }
    manager.shutdown().await;
    relay_stop.cancel();
    let _ = relay_task.await;
    info!(
        batches_acked = relay.stats().batches_acked.load(Ordering::Relaxed),
        "Collector stopped."
    );
    Ok(())
}

async fn serve_http(addr: &str, registry: Arc<Registry>, shutdown: CancellationToken) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Listen {
            addr: addr.to_owned(),
            source,
        })?;
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let registry = Arc::clone(&registry);
                async move {
                    let mut body = String::new();
                    let _ = prometheus_client::encoding::text::encode(&mut body, &registry);
                    (
                        [(
                            "content-type",
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        body,
                    )
                }
            }),
        )
        .route("/-/healthy", get(|| async { "OK" }))
        .route("/-/ready", get(|| async { "OK" }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
    });
    Ok(())
}
