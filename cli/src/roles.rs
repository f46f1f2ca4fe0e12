//! The long-running roles: `meshfed aggregator`, `meshfed collector`, `meshfed sim`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use meshfed_aggregator::AggregatorConfig;
use meshfed_collector::CollectorConfig;
use meshfed_collector::config::{RelayConfig, ScrapeConfig, TargetsConfig};
use meshfed_relay::tls::TlsFiles;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// A token cancelled on Ctrl-C or SIGTERM.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        info!("Shutting down.");
        t.cancel();
    });
    token
}

/// `meshfed aggregator`
#[derive(Args)]
pub struct AggregatorArgs {
    /// YAML config file; flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Relay (gRPC) listen address.
    #[arg(long)]
    relay_listen: Option<String>,
    /// HTTP (Prometheus API, graph, metrics) listen address.
    #[arg(long)]
    http_listen: Option<String>,
    /// Directory for the store's WAL and blocks (in memory when not given).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    tls: TlsArgs,
}

/// Relay mTLS flags shared by the aggregator and the collector.
#[derive(Args)]
pub struct TlsArgs {
    /// Directory in the `meshfed certs` layout: ca.pem, <name>.pem, <name>-key.pem.
    #[arg(long)]
    tls_dir: Option<PathBuf>,
    /// CA bundle peers must chain to (overrides --tls-dir).
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// Own certificate chain, PEM.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// Own private key, PEM.
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// Run the relay in plaintext. Any client can then claim any cluster: experiments only.
    #[arg(long)]
    insecure: bool,
}

impl TlsArgs {
    /// The files these flags name, where `name` picks `<name>.pem` in `--tls-dir`.
    fn files(&self, name: &str) -> anyhow::Result<Option<TlsFiles>> {
        let from_dir = self.tls_dir.as_ref().map(|d| TlsFiles::in_dir(d, name));
        let files = match (&self.tls_ca, &self.tls_cert, &self.tls_key, from_dir) {
            (None, None, None, None) => return Ok(None),
            (ca, cert, key, dir) => TlsFiles {
                ca_file: ca
                    .clone()
                    .or_else(|| dir.as_ref().map(|d| d.ca_file.clone()))
                    .context("--tls-ca is required")?,
                cert_file: cert
                    .clone()
                    .or_else(|| dir.as_ref().map(|d| d.cert_file.clone()))
                    .context("--tls-cert is required")?,
                key_file: key
                    .clone()
                    .or_else(|| dir.as_ref().map(|d| d.key_file.clone()))
                    .context("--tls-key is required")?,
            },
        };
        Ok(Some(files))
    }
}

/// Runs the aggregator until shutdown.
pub async fn aggregator(args: AggregatorArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(p) => AggregatorConfig::from_file(p)?,
        None => AggregatorConfig::default(),
    };
    if let Some(a) = args.relay_listen {
        config.relay_listen = a;
    }
    if let Some(a) = args.http_listen {
        config.http_listen = a;
    }
    if args.data_dir.is_some() {
        config.data_dir = args.data_dir;
    }
    if let Some(files) = args.tls.files("aggregator")? {
        config.tls = Some(files);
    }
    config.insecure |= args.tls.insecure;
    meshfed_aggregator::run(config, shutdown)
        .await
        .context("aggregator")
}

/// `meshfed collector`
#[derive(Args)]
pub struct CollectorArgs {
    /// YAML config file; flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Cluster name (required without --config).
    #[arg(long)]
    cluster: Option<String>,
    /// Aggregator relay address, e.g. http://127.0.0.1:7070 (repeatable).
    #[arg(long = "relay")]
    relay: Vec<String>,
    /// Prometheus file_sd target file (repeatable).
    #[arg(long = "targets-file")]
    targets_files: Vec<PathBuf>,
    /// Scrape interval in seconds.
    #[arg(long)]
    interval_secs: Option<f64>,
    /// Address for the collector's own /metrics.
    #[arg(long)]
    listen: Option<String>,
    /// Name the aggregator's certificate must carry, if not the relay address's host.
    #[arg(long)]
    server_name: Option<String>,
    /// Directory for batches not yet acknowledged (survives restarts).
    #[arg(long)]
    buffer_dir: Option<PathBuf>,
    #[command(flatten)]
    tls: TlsArgs,
}

