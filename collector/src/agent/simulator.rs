//! Simulator sink: closes the loop in the demo. The simulator has no Envoy to program, so this
//! sink reads what Envoy would obey — each `VirtualService`'s weighted routes to per-cluster
//! subsets, with the `DestinationRule` mapping subsets to clusters — and replaces this cluster's
//! rules in the simulator's routing table (`PUT /routing/clusters/{cluster}`).
//!
//! Convention: a host `name.global` (any suffix) routes the simulator's calls to the service whose
//! short name is the host's first label. A route without weighted subsets (locality load
//! balancing decides) leaves the simulator's default spread in place.

use std::collections::BTreeMap;

use futures::FutureExt;
use meshfed_controller::render::CLUSTER_LABEL;
use meshfed_controller::{IstioObject, Kind};
use meshfed_relay::proto::ConfigError;
use serde_json::{Value, json};

use super::Sink;

pub(super) struct SimulatorSink {
    client: reqwest::Client,
    url: String,
    cluster: String,
}

impl SimulatorSink {
    pub(super) fn new(url: String, cluster: String) -> Self {
        Self {
            client: reqwest::Client::new(),
            url: url.trim_end_matches('/').to_owned(),
            cluster,
        }
    }
}

impl Sink for SimulatorSink {
    fn name(&self) -> &'static str {
        "simulator"
    }

    fn apply<'a>(&'a self, objects: &'a [IstioObject]) -> futures::future::BoxFuture<'a, Vec<ConfigError>> {
        async move {
            let rules = routing_rules(objects);
            let url = format!("{}/routing/clusters/{}", self.url, self.cluster);
            let result = self
                .client
                .put(&url)
                .timeout(std::time::Duration::from_secs(5))
                .header("content-type", "application/json")
                .body(Value::Array(rules).to_string())
                .send()
                .await;
            let message = match result {
                Ok(r) if r.status().is_success() => return Vec::new(),
                Ok(r) => format!("{url}: {} {}", r.status(), r.text().await.unwrap_or_default()),
                Err(e) => format!("{url}: {e}"),
            };
            vec![ConfigError {
                object: String::new(),
                message,
            }]
        }
        .boxed()
    }
}

/// The simulator routing rules (JSON) the objects' weighted routes amount to.
pub fn routing_rules(objects: &[IstioObject]) -> Vec<Value> {
    // subset name → cluster, per host, from the DestinationRules.
    let mut subsets: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    for dr in objects.iter().filter(|o| o.kind == Kind::DestinationRule) {
        let spec = &dr.manifest["spec"];
        let Some(host) = spec["host"].as_str() else {
            continue;
        };
        for s in spec["subsets"].as_array().into_iter().flatten() {
            if let (Some(name), Some(cluster)) = (s["name"].as_str(), s["labels"][CLUSTER_LABEL].as_str()) {
                subsets.insert((host, name), cluster);
            }
        }
    }
    let mut rules = Vec::new();
    for vs in objects.iter().filter(|o| o.kind == Kind::VirtualService) {
        let spec = &vs.manifest["spec"];
        let Some(host) = spec["hosts"][0].as_str() else {
            continue;
        };
        // Every port carries the same decision; the first route list is representative.
        let route = ["http", "tcp", "tls"]
            .iter()
            .find_map(|k| spec[*k][0]["route"].as_array());
        let mut weights: BTreeMap<&str, f64> = BTreeMap::new();
        for r in route.into_iter().flatten() {
            let dest = &r["destination"];
            let (Some(h), Some(subset)) = (dest["host"].as_str(), dest["subset"].as_str()) else {
                continue;
            };
            if let Some(cluster) = subsets.get(&(h, subset)) {
                *weights.entry(cluster).or_default() += r["weight"].as_f64().unwrap_or(0.0);
            }
        }
        if weights.values().sum::<f64>() <= 0.0 {
            continue;
        }
        let service = host.split('.').next().unwrap_or(host);
        rules.push(json!({ "destination_service": service, "weights": weights }));
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(kind: Kind, spec: Value) -> IstioObject {
        IstioObject {
            kind,
            name: "x".into(),
            namespace: "istio-system".into(),
            manifest: json!({ "spec": spec }),
        }
    }

    #[test]
    fn weighted_subsets_become_cluster_weights() {
        let dr = obj(
            Kind::DestinationRule,
            json!({"host": "web-api.global", "subsets": [
                {"name": "cluster-1", "labels": {CLUSTER_LABEL: "cluster-1"}},
                {"name": "cluster-2", "labels": {CLUSTER_LABEL: "cluster-2"}},
            ]}),
        );
        let vs = obj(
            Kind::VirtualService,
            json!({"hosts": ["web-api.global"], "http": [{"route": [
                {"destination": {"host": "web-api.global", "subset": "cluster-1"}, "weight": 20},
                {"destination": {"host": "web-api.global", "subset": "cluster-2"}, "weight": 80},
            ]}]}),
        );
        let unpinned = obj(
            Kind::VirtualService,
            json!({"hosts": ["accounts.global"], "http": [{"route": [
                {"destination": {"host": "accounts.global"}},
            ]}]}),
        );
        let rules = routing_rules(&[dr, vs, unpinned]);
        assert_eq!(
            rules,
            vec![
                json!({"destination_service": "web-api", "weights": {"cluster-1": 20.0, "cluster-2": 80.0}})
            ]
        );
    }
}
