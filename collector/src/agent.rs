//! The config agent: applies the routing snapshots the aggregator's failover controller sends down
//! the relay, and acknowledges each version with the errors it met.
//!
//! A snapshot is the complete set of meshfed-owned Istio objects this cluster should have; each
//! sink makes its target match it and removes only what meshfed owns:
//! - [`gitops`]: one YAML file per object in a directory (stable names, canonical content);
//! - [`kubernetes`]: server-side apply to the cluster's API server with meshfed's field manager,
//!   pruning only objects meshfed owns (label and field manager);
//! - [`simulator`]: the simulator's routing API, so simulated clients obey the decided weights.
//!
//! When the aggregator is unreachable nothing is applied or removed: the last applied config stays.

pub mod gitops;
pub mod kubernetes;
pub mod simulator;

use std::path::PathBuf;
use std::sync::Arc;

use meshfed_controller::{IstioObject, Kind};
use meshfed_relay::client::RelayClient;
use meshfed_relay::proto::{ConfigAck, ConfigError, ConfigObject, ConfigSnapshot};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::metrics::CollectorMetrics;

/// Where the agent applies config. Any combination; none means config is received and acked
/// but not applied anywhere.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Write each object as a YAML file into this directory (GitOps mode).
    #[serde(default)]
    pub gitops_dir: Option<PathBuf>,
    /// Apply `VirtualService` weights to a meshfed simulator's control API (`http://host:port`).
    #[serde(default)]
    pub simulator_url: Option<String>,
    /// Server-side apply to the Kubernetes API (in-cluster config or `KUBECONFIG`).
    #[serde(default)]
    pub kubernetes: Option<KubernetesConfig>,
}

/// The Kubernetes sink's settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// The field manager of meshfed's server-side applies (and the owner test when pruning).
    #[serde(default = "default_field_manager")]
    pub field_manager: String,
}

fn default_field_manager() -> String {
    "meshfed".into()
}

/// A sink the agent applies snapshots to.
trait Sink: Send + Sync {
    fn name(&self) -> &'static str;
    /// Makes the target match `objects`; returns per-object (or whole-snapshot) errors.
    fn apply<'a>(&'a self, objects: &'a [IstioObject]) -> futures::future::BoxFuture<'a, Vec<ConfigError>>;
}

/// Runs until `shutdown`: applies every new snapshot to the configured sinks and acks it.
pub async fn run(
    config: AgentConfig,
    cluster: String,
    relay: RelayClient,
    metrics: CollectorMetrics,
    shutdown: CancellationToken,
) {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    if let Some(dir) = &config.gitops_dir {
        sinks.push(Box::new(gitops::GitOpsSink::new(dir.clone())));
    }
    if let Some(k) = &config.kubernetes {
        match kube::Client::try_default().await {
            Ok(client) => sinks.push(Box::new(kubernetes::KubernetesSink::new(
                client,
                k.field_manager.clone(),
            ))),
            Err(e) => {
                warn!(error = %e, "No Kubernetes client; every snapshot will be acked with this error.");
                sinks.push(Box::new(Unavailable(format!("no Kubernetes client: {e}"))));
            }
        }
    }
    if let Some(url) = &config.simulator_url {
        sinks.push(Box::new(simulator::SimulatorSink::new(url.clone(), cluster)));
    }
    let mut snapshots = relay.config_snapshots();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = snapshots.changed() => if changed.is_err() { return },
        }
        let Some(snapshot) = snapshots.borrow_and_update().clone() else {
            continue;
        };
        let ack = apply(&snapshot, &sinks).await;
        metrics.config_version.set(snapshot.version as i64);
        if ack.errors.is_empty() {
            info!(
                version = snapshot.version,
                objects = snapshot.objects.len(),
                "Applied config snapshot."
            );
        } else {
            metrics.config_apply_errors.inc_by(ack.errors.len() as u64);
            for e in &ack.errors {
                warn!(version = snapshot.version, object = %e.object, error = %e.message, "Config apply error.");
            }
        }
        relay.ack_config(ack);
    }
}

/// A sink that could not be set up: reports why for every snapshot.
struct Unavailable(String);

impl Sink for Unavailable {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn apply<'a>(&'a self, _objects: &'a [IstioObject]) -> futures::future::BoxFuture<'a, Vec<ConfigError>> {
        let message = self.0.clone();
        Box::pin(async move {
            vec![ConfigError {
                object: String::new(),
                message,
            }]
        })
    }
}

async fn apply(snapshot: &Arc<ConfigSnapshot>, sinks: &[Box<dyn Sink>]) -> ConfigAck {
    let mut errors = Vec::new();
    let mut objects = Vec::with_capacity(snapshot.objects.len());
    for o in &snapshot.objects {
        match decode(o) {
            Ok(obj) => objects.push(obj),
            Err(message) => errors.push(ConfigError {
                object: format!("{}/{}/{}", o.namespace, o.kind, o.name),
                message,
            }),
        }
    }
    // A snapshot that is not fully understood is not applied: pruning from a partial view would
    // delete objects the aggregator still wants.
    if errors.is_empty() {
        for sink in sinks {
            for mut e in sink.apply(&objects).await {
                e.message = format!("{}: {}", sink.name(), e.message);
                errors.push(e);
            }
        }
    }
    ConfigAck {
        version: snapshot.version,
        errors,
    }
}

/// A wire object back into an [`IstioObject`], checking that the manifest agrees with the
/// envelope.
pub fn decode(o: &ConfigObject) -> Result<IstioObject, String> {
    let kind = Kind::parse(&o.kind).ok_or_else(|| format!("unsupported kind {:?}", o.kind))?;
    let manifest: serde_json::Value =
        serde_json::from_str(&o.manifest_json).map_err(|e| format!("manifest is not JSON: {e}"))?;
    let field = |path: &[&str]| {
        path.iter()
            .try_fold(&manifest, |v, k| v.get(k))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    if field(&["kind"]) != o.kind
        || field(&["metadata", "name"]) != o.name
        || field(&["metadata", "namespace"]) != o.namespace
    {
        return Err("manifest kind, name or namespace differs from the envelope".into());
    }
    Ok(IstioObject {
        kind,
        name: o.name.clone(),
        namespace: o.namespace.clone(),
        manifest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object() -> IstioObject {
        IstioObject {
            kind: Kind::VirtualService,
            name: "web-api-global".into(),
            namespace: "istio-system".into(),
            manifest: serde_json::json!({
                "apiVersion": "networking.istio.io/v1",
                "kind": "VirtualService",
                "metadata": {"name": "web-api-global", "namespace": "istio-system"},
                "spec": {"hosts": ["web-api.global"]},
            }),
        }
    }

    #[test]
    fn objects_round_trip_and_mismatched_envelopes_are_refused() {
        let o = object();
        let wire = ConfigObject {
            api_version: "networking.istio.io/v1".into(),
            kind: "VirtualService".into(),
            namespace: o.namespace.clone(),
            name: o.name.clone(),
            manifest_json: o.manifest.to_string(),
        };
        assert_eq!(decode(&wire), Ok(object()));
        let renamed = ConfigObject {
            name: "other".into(),
            ..wire.clone()
        };
        assert!(decode(&renamed).is_err());
        let bad_kind = ConfigObject {
            kind: "Secret".into(),
            ..wire.clone()
        };
        assert!(decode(&bad_kind).unwrap_err().contains("unsupported kind"));
        let garbage = ConfigObject {
            manifest_json: "{".into(),
            ..wire
        };
        assert!(decode(&garbage).unwrap_err().contains("not JSON"));
    }
}
