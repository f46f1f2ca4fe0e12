//! Validation with precise errors: every error names the field path and the reason.
//!
//! Three layers: [`validate_spec`] checks one spec on its own, [`validate_with_topology`] checks it
//! against what the clusters report (one service per cluster, ports that exist), and
//! [`validate_set`] checks a whole set of `VirtualDestination`s for host conflicts. A conflict
//! invalidates only the later claimant (oldest `creationTimestamp` first, then `namespace.name`),
//! so adding a conflicting resource never takes routing away from the one already serving.

use std::collections::BTreeMap;

use crate::duration::parse_ms;
use crate::spec::{StatusError, VirtualDestination, VirtualDestinationSpec};
use crate::topology::{Topology, select};

fn err(path: impl Into<String>, message: impl Into<String>) -> StatusError {
    StatusError {
        path: path.into(),
        message: message.into(),
    }
}

/// Whether `s` is a DNS-1123 label: 1–63 of `[a-z0-9-]`, alphanumeric at both ends.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Whether `s` is a fully qualified DNS name usable as a mesh host (no wildcard, at least two
/// labels, at most 253 characters).
pub fn is_dns_host(s: &str) -> bool {
    s.len() <= 253 && s.contains('.') && s.split('.').all(is_dns_label)
}

/// `namespace.name` of a resource (namespace `default` when unset), the key used everywhere.
pub fn key_of(vd: &VirtualDestination) -> String {
    let ns = vd.metadata.namespace.as_deref().unwrap_or("default");
    let name = vd.metadata.name.as_deref().unwrap_or("");
    format!("{ns}.{name}")
}

/// Checks one spec (and its name) on its own.
pub fn validate_spec(name: &str, spec: &VirtualDestinationSpec) -> Vec<StatusError> {
    let mut out = Vec::new();
    if !is_dns_label(name) {
        out.push(err("metadata.name", format!("{name:?} is not a DNS-1123 label")));
    }
    if spec.hosts.is_empty() {
        out.push(err("spec.hosts", "at least one host is required"));
    }
    for (i, h) in spec.hosts.iter().enumerate() {
        if !is_dns_host(h) {
            out.push(err(
                format!("spec.hosts[{i}]"),
                format!("{h:?} is not a DNS name (lower-case labels, no wildcard)"),
            ));
        } else if spec.hosts[..i].contains(h) {
            out.push(err(format!("spec.hosts[{i}]"), format!("{h:?} is listed twice")));
        }
    }
    if spec.ports.is_empty() {
        out.push(err("spec.ports", "at least one port is required"));
    }
    for (i, p) in spec.ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        if !(1..=65535).contains(&p.number) {
            out.push(err(
                format!("{path}.number"),
                format!("{} is not a port (1-65535)", p.number),
            ));
        } else if spec.ports[..i].iter().any(|q| q.number == p.number) {
            out.push(err(
                format!("{path}.number"),
                format!("port {} is listed twice", p.number),
            ));
        }
        if let Some(t) = p.target_port.filter(|t| !(1..=65535).contains(t)) {
            out.push(err(
                format!("{path}.targetPort"),
                format!("{t} is not a port (1-65535)"),
            ));
        }
        let name = p.port_name();
        if !is_dns_label(&name) {
            out.push(err(
                format!("{path}.name"),
                format!("{name:?} is not a DNS-1123 label"),
            ));
        } else if spec.ports[..i].iter().any(|q| q.port_name() == name) {
            out.push(err(
                format!("{path}.name"),
                format!("port name {name:?} is used twice"),
            ));
        }
    }
    if spec.services.is_empty() {
        out.push(err("spec.services", "at least one service selector is required"));
    }
    let mut named: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, s) in spec.services.iter().enumerate() {
        if s.namespace.is_empty() {
            out.push(err(
                format!("spec.services[{i}].namespace"),
                "namespace is required",
            ));
        }
        for (j, c) in s.clusters.iter().enumerate() {
            if let Some(first) = named.insert(c, i).filter(|f| *f != i) {
                let msg = format!(
                    "cluster {c:?} is already selected by spec.services[{first}]; at most one service per cluster"
                );
                out.push(err(format!("spec.services[{i}].clusters[{j}]"), msg));
            }
        }
    }
    validate_failover(spec, &mut out);
    validate_policies(spec, &mut out);
    out
}

