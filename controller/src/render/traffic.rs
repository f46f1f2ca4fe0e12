//! `DestinationRule` and `VirtualService` generation.

use serde_json::{Map, Value, json};

use super::entries::Context;
use super::names::{CLUSTER_LABEL, object_name, subset_name};
use super::{IstioObject, Kind};
use crate::decide::Decision;
use crate::duration::{parse_ms, to_proto};
use crate::spec::FailoverMode;

/// The `DestinationRule` for `host`: mutual TLS, outlier detection, locality failover as the spec
/// says, and one subset per backing cluster.
pub(crate) fn destination_rule(ctx: &Context<'_>, host: &str) -> IstioObject {
    let spec = &ctx.vd.spec;
    let od = &spec.outlier_detection;
    let dur = |s: &str| to_proto(parse_ms(s).unwrap_or(0));
    let mut policy = Map::new();
    policy.insert("tls".into(), json!({ "mode": "ISTIO_MUTUAL" }));
    policy.insert(
        "outlierDetection".into(),
        json!({
            "consecutive5xxErrors": od.consecutive_5xx_errors,
            "interval": dur(&od.interval),
            "baseEjectionTime": dur(&od.base_ejection_time),
            "maxEjectionPercent": od.max_ejection_percent,
        }),
    );
    let failover = spec.failover.clone().unwrap_or_default();
    let locality = match spec.failover_mode() {
        FailoverMode::Priority => None,
        FailoverMode::Locality => {
            let list: Vec<Value> = failover
                .locality
                .iter()
                .map(|l| json!({ "from": l.from, "to": l.to }))
                .collect();
            Some(json!({ "enabled": true, "failover": list }))
        }
        FailoverMode::FailoverPriority => {
            Some(json!({ "enabled": true, "failoverPriority": failover.failover_priority }))
        }
    };
    if let Some(l) = locality {
        policy.insert(
            "loadBalancer".into(),
            json!({ "simple": "LEAST_REQUEST", "localityLbSetting": l }),
        );
    }
    let subsets: Vec<Value> = ctx
        .backing
        .keys()
        .map(|c| json!({ "name": subset_name(c), "labels": { CLUSTER_LABEL: c } }))
        .collect();
    let body = json!({ "host": host, "trafficPolicy": policy, "subsets": subsets });
    ctx.object(
        Kind::DestinationRule,
        object_name(&[ctx.name, host]),
        &ctx.labels,
        body,
    )
}

/// The `VirtualService` for `host`: per port, a route carrying the decided weights per cluster
/// subset, or the whole host when the decision leaves the choice to Envoy's locality balancing.
pub(crate) fn virtual_service(ctx: &Context<'_>, host: &str, decision: &Decision) -> IstioObject {
    // Only clusters with a subset can be weighted; if the decision names others (it was made on
    // another topology) route to the whole host rather than to a subset that does not exist.
    let weighted: Vec<(&String, u32)> = decision
        .weights
        .iter()
        .filter(|(c, w)| **w > 0 && ctx.backing.contains_key(c.as_str()))
        .map(|(c, w)| (c, *w))
        .collect();
    let pinned = !decision.locality_lb && weighted.iter().map(|(_, w)| w).sum::<u32>() == 100;
    let route = |port: u32| -> Vec<Value> {
        if !pinned {
            return vec![json!({ "destination": { "host": host, "port": { "number": port } } })];
        }
        weighted
            .iter()
            .map(|(c, w)| {
                json!({
                    "destination": { "host": host, "subset": subset_name(c), "port": { "number": port } },
                    "weight": w,
                })
            })
            .collect()
    };
    let (mut http, mut tcp, mut tls) = (Vec::new(), Vec::new(), Vec::new());
    for p in &ctx.vd.spec.ports {
        let name = p.port_name();
        if p.protocol.is_http() {
            http.push(json!({ "name": name, "match": [{ "port": p.number }], "route": route(p.number) }));
        } else if matches!(p.protocol, crate::spec::Protocol::Tcp) {
            tcp.push(json!({ "match": [{ "port": p.number }], "route": route(p.number) }));
        } else {
            tls.push(
                json!({ "match": [{ "port": p.number, "sniHosts": [host] }], "route": route(p.number) }),
            );
        }
    }
    let mut body = Map::new();
    body.insert("hosts".into(), json!([host]));
    for (key, list) in [("http", http), ("tcp", tcp), ("tls", tls)] {
        if !list.is_empty() {
            body.insert(key.into(), Value::Array(list));
        }
    }
    ctx.object(
        Kind::VirtualService,
        object_name(&[ctx.name, host]),
        &ctx.labels,
        Value::Object(body),
    )
}
