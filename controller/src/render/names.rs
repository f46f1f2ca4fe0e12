//! Deterministic names, labels and addresses for generated objects.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// Label every generated object carries: who manages it.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "meshfed");
/// Label naming the owning `VirtualDestination` as `namespace.name`.
pub const OWNER_LABEL: &str = "meshfed.io/virtual-destination";
/// Istio's cluster label, used on `WorkloadEntry`s and as the per-cluster subset selector.
pub const CLUSTER_LABEL: &str = "topology.istio.io/cluster";
/// Longest object name Kubernetes accepts (DNS-1123 subdomain).
const MAX_NAME: usize = 253;

/// 64-bit FNV-1a: tiny, stable across Rust versions and platforms (unlike `DefaultHasher`).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Lower-case `[a-z0-9-]` form of `s`: other characters become `-`, runs collapse, ends trimmed.
pub fn slug(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if !(c == '-' && (out.is_empty() || out.ends_with('-'))) {
            out.push(c);
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// `meshfed-<part>-<part>…`, slugged; names too long for Kubernetes are cut and suffixed with a
/// hash of the full name so they stay unique and stable.
pub fn object_name(parts: &[&str]) -> String {
    let mut name = String::from("meshfed");
    for p in parts.iter().map(|p| slug(p)).filter(|p| !p.is_empty()) {
        name.push('-');
        name.push_str(&p);
    }
    if name.len() <= MAX_NAME {
        return name;
    }
    let hash = format!("{:016x}", fnv1a(name.as_bytes()));
    let mut cut = name[..MAX_NAME - hash.len() - 1].trim_end_matches('-').to_owned();
    cut.push('-');
    cut.push_str(&hash);
    cut
}

/// Subset name for a cluster (a DNS label).
pub fn subset_name(cluster: &str) -> String {
    let s = slug(cluster);
    if s.is_empty() || s.len() > 63 {
        format!("c-{:016x}", fnv1a(cluster.as_bytes()))
    } else {
        s
    }
}

/// The stable virtual IP of a host: in `240.240.0.0/16` (reserved space, never routed), derived
/// from the host name only, avoiding `.0` and `.255` in the last octet.
pub fn vip(host: &str) -> String {
    let v = fnv1a(host.as_bytes()) % (256 * 254);
    format!("240.240.{}.{}", v / 254, v % 254 + 1)
}

/// The ownership labels of a resource with key `owner` (`namespace.name`).
pub fn owner_labels(owner: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
        (OWNER_LABEL.to_owned(), owner.to_owned()),
    ])
}

/// A manifest's `metadata`.
pub fn metadata(name: &str, namespace: &str, labels: &BTreeMap<String, String>) -> Value {
    json!({ "name": name, "namespace": namespace, "labels": labels })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_valid() {
        assert_eq!(slug("Cluster_1.east"), "cluster-1-east");
        assert_eq!(
            object_name(&["web", "web-api.global"]),
            "meshfed-web-web-api-global"
        );
        let long = "x".repeat(300);
        let n = object_name(&[&long]);
        assert_eq!(n.len(), MAX_NAME);
        assert_eq!(n, object_name(&[&long]));
        assert_eq!(vip("web-api.global"), vip("web-api.global"));
        assert_ne!(vip("web-api.global"), vip("db.global"));
        assert!(vip("a.b").starts_with("240.240."));
    }
}
