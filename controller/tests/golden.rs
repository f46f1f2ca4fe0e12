//! Golden files of generated Istio objects for representative specs, and every generated object
//! checked against Istio's CRD schemas. `UPDATE_GOLDEN=1` rewrites the golden files.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::{FAILOVER_PRIORITY, LOCALITY, NOW, PRIORITY, clients, entry, healthy, topology, vd};
use meshfed_controller::health::{HealthState, HealthView};
use meshfed_controller::{Decision, Inputs, Outcome, reconcile};

fn run(yaml: &str, health: &HealthView, previous: &BTreeMap<String, Decision>) -> Outcome {
    let (topo, cl) = (topology(), clients());
    let inputs = Inputs {
        topology: &topo,
        health,
        clients: &cl,
        now_ms: NOW,
    };
    reconcile(&[vd(yaml)], &inputs, previous)
}

/// All snapshots as one document stream, with the decision on top.
fn dump(out: &Outcome) -> String {
    let mut s = String::new();
    for (key, d) in &out.decisions {
        s.push_str(&format!("# {key}: {}\n", d.reason));
    }
    for (cluster, objects) in &out.snapshots {
        s.push_str(&format!("# ===== cluster {cluster}: {} objects\n", objects.len()));
        for o in objects {
            s.push_str("---\n");
            s.push_str(&o.to_yaml());
        }
    }
    s
}

fn validate_all(out: &Outcome) {
    let Some(schemas) = common::schema::istio_schemas() else {
        return;
    };
    let mut checked = 0;
    for objects in out.snapshots.values() {
        for o in objects {
            let key = (o.kind.as_str().to_owned(), "v1".to_owned());
            let schema = schemas
                .get(&key)
                .unwrap_or_else(|| panic!("no schema for {key:?}"));
            let errors = common::schema::check(schema, &o.manifest);
            assert!(
                errors.is_empty(),
                "{} {}: {errors:#?}\n{}",
                o.kind.as_str(),
                o.name,
                o.to_yaml()
            );
            checked += 1;
        }
    }
    assert!(checked > 0);
}

fn scenario(name: &str, yaml: &str, health: &HealthView, previous: &BTreeMap<String, Decision>) -> Outcome {
    let out = run(yaml, health, previous);
    assert!(
        out.statuses.values().all(|s| s.errors.is_empty()),
        "{:#?}",
        out.statuses
    );
    common::golden(&format!("tests/golden/{name}.yaml"), &dump(&out));
    validate_all(&out);
    // Same inputs, same bytes.
    assert_eq!(dump(&run(yaml, health, previous)), dump(&out));
    out
}

#[test]
fn priority_failover_three_clusters() {
    let out = scenario("priority-3-clusters", PRIORITY, &healthy(), &BTreeMap::new());
    let d = &out.decisions["web.web-api"];
    assert_eq!(d.weights, BTreeMap::from([("cluster-1".to_owned(), 100)]));
    // Clients in 1, 3 and 4, backing services in 1-3: cluster-2 is placed as a backing cluster.
    assert_eq!(
        out.snapshots.keys().collect::<Vec<_>>(),
        ["cluster-1", "cluster-2", "cluster-3", "cluster-4"]
    );
}

#[test]
fn locality_failover() {
    let out = scenario("locality", LOCALITY, &healthy(), &BTreeMap::new());
    assert!(out.decisions["web.web-api"].locality_lb);
    // Only named clusters and clients: cluster-2 (named) and 1, 3, 4 (clients).
    assert_eq!(
        out.snapshots["cluster-3"].len(),
        7,
        "SE + 4 gateway WEs + DR + VS"
    );
}

#[test]
fn failover_priority_labels() {
    scenario(
        "failover-priority",
        FAILOVER_PRIORITY,
        &healthy(),
        &BTreeMap::new(),
    );
}

#[test]
fn one_cluster_unhealthy() {
    let healthy_out = run(PRIORITY, &healthy(), &BTreeMap::new());
    let mut health = healthy();
    health.services[0] = entry("cluster-1", HealthState::Failing, NOW - 5_000);
    health.services[0].reasons = vec!["error rate 31% > 5%".into()];
    let out = scenario("one-cluster-unhealthy", PRIORITY, &health, &healthy_out.decisions);
    let d = &out.decisions["web.web-api"];
    assert_eq!(d.weights, BTreeMap::from([("cluster-2".to_owned(), 100)]));
    assert_eq!(
        d.reason,
        "cluster-1 web-api Failing (error rate 31% > 5%): shift 100% → cluster-2"
    );
}

#[test]
fn schema_check_catches_bad_objects() {
    let Some(schemas) = common::schema::istio_schemas() else {
        return;
    };
    let out = run(PRIORITY, &healthy(), &BTreeMap::new());
    let dr = out.snapshots["cluster-1"]
        .iter()
        .find(|o| o.kind.as_str() == "DestinationRule")
        .unwrap();
    let schema = &schemas[&("DestinationRule".to_owned(), "v1".to_owned())];
    let mut wrong_type = dr.manifest.clone();
    wrong_type["spec"]["trafficPolicy"]["outlierDetection"]["maxEjectionPercent"] = "all".into();
    assert!(!common::schema::check(schema, &wrong_type).is_empty());
    let mut unknown = dr.manifest.clone();
    unknown["spec"]["trafficPolicy"]["outlierDetecton"] = serde_json::json!({});
    assert!(!common::schema::check(schema, &unknown).is_empty());
}
