//! Checks that need more than one spec: against the reported topology, and across a set.

use std::collections::BTreeMap;

use super::{err, key_of, validate_spec};
use crate::spec::{StatusError, VirtualDestination, VirtualDestinationSpec};
use crate::topology::{Topology, select};

/// Checks a spec against the reported topology: selectors match at most one service per cluster and
/// at least one overall, every target port exists on every backing service, named clusters exist.
pub fn validate_with_topology(spec: &VirtualDestinationSpec, topology: &Topology) -> Vec<StatusError> {
    let mut out = Vec::new();
    let selected = select(spec, topology);
    if selected.is_empty() && !spec.services.is_empty() {
        out.push(err(
            "spec.services",
            "no service in any cluster matches the selectors",
        ));
    }
    let mut by_cluster: BTreeMap<&str, Vec<_>> = BTreeMap::new();
    for s in &selected {
        by_cluster.entry(s.cluster).or_default().push(s);
    }
    for (cluster, list) in &by_cluster {
        if list.len() > 1 {
            let names: Vec<String> = list
                .iter()
                .map(|s| {
                    format!(
                        "{}/{} by spec.services[{}]",
                        s.service.namespace, s.service.name, s.selector
                    )
                })
                .collect();
            let path = format!("spec.services[{}]", list.last().map_or(0, |s| s.selector));
            let msg = format!(
                "cluster {cluster:?} has {} matching services ({}); at most one per cluster",
                list.len(),
                names.join(", ")
            );
            out.push(err(path, msg));
            continue;
        }
        for s in list {
            for (i, p) in spec.ports.iter().enumerate() {
                let t = p.effective_target_port();
                if !s.service.ports.contains(&t) {
                    let field = if p.target_port.is_some() {
                        "targetPort"
                    } else {
                        "number"
                    };
                    let msg = format!(
                        "port {t} is unknown on {cluster}/{}/{} (ports: {:?})",
                        s.service.namespace, s.service.name, s.service.ports
                    );
                    out.push(err(format!("spec.ports[{i}].{field}"), msg));
                }
            }
        }
    }
    let known = |c: &String| topology.clusters.contains_key(c);
    for (i, s) in spec.services.iter().enumerate() {
        for (j, c) in s.clusters.iter().enumerate().filter(|(_, c)| !known(c)) {
            out.push(err(
                format!("spec.services[{i}].clusters[{j}]"),
                format!("unknown cluster {c:?}"),
            ));
        }
    }
    if let Some(f) = &spec.failover {
        for (i, c) in f.priority.iter().enumerate().filter(|(_, c)| !known(c)) {
            out.push(err(
                format!("spec.failover.priority[{i}]"),
                format!("unknown cluster {c:?}"),
            ));
        }
    }
    out
}

/// Validates a set of resources: each on its own, against the topology, and for hosts claimed by
/// more than one. Returns the errors per [`key_of`] key (an empty list for valid resources).
pub fn validate_set(vds: &[VirtualDestination], topology: &Topology) -> BTreeMap<String, Vec<StatusError>> {
    let mut out: BTreeMap<String, Vec<StatusError>> = BTreeMap::new();
    let mut order: Vec<&VirtualDestination> = vds.iter().collect();
    // Oldest first (a missing timestamp sorts last), then by key: the first claimant keeps a host.
    order.sort_by(|a, b| {
        let ts = |v: &VirtualDestination| v.metadata.creation_timestamp.as_ref().map(|t| t.0.as_second());
        (ts(a).is_none(), ts(a), key_of(a)).cmp(&(ts(b).is_none(), ts(b), key_of(b)))
    });
    let mut owners: BTreeMap<&str, String> = BTreeMap::new();
    for vd in order {
        let key = key_of(vd);
        let mut errors = validate_spec(vd.metadata.name.as_deref().unwrap_or(""), &vd.spec);
        errors.extend(validate_with_topology(&vd.spec, topology));
        if key.len() > 63 {
            let msg = format!("{key:?} (namespace.name) is longer than 63 characters, the label value limit");
            errors.push(err("metadata.name", msg));
        }
        if out.contains_key(&key) {
            errors.push(err("metadata.name", format!("{key} is defined twice")));
        }
        // Only a resource that is otherwise valid serves (and so claims) its hosts.
        let claims = errors.is_empty();
        for (i, h) in vd.spec.hosts.iter().enumerate() {
            match owners.get(h.as_str()) {
                Some(owner) if *owner != key => {
                    let msg = format!("host {h:?} is already served by VirtualDestination {owner}");
                    errors.push(err(format!("spec.hosts[{i}]"), msg));
                }
                _ if claims => {
                    owners.insert(h, key.clone());
                }
                _ => {}
            }
        }
        out.entry(key).or_default().extend(errors);
    }
    out
}
