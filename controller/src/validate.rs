//! Validation with precise errors: every error names the field path and the reason.
//!
//! Three layers: [`validate_spec`] checks one spec on its own, [`validate_with_topology`] checks it
//! against what the clusters report (one service per cluster, ports that exist), and
//! [`validate_set`] checks a whole set of `VirtualDestination`s for host conflicts. A conflict
//! invalidates only the later claimant (oldest `creationTimestamp` first, then `namespace.name`),
//! so adding a conflicting resource never takes routing away from the one already serving.

mod cross;

use std::collections::BTreeMap;

use crate::duration::parse_ms;
use crate::spec::{StatusError, VirtualDestination, VirtualDestinationSpec};

pub use cross::{validate_set, validate_with_topology};

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
