//! Bad input: invalid specs get precise status errors and produce no output, while the other
//! specs in the same set are unaffected.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::{NOW, PRIORITY, clients, healthy, topology, vd};
use meshfed_controller::spec::{StatusError, VirtualDestination};
use meshfed_controller::{Inputs, Outcome, reconcile};

fn run(vds: &[VirtualDestination]) -> Outcome {
    let (topo, cl, health) = (topology(), clients(), healthy());
    reconcile(
        vds,
        &Inputs {
            topology: &topo,
            health: &health,
            clients: &cl,
            now_ms: NOW,
        },
        &BTreeMap::new(),
    )
}

/// A second, valid resource for another host, to check it is unaffected.
fn other() -> VirtualDestination {
    vd(&PRIORITY
        .replace("name: web-api, namespace: web", "name: db, namespace: web")
        .replace("web-api.global", "db.global")
        .replace(
            "{ number: 80, protocol: HTTP, targetPort: 8080 }",
            "{ number: 5432, protocol: TCP }",
        )
        .replace("    - { number: 9090, protocol: GRPC, name: grpc }\n", "")
        .replace("app: web-api", "app: db"))
}

fn errors_of(out: &Outcome, key: &str) -> Vec<StatusError> {
    out.statuses[key].errors.clone()
}

fn owned_by(out: &Outcome, key: &str) -> usize {
    out.snapshots
        .values()
        .flatten()
        .filter(|o| o.manifest["metadata"]["labels"]["meshfed.io/virtual-destination"] == key)
        .count()
}

/// Each case: an edit of the valid spec, and the (path, message fragment) it must produce.
const CASES: &[(&str, &str, &str, &str)] = &[
    (
        "two services in one cluster",
        "{ namespace: web, labels: { app: web-api } }",
        "{ namespace: web }",
        "spec.services[0]|at most one per cluster",
    ),
    (
        "unknown target port",
        "targetPort: 8080",
        "targetPort: 8081",
        "spec.ports[0].targetPort|port 8081 is unknown on cluster-1/web/web-api",
    ),
    (
        "unknown port without targetPort",
        "{ number: 9090, protocol: GRPC, name: grpc }",
        "{ number: 9091, protocol: GRPC, name: grpc }",
        "spec.ports[1].number|port 9091 is unknown",
    ),
    (
        "non-DNS host",
        "hosts: [web-api.global]",
        "hosts: [Web_API]",
        "spec.hosts[0]|is not a DNS name",
    ),
    (
        "wildcard host",
        "hosts: [web-api.global]",
        "hosts: ['*.global']",
        "spec.hosts[0]|is not a DNS name",
    ),
    (
        "empty services",
        "    - { namespace: web, labels: { app: web-api } }\n",
        "    []\n",
        "spec.services|at least one service selector",
    ),
    (
        "no match",
        "app: web-api }",
        "app: nothing }",
        "spec.services|no service in any cluster matches",
    ),
    (
        "bad duration",
        "priority: [cluster-1, cluster-2, cluster-3]",
        "priority: [cluster-1, cluster-2, cluster-3]\n  healthPolicy: { cooldown: soon }",
        "spec.healthPolicy.cooldown|is not a duration",
    ),
    (
        "zero interval",
        "priority: [cluster-1, cluster-2, cluster-3]",
        "priority: [cluster-1, cluster-2, cluster-3]\n  outlierDetection: { interval: 0s }",
        "spec.outlierDetection.interval|greater than zero",
    ),
    (
        "weight shift 0",
        "priority: [cluster-1, cluster-2, cluster-3]",
        "priority: [cluster-1, cluster-2, cluster-3]\n  healthPolicy: { maxWeightShiftPerStep: 0 }",
        "spec.healthPolicy.maxWeightShiftPerStep|out of range",
    ),
    (
        "weight shift 150",
        "priority: [cluster-1, cluster-2, cluster-3]",
        "priority: [cluster-1, cluster-2, cluster-3]\n  healthPolicy: { maxWeightShiftPerStep: 150 }",
        "spec.healthPolicy.maxWeightShiftPerStep|out of range",
    ),
    (
        "fraction out of range",
        "priority: [cluster-1, cluster-2, cluster-3]",
        "priority: [cluster-1, cluster-2, cluster-3]\n  healthPolicy: { minimumHealthyFraction: 1.5 }",
        "spec.healthPolicy.minimumHealthyFraction|not a fraction",
    ),
    (
        "unknown cluster in priority",
        "priority: [cluster-1, cluster-2, cluster-3]",
        "priority: [cluster-1, cluster-9]",
        "spec.failover.priority[1]|unknown cluster \"cluster-9\"",
    ),
    (
        "two failover forms",
        "priority: [cluster-1, cluster-2, cluster-3]",
        "priority: [cluster-1]\n    failoverPriority: [topology.istio.io/network]",
        "spec.failover|set only one",
    ),
    (
        "duplicate port",
        "{ number: 9090, protocol: GRPC, name: grpc }",
        "{ number: 80, protocol: GRPC, name: grpc }",
        "spec.ports[1].number|port 80 is listed twice",
    ),
    (
        "cluster named twice",
        "    - { namespace: web, labels: { app: web-api } }\n",
        "    - { namespace: web, name: web-api, clusters: [cluster-1] }\n    - { namespace: web, name: web-api, clusters: [cluster-2, cluster-1] }\n",
        "spec.services[1].clusters[1]|already selected by spec.services[0]",
    ),
];

