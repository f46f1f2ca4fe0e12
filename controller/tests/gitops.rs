//! GitOps output: stable files, no rewrite when nothing changed, and only our own stale files
//! removed. Also: unchanged inputs render byte-identical snapshots.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::fs;

use common::{NOW, PRIORITY, clients, entry, healthy, topology, vd};
use meshfed_controller::gitops::{is_owned, write_all, write_snapshot};
use meshfed_controller::health::HealthState;
use meshfed_controller::{Inputs, reconcile};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("meshfed-controller-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

#[test]
fn snapshot_files_are_stable_and_pruned_safely() {
    let (topo, cl) = (topology(), clients());
    let health = healthy();
    let inputs = Inputs {
        topology: &topo,
        health: &health,
        clients: &cl,
        now_ms: NOW,
    };
    let first = reconcile(&[vd(PRIORITY)], &inputs, &BTreeMap::new());
    let dir = temp_dir("gitops");
    let objects = &first.snapshots["cluster-3"];

    let report = write_snapshot(&dir, objects).unwrap();
    assert_eq!(report.written.len(), objects.len());
    assert!(
        report
            .written
            .contains(&"web.serviceentry.meshfed-web-api.yaml".to_owned()),
        "{report:?}"
    );
    // A user's file and a non-meshfed manifest in the same directory.
    fs::write(dir.join("README.md"), "mine").unwrap();
    let foreign = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels:\n    app.kubernetes.io/managed-by: helm\n";
    fs::write(dir.join("web.configmap.x.yaml"), foreign).unwrap();

    // Same decision again: nothing rewritten.
    let again = reconcile(&[vd(PRIORITY)], &inputs, &first.decisions);
    assert_eq!(
        again.snapshots, first.snapshots,
        "byte-identical when nothing changed"
    );
    let report = write_snapshot(&dir, &again.snapshots["cluster-3"]).unwrap();
    assert!(
        report.written.is_empty() && report.removed.is_empty(),
        "{report:?}"
    );
    assert_eq!(report.unchanged.len(), objects.len());

    // cluster-3's backing service vanishes: its local WorkloadEntries go, the rest stays.
    let mut topo2 = topo.clone();
    topo2
        .clusters
        .get_mut("cluster-3")
        .unwrap()
        .services
        .retain(|s| s.name != "web-api");
    let mut health2 = healthy();
    health2.services[2] = entry("cluster-3", HealthState::Unknown, NOW);
    let inputs2 = Inputs {
        topology: &topo2,
        health: &health2,
        clients: &cl,
        now_ms: NOW,
    };
    let third = reconcile(&[vd(PRIORITY)], &inputs2, &first.decisions);
    let report = write_snapshot(&dir, &third.snapshots["cluster-3"]).unwrap();
    assert_eq!(
        report.removed,
        [
            "web.workloadentry.meshfed-web-api-cluster-3-10-3-0-10.yaml",
            "web.workloadentry.meshfed-web-api-cluster-3-10-3-0-11.yaml"
        ]
    );
    assert!(
        report
            .written
            .contains(&"web.destinationrule.meshfed-web-api-web-api-global.yaml".to_owned())
    );
    assert_eq!(fs::read_to_string(dir.join("README.md")).unwrap(), "mine");
    assert_eq!(
        fs::read_to_string(dir.join("web.configmap.x.yaml")).unwrap(),
        foreign
    );
    assert!(!is_owned(foreign));

    // An empty snapshot removes everything of ours and nothing else.
    let report = write_snapshot(&dir, &[]).unwrap();
    assert_eq!(report.removed.len(), third.snapshots["cluster-3"].len());
    let left: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn placement_is_limited_to_clients_named_and_backing_clusters() {
    let (topo, health) = (topology(), healthy());
    let no_clients = BTreeMap::new();
    let local = vd(&common::LOCALITY.replace("clusters: [cluster-1, cluster-2]", "clusters: [cluster-2]"));
    let out = reconcile(
        &[local],
        &Inputs {
            topology: &topo,
            health: &health,
            clients: &no_clients,
            now_ms: NOW,
        },
        &BTreeMap::new(),
    );
    let placed: Vec<&String> = out
        .snapshots
        .iter()
        .filter(|(_, o)| !o.is_empty())
        .map(|(c, _)| c)
        .collect();
    assert_eq!(placed, ["cluster-2"]);
    assert_eq!(out.statuses["web.web-api"].placement, ["cluster-2"]);
    // Every known cluster still gets a (possibly empty) snapshot so its agent can prune.
    assert_eq!(out.snapshots.len(), 3);
}

#[test]
fn every_cluster_gets_its_own_directory() {
    let (topo, cl, health) = (topology(), clients(), healthy());
    let out = reconcile(
        &[vd(PRIORITY)],
        &Inputs {
            topology: &topo,
            health: &health,
            clients: &cl,
            now_ms: NOW,
        },
        &BTreeMap::new(),
    );
    let root = temp_dir("all");
    let reports = write_all(&root, &out.snapshots).unwrap();
    assert_eq!(
        reports.keys().collect::<Vec<_>>(),
        ["cluster-1", "cluster-2", "cluster-3", "cluster-4"]
    );
    for (cluster, objects) in &out.snapshots {
        assert_eq!(fs::read_dir(root.join(cluster)).unwrap().count(), objects.len());
    }
    let evil = BTreeMap::from([("../x".to_owned(), Vec::new())]);
    assert!(write_all(&root, &evil).is_err());
    fs::remove_dir_all(&root).unwrap();
}
