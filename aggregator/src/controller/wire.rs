//! Conversions between the relay's control messages and the controller's types.

use meshfed_controller::{ClusterTopology, Endpoint, IstioObject, Locality, ServiceTopology};
use meshfed_relay::proto;

/// A topology report from the wire.
pub fn topology_from_wire(t: proto::ClusterTopology) -> ClusterTopology {
    ClusterTopology {
        network: (!t.network.is_empty()).then_some(t.network),
        gateways: t.gateways,
        services: t
            .services
            .into_iter()
            .map(|s| ServiceTopology {
                name: s.name,
                namespace: s.namespace,
                labels: s.labels.into_iter().map(|l| (l.name, l.value)).collect(),
                ports: s.ports,
                endpoints: s
                    .endpoints
                    .into_iter()
                    .map(|e| Endpoint {
                        address: e.address,
                        locality: Locality {
                            region: e.region,
                            zone: e.zone,
                            subzone: e.subzone,
                        },
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// A generated object for the wire (manifest as canonical JSON: keys sorted).
pub fn object_to_wire(o: &IstioObject) -> proto::ConfigObject {
    proto::ConfigObject {
        api_version: o
            .manifest
            .get("apiVersion")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned(),
        kind: o.kind.as_str().to_owned(),
        namespace: o.namespace.clone(),
        name: o.name.clone(),
        manifest_json: o.manifest.to_string(),
    }
}
