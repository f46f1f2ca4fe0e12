//! A deterministic (seeded) multi-cluster Istio mesh simulator.
//!
//! Each simulated pod serves `GET /stats/prometheus` on its own loopback port in the exact shape of
//! an Istio sidecar (Istio stats-filter labels in their order, Envoy cluster stats, membership and
//! outlier gauges). Counters are exact functions of simulated time, `floor(∫ rate dt)` over
//! piecewise-constant segments cut by faults and routing changes, so tests know the ground truth
//! ([`Mesh::edge_rates`], [`Mesh::cluster_pair_rate`], [`Mesh::samples_at`]).
//!
//! The mesh (defaults: 3 clusters, 2 pods per workload, rates per source workload instance):
//!
//! | namespace | workload (clusters) | calls |
//! |---|---|---|
//! | istio-system | istio-ingressgateway (all) | productpage 10 rps, frontend 20 rps |
//! | bookinfo | productpage-v1 (1, 2) | details 10, reviews 10 |
//! | bookinfo | details-v1 (all), reviews-v1/v2/v3 (1/2/3), ratings-v1 (2, 3) | reviews-v2/v3 → ratings 6 |
//! | web | frontend (all); also called by clients outside the mesh, 2 rps per cluster | web-api 20 |
//! | web | web-api (1, 2) | accounts 15, inventory (gRPC) 10, api.payments.example.com 2 |
//! | web | accounts (all), inventory (2, 3), accounts-db (1) | accounts → accounts-db TCP 0.5 conn/s |
//!
//! Without routing rules a call spreads over every endpoint of the service in every cluster (Istio
//! multi-primary without locality load balancing), so many calls cross clusters;
//! [`RunningSim::set_routing`] (or `POST /routing`) pins shares per destination cluster.
//! `extra_namespaces` adds copies of `web` (`web-2`, …) and `pods_per_workload` scales pods.
//!
//! Faults ([`Fault`]): error rate, added latency, ejected endpoints, pod restart, cluster dark —
//! through [`RunningSim::inject`], the control API ([`control`]) or a scenario file
//! ([`scenario`]). The default scenario makes cluster-1's `web-api` fail 30% of requests with 503
//! from 60 s to 180 s; [`SimConfig::quiet`] has none.
//!
//! ```no_run
//! # async fn demo() -> Result<(), meshfed_sim::SimError> {
//! let sim = meshfed_sim::Simulator::start(meshfed_sim::SimConfig::default()).await?;
//! for t in sim.targets() {
//!     println!("{} {}", t.pod, t.url);
//! }
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

pub mod clock;
pub mod config;
pub mod control;
mod counters;
pub mod dist;
pub mod faults;
pub mod mesh;
mod model;
mod render;
pub mod routing;
pub mod scenario;
mod server;
mod spec;
pub mod targets;
pub mod topology;
pub mod topology_report;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use clock::{Clock, ManualClock, RealClock};
pub use config::SimConfig;
pub use faults::{DarkMode, Fault, FaultId, FaultRequest, FaultStatus};
pub use mesh::{EdgeRate, Mesh, ServedScrape};
pub use render::ISTIO_VERSION;
pub use routing::{RoutingRule, RoutingTable};
pub use scenario::{ScheduledFault, default_scenario, load_scenario, parse_scenario};
pub use server::TEXT_CONTENT_TYPE;
pub use targets::{Target, file_sd, write_file_sd};

/// Errors of the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Invalid configuration.
    #[error("invalid simulator config: {0}")]
    Config(String),
    /// A YAML document did not parse.
    #[error("invalid YAML{}: {message}", path.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default())]
    Yaml {
        /// The file, if any.
        path: Option<PathBuf>,
        /// Parser message.
        message: String,
    },
    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// No cluster of that name.
    #[error("unknown cluster {0}")]
    UnknownCluster(String),
    /// No workload of that name (or app) in the cluster.
    #[error("unknown workload {workload} in cluster {cluster}")]
    UnknownWorkload {
        /// Cluster name.
        cluster: String,
        /// Workload name or app.
        workload: String,
    },
    /// No pod of that name.
    #[error("unknown pod {0}")]
    UnknownPod(String),
    /// A fault request is out of range.
    #[error("invalid fault: {0}")]
    InvalidFault(String),
    /// A routing table does not fit the topology.
    #[error("invalid routing: {0}")]
    InvalidRouting(String),
}

/// Result with [`SimError`].
pub type Result<T, E = SimError> = std::result::Result<T, E>;

/// Starts simulators.
#[derive(Debug)]
pub struct Simulator;

impl Simulator {
    /// Starts a simulator on the real clock: binds every pod endpoint and the control API.
    pub async fn start(config: SimConfig) -> Result<RunningSim> {
        Self::start_with_clock(config, Arc::new(RealClock::new())).await
    }