/// Runs a collector until shutdown.
pub async fn collector(args: CollectorArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(p) => CollectorConfig::from_file(p)?,
        None => CollectorConfig {
            cluster: args
                .cluster
                .clone()
                .context("--cluster is required without --config")?,
            collector_id: std::env::var("HOSTNAME").unwrap_or_else(|_| "collector-0".into()),
            relay: RelayConfig::default(),
            scrape: ScrapeConfig::default(),
            targets: TargetsConfig::default(),
            listen_addr: None,
            topology: None,
            agent: Default::default(),
        },
    };
    if let Some(c) = args.cluster {
        config.cluster = c;
    }
    if !args.relay.is_empty() {
        config.relay.endpoints = args.relay;
    }
    config.targets.files.extend(args.targets_files);
    if let Some(i) = args.interval_secs {
        config.scrape.interval_secs = i;
    }
    if args.listen.is_some() {
        config.listen_addr = args.listen;
    }
    if let Some(files) = args.tls.files(&config.cluster)? {
        config.relay.tls = Some(files);
    }
    if args.server_name.is_some() {
        config.relay.server_name = args.server_name;
    }
    if args.buffer_dir.is_some() {
        config.relay.buffer_dir = args.buffer_dir;
    }
    config.relay.insecure |= args.tls.insecure;
    config
        .validate()
        .map_err(anyhow::Error::msg)
        .context("collector config")?;
    meshfed_collector::run(config, shutdown)
        .await
        .context("collector")
}

/// `meshfed sim`
#[derive(Args)]
pub struct SimArgs {
    /// YAML simulator config (see `sim/src/config.rs`); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Number of clusters.
    #[arg(long)]
    clusters: Option<usize>,
    /// Pods per workload.
    #[arg(long)]
    pods_per_workload: Option<usize>,
    /// Extra copies of the web app, to scale the mesh.
    #[arg(long)]
    extra_namespaces: Option<usize>,
    /// Extra `envoy_cluster_*` series per pod (per-upstream-cluster stats of an unscoped sidecar).
    #[arg(long)]
    envoy_upstream_series: Option<usize>,
    /// Seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Scenario YAML file.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Control API listen address.
    #[arg(long)]
    control_listen: Option<String>,
    /// Write Prometheus file_sd JSON for every pod here.
    #[arg(long)]
    file_sd: Option<PathBuf>,
}

/// Runs the simulator until shutdown.
pub async fn sim(args: SimArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(p) => meshfed_sim::SimConfig::from_yaml_file(p)?,
        None => meshfed_sim::SimConfig::default(),
    };
    if let Some(v) = args.clusters {
        config.clusters = v;
    }
    if let Some(v) = args.pods_per_workload {
        config.pods_per_workload = v;
    }
    if let Some(v) = args.extra_namespaces {
        config.extra_namespaces = v;
    }
    if let Some(v) = args.envoy_upstream_series {
        config.envoy_upstream_series = v;
    }
    if let Some(v) = args.seed {
        config.seed = v;
    }
    if args.scenario.is_some() {
        config.scenario_file = args.scenario;
    }
    if args.control_listen.is_some() {
        config.control_listen = args.control_listen;
    }
    if args.file_sd.is_some() {
        config.file_sd_path = args.file_sd;
    }
    config.validate()?;
    meshfed_sim::run(config, shutdown).await.context("simulator")
}

/// `meshfed certs`
#[derive(Args)]
pub struct CertsArgs {
    /// Where to write ca.pem, aggregator.pem and <cluster>.pem (with -key.pem files).
    #[arg(long, default_value = "certs")]
    dir: PathBuf,
    /// Cluster names to issue collector certificates for (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "cluster-1,cluster-2,cluster-3")]
    clusters: Vec<String>,
    /// DNS names and IP addresses the aggregator's certificate is valid for.
    #[arg(long, value_delimiter = ',', default_value = "localhost,127.0.0.1")]
    server_names: Vec<String>,
    /// SPIFFE trust domain of the collector identities.
    #[arg(long, default_value = "meshfed.local")]
    trust_domain: String,
    /// Validity in days.
    #[arg(long, default_value_t = 365)]
    days: i64,
}

/// Writes a development PKI.
pub fn certs(args: CertsArgs) -> anyhow::Result<()> {
    meshfed_relay::tls::devca::write_dev_pki(
        &args.dir,
        &args.trust_domain,
        &args.clusters,
        &args.server_names,
        args.days,
    )?;
    println!(
        "Wrote a development CA, an aggregator certificate and {} collector certificates to {}.",
        args.clusters.len(),
        args.dir.display()
    );
    println!(
        "Development only: production clusters should get certificates from their own PKI (see README, Security)."
    );
    Ok(())
}
