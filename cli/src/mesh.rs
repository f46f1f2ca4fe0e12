//! A whole federation in one process: the simulator, one collector per simulated cluster and the
//! aggregator, wired over real loopback sockets exactly as separate processes would be.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use meshfed_aggregator::{Aggregator, AggregatorConfig};
use meshfed_collector::CollectorConfig;
use meshfed_collector::config::{RelayConfig, ScrapeConfig, StaticTarget, TargetsConfig};
use meshfed_relay::tls::TlsFiles;
use meshfed_relay::tls::devca::write_dev_pki;
use meshfed_sim::{RunningSim, SimConfig, Simulator};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How to lay out the in-process mesh.
#[derive(Clone, Debug)]
pub struct MeshOptions {
    /// The simulated clusters and their traffic.
    pub sim: SimConfig,
    /// Aggregator HTTP listen address (`127.0.0.1:0` for any free port).
    pub http_listen: String,
    /// Aggregator relay listen address.
    pub relay_listen: String,
    /// Collector scrape interval.
    pub scrape_interval_secs: f64,
    /// Collector scrape timeout; 80% of the interval when `None`.
    pub scrape_timeout_ms: Option<u64>,
    /// Run the relay with mTLS, writing a development CA and certificates into this directory;
    /// plaintext when `None`.
    pub tls_dir: Option<PathBuf>,
    /// Run the failover controller on the `VirtualDestination` files in this directory. The
    /// collectors then report the simulator's topology and apply the decided routing to it, so
    /// decisions change the traffic that follows. Needs the simulator's control API
    /// (`sim.control_listen`).
    pub controller_dir: Option<PathBuf>,
    /// Write every cluster's generated config under this directory (`<dir>/<cluster>/`).
    pub config_out: Option<PathBuf>,
}

impl Default for MeshOptions {
    fn default() -> Self {
        Self {
            sim: SimConfig::default(),
            http_listen: "127.0.0.1:0".into(),
            relay_listen: "127.0.0.1:0".into(),
            scrape_interval_secs: 5.0,
            scrape_timeout_ms: None,
            tls_dir: None,
            controller_dir: None,
            config_out: None,
        }
    }
}

/// The running mesh.
pub struct LocalMesh {
    /// The simulator.
    pub sim: RunningSim,
    /// The aggregator.
    pub aggregator: Aggregator,
    /// Cluster names, one collector each.
    pub clusters: Vec<String>,
    collectors: Vec<(CancellationToken, JoinHandle<meshfed_collector::Result<()>>)>,
    aggregator_stop: CancellationToken,
}

impl LocalMesh {
    /// Starts the simulator, then the aggregator, then one collector per cluster.
    pub async fn start(options: MeshOptions) -> anyhow::Result<Self> {
        let sim = Simulator::start(options.sim.clone())
            .await
            .context("starting the simulator")?;
        let mut by_cluster: BTreeMap<String, Vec<StaticTarget>> = BTreeMap::new();
        for t in sim.targets() {
            let labels = BTreeMap::from([("namespace".to_owned(), t.namespace), ("pod".to_owned(), t.pod)]);
            by_cluster
                .entry(t.cluster)
                .or_default()
                .push(StaticTarget { url: t.url, labels });
        }
        if let Some(dir) = &options.tls_dir {
            let clusters: Vec<String> = by_cluster.keys().cloned().collect();
            let names = ["localhost".to_owned(), "127.0.0.1".to_owned()];
            write_dev_pki(dir, "meshfed.local", &clusters, &names, 30)
                .context("writing development certificates")?;
        }
        let aggregator_stop = CancellationToken::new();
        let config = AggregatorConfig {
            relay_listen: options.relay_listen.clone(),
            http_listen: options.http_listen.clone(),
            tls: options
                .tls_dir
                .as_ref()
                .map(|d| TlsFiles::in_dir(d, "aggregator")),
            insecure: options.tls_dir.is_none(),
            controller: meshfed_aggregator::controller::ControllerConfig {
                dir: options.controller_dir.clone(),
                config_out: options.config_out.clone(),
                ..Default::default()
            },
            ..AggregatorConfig::default()
        };
        let sim_url = sim.control_addr().map(|a| format!("http://{a}"));
        if options.controller_dir.is_some() && sim_url.is_none() {
            anyhow::bail!("the controller needs the simulator's control API (sim.control_listen)");
        }
        let sim_url = sim_url.filter(|_| options.controller_dir.is_some());
        let aggregator = Aggregator::start(&config, aggregator_stop.clone())
            .await
            .context("starting the aggregator")?;
        let scheme = if options.tls_dir.is_some() {
            "https"
        } else {
            "http"
        };
        let relay = format!("{scheme}://{}", aggregator.relay_addr);
        let mut collectors = Vec::new();
        for (cluster, targets) in &by_cluster {
            let config = CollectorConfig {
                cluster: cluster.clone(),
                collector_id: format!("{cluster}-collector"),
                relay: RelayConfig {
                    endpoints: vec![relay.clone()],
                    tls: options.tls_dir.as_ref().map(|d| TlsFiles::in_dir(d, cluster)),
                    server_name: None,
                    insecure: options.tls_dir.is_none(),
                    ..RelayConfig::default()
                },
                scrape: ScrapeConfig {
                    interval_secs: options.scrape_interval_secs,
                    timeout_ms: options
                        .scrape_timeout_ms
                        .unwrap_or((options.scrape_interval_secs * 800.0) as u64),
                    ..ScrapeConfig::default()
                },
                targets: TargetsConfig {
                    static_targets: targets.clone(),
                    ..TargetsConfig::default()
                },
                listen_addr: None,
                topology: sim_url
                    .as_ref()
                    .map(|u| meshfed_collector::topology::TopologyConfig {
                        url: Some(format!("{u}/topology/clusters/{cluster}")),
                        file: None,
                        refresh_secs: 5.0,
                    }),
                agent: meshfed_collector::agent::AgentConfig {
                    gitops_dir: None,
                    simulator_url: sim_url.clone(),
                    kubernetes: None,
                },
            };
            let stop = CancellationToken::new();
            collectors.push((stop.clone(), tokio::spawn(meshfed_collector::run(config, stop))));
        }
        Ok(Self {
            sim,
            aggregator,
            clusters: by_cluster.into_keys().collect(),
            collectors,
            aggregator_stop,
        })
    }

    /// Stops every collector and waits until each has handed its last scrape to the aggregator
    /// and had it acknowledged.
    pub async fn stop_collectors(&mut self) {
        for (stop, _) in &self.collectors {
            stop.cancel();
        }
        for (_, task) in self.collectors.drain(..) {
            if let Ok(Err(e)) = task.await {
                tracing::warn!(error = %e, "Collector failed.");
            }
        }
    }

    /// Stops everything.
    pub async fn shutdown(mut self) {
        self.stop_collectors().await;
        self.aggregator_stop.cancel();
        self.aggregator.join().await;
        self.sim.shutdown().await;
    }
}
