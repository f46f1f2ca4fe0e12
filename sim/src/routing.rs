//! The routing table: for a (source cluster, source workload, destination service) the share of
//! traffic sent to each destination cluster. The failover controller pushes these at run time.
//!
//! Without a matching rule, traffic spreads over all healthy endpoints of the service in every
//! cluster, in proportion to their number — what Istio does in a multi-primary mesh without
//! locality load balancing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::topology::{ClusterId, Topology, Workload};
use crate::{Result, SimError};

/// One rule; the most specific matching rule wins (cluster and workload > workload > cluster > any).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingRule {
    /// Source cluster name; `None` matches every cluster.
    #[serde(default)]
    pub source_cluster: Option<String>,
    /// Source workload name or app; `None` matches every workload.
    #[serde(default)]
    pub source_workload: Option<String>,
    /// Destination service: short name, `name.namespace` or FQDN.
    pub destination_service: String,
    /// Relative weight per destination cluster; clusters left out get nothing. Clusters without a
    /// healthy endpoint are dropped and the rest renormalised (falling back to the default spread
    /// when nothing is left).
    pub weights: BTreeMap<String, f64>,
}

/// All routing rules.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingTable {
    /// Rules.
    #[serde(default)]
    pub rules: Vec<RoutingRule>,
}

impl RoutingTable {
    /// Checks names and weights against the topology.
    pub fn validate(&self, topo: &Topology) -> Result<()> {
        for r in &self.rules {
            let bad = |m: String| Err(SimError::InvalidRouting(m));
            if let Some(c) = &r.source_cluster
                && topo.cluster_id(c).is_none()
            {
                return bad(format!("unknown source cluster {c}"));
            }
            if let Some(w) = &r.source_workload
                && !topo.workloads.iter().any(|x| x.matches(w))
            {
                return bad(format!("unknown source workload {w}"));
            }
            if topo.service_id(&r.destination_service).is_none() {
                return bad(format!("unknown destination service {}", r.destination_service));
            }
            for (c, w) in &r.weights {
                if topo.cluster_id(c).is_none() {
                    return bad(format!("unknown destination cluster {c}"));
                }
                if !(w.is_finite() && *w >= 0.0) {
                    return bad(format!("weight for {c} must be a finite number >= 0"));
                }
            }
        }
        Ok(())
    }

    /// Weights per destination cluster index for a source (None = unknown source) calling the
    /// service `service_fqdn`, or `None` when no rule matches.
    pub(crate) fn lookup(
        &self,
        topo: &Topology,
        source_cluster: ClusterId,
        source: Option<&Workload>,
        service: &crate::topology::Service,
    ) -> Option<Vec<(ClusterId, f64)>> {
        let cluster_name = &topo.clusters[source_cluster];
        let mut best: Option<(u8, &RoutingRule)> = None;
        for r in &self.rules {
            if !service.matches(&r.destination_service) {
                continue;
            }
            let cluster_ok = r.source_cluster.as_ref().is_none_or(|c| c == cluster_name);
            let workload_ok = match (&r.source_workload, source) {
                (None, _) => true,
                (Some(w), Some(s)) => s.matches(w),
                (Some(_), None) => false,
            };
            if !(cluster_ok && workload_ok) {
                continue;
            }
            let score = 2 * u8::from(r.source_workload.is_some()) + u8::from(r.source_cluster.is_some());
            if best.is_none_or(|(b, _)| score > b) {
                best = Some((score, r));
            }
        }
        best.map(|(_, r)| {
            r.weights
                .iter()
                .filter_map(|(c, w)| Some((topo.cluster_id(c)?, *w)))
                .collect()
        })
    }
}
