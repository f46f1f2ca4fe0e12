//! The cluster's topology for the failover controller: services, their endpoints with locality and
//! the east-west gateway addresses, read from a URL or a file in the controller's JSON/YAML shape
//! (`network`, `gateways`, `services[{name, namespace, labels, ports, endpoints[{address,
//! locality}]}]`) and published over the relay whenever it changes.
//!
//! In the demo the simulator serves it (`/topology/clusters/{cluster}`); Kubernetes discovery of
//! Services, EndpointSlices and the east-west gateway is a later step.

use std::path::PathBuf;
use std::time::Duration;

use meshfed_controller::ClusterTopology;
use meshfed_relay::client::RelayClient;
use meshfed_relay::proto;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::metrics::CollectorMetrics;

/// Where the topology comes from.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopologyConfig {
    /// An HTTP(S) URL serving the report as JSON.
    #[serde(default)]
    pub url: Option<String>,
    /// A file holding the report (YAML or JSON).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// How often to re-read it.
    #[serde(default = "default_refresh")]
    pub refresh_secs: f64,
}

fn default_refresh() -> f64 {
    10.0
}

/// Re-reads the topology every `refresh_secs` and publishes it when it changed.
pub async fn run(
    config: TopologyConfig,
    relay: RelayClient,
    metrics: CollectorMetrics,
    shutdown: CancellationToken,
) {
    let client = reqwest::Client::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(config.refresh_secs.max(0.1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match read(&config, &client).await {
            Ok(t) => {
                let services = t.services.len();
                if relay.publish_topology(to_wire(t)) {
                    info!(services, "Topology changed; reported it.");
                }
            }
            Err(e) => {
                metrics.topology_errors.inc();
                warn!(error = %e, "Could not read the cluster topology.");
            }
        }
    }
}

async fn read(config: &TopologyConfig, client: &reqwest::Client) -> Result<ClusterTopology, String> {
    if let Some(url) = &config.url {
        let resp = client
            .get(url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("{url}: HTTP {}", resp.status()));
        }
        let body = resp.bytes().await.map_err(|e| format!("{url}: {e}"))?;
        return serde_json::from_slice(&body).map_err(|e| format!("{url}: {e}"));
    }
    if let Some(path) = &config.file {
        let text = tokio::fs::read_to_string(path)
            .await
            .map_err(|e| format!("{}: {e}", path.display()))?;
        return serde_norway::from_str(&text).map_err(|e| format!("{}: {e}", path.display()));
    }
    Err("topology needs a url or a file".into())
}

/// The controller's topology as the relay message.
pub fn to_wire(t: ClusterTopology) -> proto::ClusterTopology {
    proto::ClusterTopology {
        network: t.network.unwrap_or_default(),
        gateways: t.gateways,
        services: t
            .services
            .into_iter()
            .map(|s| proto::ServiceTopology {
                name: s.name,
                namespace: s.namespace,
                labels: s
                    .labels
                    .into_iter()
                    .map(|(name, value)| proto::Label { name, value })
                    .collect(),
                ports: s.ports,
                endpoints: s
                    .endpoints
                    .into_iter()
                    .map(|e| proto::Endpoint {
                        address: e.address,
                        region: e.locality.region,
                        zone: e.locality.zone,
                        subzone: e.locality.subzone,
                    })
                    .collect(),
            })
            .collect(),
    }
}
