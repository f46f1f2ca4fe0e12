//! `meshfed demo`: a simulated multi-cluster mesh, one collector per cluster and the aggregator,
//! all on localhost, with the URLs printed and a live one-line summary.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use meshfed_cli::mesh::{LocalMesh, MeshOptions};
use meshfed_cli::summary::Summary;
use meshfed_sim::SimConfig;
use tokio_util::sync::CancellationToken;

/// `meshfed demo`
#[derive(Args)]
pub struct DemoArgs {
    /// Number of simulated clusters.
    #[arg(long, default_value_t = 3)]
    clusters: usize,
    /// Pods per workload.
    #[arg(long, default_value_t = 2)]
    pods_per_workload: usize,
    /// Extra copies of the web app (namespaces web-2, web-3, …) to scale the mesh up.
    #[arg(long, default_value_t = 0)]
    extra_namespaces: usize,
    /// Seed for the simulator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Scenario YAML (list of {at_secs, duration_secs, fault}); default: cluster-1's web-api
    /// answers 30% 5xx from 60 s to 180 s.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Aggregator HTTP port (Prometheus API, graph, metrics).
    #[arg(long, default_value_t = 9090)]
    http_port: u16,
    /// Aggregator relay port.
    #[arg(long, default_value_t = 7070)]
    relay_port: u16,
    /// Simulator control API port.
    #[arg(long, default_value_t = 9900)]
    sim_port: u16,
    /// Scrape interval in seconds.
    #[arg(long, default_value_t = 5.0)]
    interval_secs: f64,
    /// Seconds between summary lines.
    #[arg(long, default_value_t = 5)]
    summary_secs: u64,
    /// Where to write the demo's development CA and certificates (default: a temporary directory).
    #[arg(long)]
    certs_dir: Option<PathBuf>,
    /// Run the relay in plaintext instead of mTLS.
    #[arg(long)]
    insecure: bool,
    /// Directory of VirtualDestination files for the failover controller (default: the shipped
    /// `web-api.global`, deploy/examples/virtualdestination-web-api.yaml).
    #[arg(long)]
    virtual_destinations: Option<PathBuf>,
    /// Write each cluster's generated Istio config as YAML under DIR/<cluster>/.
    #[arg(long, value_name = "DIR")]
    config_out: Option<PathBuf>,
}

/// The VirtualDestination the demo ships.
const DEMO_VIRTUAL_DESTINATION: &str = include_str!("../../deploy/examples/virtualdestination-web-api.yaml");

/// Runs the demo until Ctrl-C.
pub async fn run(args: DemoArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let sim = SimConfig {
        seed: args.seed,
        clusters: args.clusters,
        pods_per_workload: args.pods_per_workload,
        extra_namespaces: args.extra_namespaces,
        control_listen: Some(format!("127.0.0.1:{}", args.sim_port)),
        scenario_file: args.scenario,
        ..SimConfig::default()
    };
    sim.validate().context("simulator settings")?;
    let options = MeshOptions {
        sim,
        http_listen: format!("127.0.0.1:{}", args.http_port),
        relay_listen: format!("127.0.0.1:{}", args.relay_port),
        scrape_interval_secs: args.interval_secs,
        scrape_timeout_ms: None,
        tls_dir: (!args.insecure).then(|| {
            args.certs_dir
                .clone()
                .unwrap_or_else(|| std::env::temp_dir().join(format!("meshfed-demo-{}", std::process::id())))
        }),
        controller_dir: None,
        config_out: None,
    };
    let shipped_vd = match &args.virtual_destinations {
        Some(_) => None,
        None => {
            let dir = std::env::temp_dir().join(format!("meshfed-demo-vd-{}", std::process::id()));
            std::fs::create_dir_all(&dir).context("creating the demo's VirtualDestination directory")?;
            std::fs::write(dir.join("web-api-global.yaml"), DEMO_VIRTUAL_DESTINATION)
                .context("writing the demo's VirtualDestination")?;
            Some(dir)
        }
    };
    let options = MeshOptions {
        controller_dir: args.virtual_destinations.clone().or_else(|| shipped_vd.clone()),
        config_out: args.config_out.clone(),
        ..options
    };
    let tls_dir = options.tls_dir.clone();
    let mesh = LocalMesh::start(options).await?;
    let http = mesh.aggregator.http_addr;
    println!(
        "meshfed demo: {} clusters, {} pods",
        mesh.clusters.len(),
        mesh.sim.targets().len()
    );
    println!("  Prometheus API (Grafana datasource URL): http://{http}");
    println!(
        "  example query:      http://{http}/api/v1/query?query=sum%20by%20(source_cluster%2Cdestination_cluster)%20(rate(istio_requests_total%5B1m%5D))"
    );
    println!("  service graph:      http://{http}/api/v1/graph");
    println!("  self-metrics:       http://{http}/metrics");
    println!("  failover status:    http://{http}/api/v1/virtualdestinations");
    if let Some(dir) = &args.config_out {
        println!("  generated config:   {}/<cluster>/", dir.display());
    }
    if let Some(c) = mesh.sim.control_addr() {
        println!("  simulator control:  http://{c}/faults");
    }
    match &tls_dir {
        Some(d) => println!("  relay: mTLS, development certificates in {}", d.display()),
        None => println!("  relay: plaintext (--insecure)"),
    }
    println!(
        "  default scenario: cluster-1 web-api answers 30% 5xx from 60s to 180s; web-api.global fails over to cluster-2 and back. Ctrl-C stops."
    );
    let mut summary = Summary::new(mesh.clusters.len());
    let mut tick = tokio::time::interval(Duration::from_secs(args.summary_secs.max(1)));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {
                let aggregator = &mesh.aggregator;
                let line = tokio::task::block_in_place(|| summary.line(aggregator));
                println!("{line}");
            }
        }
    }
    mesh.shutdown().await;
    if let Some(dir) = &shipped_vd {
        let _ = std::fs::remove_dir_all(dir);
    }
    // Certificates the demo made for itself go with it.
    if args.certs_dir.is_none()
        && let Some(dir) = &tls_dir
    {
        let _ = std::fs::remove_dir_all(dir);
    }
    println!("meshfed demo stopped.");
    Ok(())
}