fn validate_failover(spec: &VirtualDestinationSpec, out: &mut Vec<StatusError>) {
    let Some(f) = &spec.failover else { return };
    let forms = [
        !f.priority.is_empty(),
        !f.locality.is_empty(),
        !f.failover_priority.is_empty(),
    ];
    if forms.iter().filter(|x| **x).count() > 1 {
        out.push(err(
            "spec.failover",
            "set only one of priority, locality, failoverPriority",
        ));
    }
    for (i, c) in f.priority.iter().enumerate() {
        if f.priority[..i].contains(c) {
            out.push(err(
                format!("spec.failover.priority[{i}]"),
                format!("cluster {c:?} is listed twice"),
            ));
        }
    }
    for (i, l) in f.locality.iter().enumerate() {
        if l.from.is_empty() || l.to.is_empty() || l.from == l.to {
            out.push(err(
                format!("spec.failover.locality[{i}]"),
                "from and to must be different, non-empty localities",
            ));
        }
    }
    for (i, l) in f.failover_priority.iter().enumerate() {
        let key = l.split_once('=').map_or(l.as_str(), |(k, _)| k);
        if key.is_empty() {
            out.push(err(
                format!("spec.failover.failoverPriority[{i}]"),
                "label key is empty",
            ));
        }
    }
}

fn validate_policies(spec: &VirtualDestinationSpec, out: &mut Vec<StatusError>) {
    let od = &spec.outlier_detection;
    if od.consecutive_5xx_errors == 0 {
        out.push(err(
            "spec.outlierDetection.consecutive5xxErrors",
            "must be at least 1 (0 disables failover)",
        ));
    }
    if od.max_ejection_percent > 100 {
        out.push(err(
            "spec.outlierDetection.maxEjectionPercent",
            format!("{} is over 100", od.max_ejection_percent),
        ));
    }
    let hp = &spec.health_policy;
    let durations = [
        ("spec.outlierDetection.interval", &od.interval, false),
        (
            "spec.outlierDetection.baseEjectionTime",
            &od.base_ejection_time,
            false,
        ),
        ("spec.healthPolicy.hysteresis", &hp.hysteresis, true),
        ("spec.healthPolicy.cooldown", &hp.cooldown, true),
        ("spec.healthPolicy.staleAfter", &hp.stale_after, false),
    ];
    for (path, value, zero_ok) in durations {
        match parse_ms(value) {
            None => out.push(err(
                path,
                format!("{value:?} is not a duration (e.g. 500ms, 10s, 1m30s)"),
            )),
            Some(0) if !zero_ok => out.push(err(path, "must be greater than zero")),
            Some(_) => {}
        }
    }
    let fractions = [
        ("spec.healthPolicy.errorRateThreshold", hp.error_rate_threshold),
        (
            "spec.healthPolicy.minimumHealthyFraction",
            hp.minimum_healthy_fraction,
        ),
    ];
    for (path, v) in fractions {
        if !(0.0..=1.0).contains(&v) {
            out.push(err(path, format!("{v} is not a fraction in [0, 1]")));
        }
    }
    if let Some(l) = hp
        .latency_p99_threshold_ms
        .filter(|l| !(l.is_finite() && *l > 0.0))
    {
        out.push(err(
            "spec.healthPolicy.latencyP99ThresholdMs",
            format!("{l} must be a positive number"),
        ));
    }
    if !(1..=100).contains(&hp.max_weight_shift_per_step) {
        let msg = format!(
            "{} is out of range (1-100 percentage points)",
            hp.max_weight_shift_per_step
        );
        out.push(err("spec.healthPolicy.maxWeightShiftPerStep", msg));
    }
}

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