    /// Starts a simulator on the given clock (a [`ManualClock`] in tests).
    pub async fn start_with_clock(config: SimConfig, clock: Arc<dyn Clock>) -> Result<RunningSim> {
        let mesh = Arc::new(Mesh::new(&config, clock)?);
        let token = CancellationToken::new();
        let mut tasks = Vec::new();
        let mut targets = Vec::with_capacity(mesh.topology().pods.len());
        for (i, pod) in mesh.topology().pods.iter().enumerate() {
            let (addr, task) =
                match server::spawn_pod(mesh.clone(), i, &config.listen_host, config.gzip, token.clone())
                    .await
                {
                    Ok(x) => x,
                    Err(e) => {
                        token.cancel();
                        return Err(e);
                    }
                };
            tasks.push(task);
            let w = &mesh.topology().workloads[pod.workload];
            targets.push(Target {
                cluster: w.cluster_name.clone(),
                namespace: w.namespace.clone(),
                workload: w.name.clone(),
                pod: pod.name.clone(),
                address: addr.to_string(),
                url: format!("http://{addr}/stats/prometheus"),
            });
        }
        let targets = Arc::new(targets);
        let mut control_addr = None;
        if let Some(listen) = &config.control_listen {
            let listener = match tokio::net::TcpListener::bind(listen.as_str()).await {
                Ok(l) => l,
                Err(source) => {
                    token.cancel();
                    return Err(SimError::Io {
                        context: format!("binding the control API on {listen}"),
                        source,
                    });
                }
            };
            control_addr = listener.local_addr().ok();
            let app = control::router(control::ControlState {
                mesh: mesh.clone(),
                targets: targets.clone(),
            });
            let t = token.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(t.cancelled_owned())
                    .await
                {
                    tracing::warn!(error = %e, "Control API stopped.");
                }
            }));
        }
        tracing::info!(pods = targets.len(), control = ?control_addr, "Simulator started.");
        Ok(RunningSim {
            mesh,
            targets,
            control_addr,
            token,
            tasks,
        })
    }
}

/// A running simulator. Dropping it stops the servers (without waiting); prefer
/// [`RunningSim::shutdown`].
#[derive(Debug)]
pub struct RunningSim {
    mesh: Arc<Mesh>,
    targets: Arc<Vec<Target>>,
    control_addr: Option<SocketAddr>,
    token: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningSim {
    /// The mesh (ground truth, rendering without sockets).
    pub fn mesh(&self) -> &Arc<Mesh> {
        &self.mesh
    }

    /// Every pod endpoint.
    pub fn targets(&self) -> Vec<Target> {
        self.targets.as_ref().clone()
    }

    /// Prometheus file_sd JSON, optionally for one cluster.
    pub fn file_sd(&self, cluster: Option<&str>) -> serde_json::Value {
        file_sd(&self.targets, cluster)
    }

    /// Writes file_sd JSON atomically to `path`.
    pub fn write_file_sd(&self, path: &Path, cluster: Option<&str>) -> Result<()> {
        write_file_sd(path, &self.targets, cluster)
    }

    /// Address of the control API, if enabled.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control_addr
    }

    /// Injects a fault (see [`Mesh::inject`]).
    pub fn inject(&self, req: impl Into<FaultRequest>) -> Result<FaultId> {
        self.mesh.inject(req.into())
    }

    /// Ends a fault now.
    pub fn clear_fault(&self, id: FaultId) -> bool {
        self.mesh.clear_fault(id)
    }

    /// All faults.
    pub fn faults(&self) -> Vec<FaultStatus> {
        self.mesh.faults()
    }

    /// Replaces the routing table from now on.
    pub fn set_routing(&self, table: RoutingTable) -> Result<()> {
        self.mesh.set_routing(table)
    }

    /// The last scrapes served for `pod`.
    pub fn served_scrapes(&self, pod: &str) -> Result<Vec<ServedScrape>> {
        self.mesh.served_scrapes(pod)
    }

    /// Number of samples a scrape of `pod` exposes now.
    pub fn series_count(&self, pod: &str) -> Result<usize> {
        self.mesh.series_count(pod)
    }

    /// Stops every server and waits for them.
    pub async fn shutdown(mut self) {
        self.token.cancel();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// Runs a simulator until `shutdown` is cancelled (the `meshfed sim` subcommand).
pub async fn run(config: SimConfig, shutdown: CancellationToken) -> Result<()> {
    let file_sd_path = config.file_sd_path.clone();
    let sim = Simulator::start(config).await?;
    if let Some(path) = &file_sd_path {
        sim.write_file_sd(path, None)?;
        tracing::info!(path = %path.display(), "Wrote file_sd targets.");
    }
    for t in sim.targets.iter() {
        tracing::debug!(cluster = %t.cluster, pod = %t.pod, url = %t.url, "Pod endpoint.");
    }
    if let Some(addr) = sim.control_addr() {
        tracing::info!(%addr, "Simulator control API listening.");
    }
    shutdown.cancelled().await;
    sim.shutdown().await;
    Ok(())
}