#[test]
fn invalid_specs_get_errors_and_no_output() {
    for (what, from, to, want) in CASES {
        assert!(PRIORITY.contains(from), "{what}: edit does not apply");
        let bad = vd(&PRIORITY.replacen(from, to, 1));
        let out = run(&[bad, other()]);
        let errors = errors_of(&out, "web.web-api");
        let (path, fragment) = want.split_once('|').unwrap();
        assert!(
            errors
                .iter()
                .any(|e| e.path == path && e.message.contains(fragment)),
            "{what}: want {path}: …{fragment}…, got {errors:#?}"
        );
        assert_eq!(
            owned_by(&out, "web.web-api"),
            0,
            "{what}: invalid spec produced output"
        );
        assert!(!out.decisions.contains_key("web.web-api"), "{what}");
        assert!(
            errors_of(&out, "web.db").is_empty(),
            "{what}: other spec affected"
        );
        assert!(owned_by(&out, "web.db") > 0, "{what}: other spec lost its output");
    }
}

#[test]
fn conflicting_hosts_invalidate_only_the_later_claimant() {
    let first = vd(PRIORITY);
    let mut second = vd(&PRIORITY.replace(
        "name: web-api, namespace: web",
        "name: web-api-copy, namespace: web",
    ));
    second.spec.hosts.push("web-api.other".into());
    let out = run(&[second.clone(), first.clone(), other()]);
    assert!(errors_of(&out, "web.web-api").is_empty());
    assert_eq!(
        errors_of(&out, "web.web-api-copy"),
        vec![StatusError {
            path: "spec.hosts[0]".into(),
            message: "host \"web-api.global\" is already served by VirtualDestination web.web-api".into()
        }]
    );
    assert_eq!(owned_by(&out, "web.web-api-copy"), 0);
    assert!(owned_by(&out, "web.web-api") > 0 && owned_by(&out, "web.db") > 0);
    // The same set in another order gives the same result.
    assert_eq!(run(&[first, other(), second]).statuses, out.statuses);
}

#[test]
fn files_parse_with_defaults() {
    let vds = meshfed_controller::parse_resources(
        &format!("{PRIORITY}\n---\n{}", common::LOCALITY),
        std::path::Path::new("x.yaml"),
    )
    .unwrap();
    assert_eq!(vds.len(), 2);
    assert_eq!(vds[0].spec.outlier_detection.max_ejection_percent, 100);
    assert_eq!(vds[1].spec.outlier_detection.consecutive_5xx_errors, 3);
    let err = meshfed_controller::parse_resources("spec: [", std::path::Path::new("bad.yaml")).unwrap_err();
    assert!(err.to_string().starts_with("bad.yaml: "), "{err}");
}

#[test]
fn a_directory_loads_file_by_file() {
    let dir = std::env::temp_dir().join(format!("meshfed-controller-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.yaml"), PRIORITY).unwrap();
    std::fs::write(dir.join("b.yml"), "spec: [").unwrap();
    std::fs::write(dir.join("notes.txt"), "not a resource").unwrap();
    let loaded = meshfed_controller::load_dir(&dir).unwrap();
    assert_eq!(loaded.len(), 2);
    assert_eq!(loaded[0].1.as_ref().unwrap().len(), 1);
    assert!(loaded[1].1.is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
