//! One pass over a set of `VirtualDestination`s: validate, decide, render, merge per cluster.
//!
//! This is what the aggregator's reconcile loop calls whenever specs, topology or health change
//! (and on a timer, so cooldowns expire). It is pure like its parts: the loop keeps the returned
//! decisions, feeds them back as `previous`, writes the statuses and ships the snapshots.

use std::collections::BTreeMap;

use crate::decide::{Decision, decide};
use crate::health::HealthView;
use crate::render::{IstioObject, placement, render, sort_objects};
use crate::spec::{VirtualDestination, VirtualDestinationStatus};
use crate::topology::{Clients, Topology, select};
use crate::validate::{key_of, validate_set};

/// The observations a pass works from.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// What the collectors reported.
    pub topology: &'a Topology,
    /// The health model's view.
    pub health: &'a HealthView,
    /// Clusters with clients of each host.
    pub clients: &'a Clients,
    /// Now, in ms since the epoch.
    pub now_ms: i64,
}

/// The result of a pass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// Status per resource key (`namespace.name`), valid or not.
    pub statuses: BTreeMap<String, VirtualDestinationStatus>,
    /// Decisions of the valid resources; pass them back as `previous` next time.
    pub decisions: BTreeMap<String, Decision>,
    /// Every known cluster's complete snapshot (possibly empty, so the agent prunes), in canonical
    /// order.
    pub snapshots: BTreeMap<String, Vec<IstioObject>>,
}

/// Validates, decides and renders every resource. Invalid resources get errors in their status and
/// contribute nothing to any snapshot; the others are unaffected by them.
pub fn reconcile(
    vds: &[VirtualDestination],
    inputs: &Inputs<'_>,
    previous: &BTreeMap<String, Decision>,
) -> Outcome {
    let mut out = Outcome::default();
    for cluster in inputs.topology.clusters.keys() {
        out.snapshots.insert(cluster.clone(), Vec::new());
    }
    let errors = validate_set(vds, inputs.topology);
    for vd in vds {
        let key = key_of(vd);
        let errs = errors.get(&key).cloned().unwrap_or_default();
        let prev = previous.get(&key);
        if !errs.is_empty() {
            let status = VirtualDestinationStatus {
                errors: errs,
                last_decision: prev.cloned(),
                ..Default::default()
            };
            out.statuses.insert(key, status);
            continue;
        }
        let decision = decide(&vd.spec, inputs.health, inputs.topology, prev, inputs.now_ms);
        for (cluster, objects) in render(vd, &decision, inputs.topology, inputs.clients) {
            out.snapshots.entry(cluster).or_default().extend(objects);
        }
        let mut backing: Vec<_> = select(&vd.spec, inputs.topology)
            .iter()
            .map(|s| s.backing())
            .collect();
        backing.sort();
        backing.dedup();
        let status = VirtualDestinationStatus {
            backing_services: backing,
            placement: placement(vd, inputs.topology, inputs.clients)
                .into_iter()
                .collect(),
            last_decision: Some(decision.clone()),
            errors: Vec::new(),
        };
        out.statuses.insert(key.clone(), status);
        out.decisions.insert(key, decision);
    }
    for objects in out.snapshots.values_mut() {
        sort_objects(objects);
    }
    out
}
