//! The routing table: for a (source cluster, source workload, destination service) the share of
//! traffic sent to each destination cluster. The failover controller pushes these at run time.
//!
//! Without a matching rule, traffic spreads over all healthy endpoints of the service in every
//! cluster, in proportion to their number — what Istio does in a multi-primary mesh without
//! locality load balancing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::topology::{ClusterId, EdgeSource, ServiceId, Topology, Workload};
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

impl RoutingTable {
    /// Shares of an edge's traffic per destination cluster, given the endpoints taking traffic in
    /// each cluster (`avail`). Callers outside the mesh stay in the cluster they entered.
    pub(crate) fn cluster_shares(
        &self,
        topo: &Topology,
        source_cluster: ClusterId,
        source: EdgeSource,
        service: ServiceId,
        avail: &[u32],
    ) -> Vec<(ClusterId, f64)> {
        let total: u32 = avail.iter().sum();
        if total == 0 {
            return Vec::new();
        }
        let src = match source {
            EdgeSource::Workload(w) => &topo.workloads[w],
            EdgeSource::Unknown(c) => return if avail[c] > 0 { vec![(c, 1.0)] } else { Vec::new() },
        };
        if let Some(weights) = self.lookup(topo, source_cluster, Some(src), &topo.services[service]) {
            let kept: Vec<(ClusterId, f64)> = weights
                .into_iter()
                .filter(|&(c, w)| w > 0.0 && avail[c] > 0)
                .collect();
            let sum: f64 = kept.iter().map(|(_, w)| w).sum();
            if sum > 0.0 {
                return kept.into_iter().map(|(c, w)| (c, w / sum)).collect();
            }
        }
        let spread = (0..avail.len()).filter(|&c| avail[c] > 0);
        spread
            .map(|c| (c, f64::from(avail[c]) / f64::from(total)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SimConfig;

    fn rule(cluster: Option<&str>, workload: Option<&str>, to: &str) -> RoutingRule {
        RoutingRule {
            source_cluster: cluster.map(String::from),
            source_workload: workload.map(String::from),
            destination_service: "web-api".into(),
            weights: [(to.to_string(), 1.0)].into_iter().collect(),
        }
    }

    #[test]
    fn most_specific_rule_wins() {
        let topo = Topology::build(&SimConfig::quiet());
        let table = RoutingTable {
            rules: vec![
                rule(None, None, "cluster-1"),
                rule(Some("cluster-3"), None, "cluster-2"),
                rule(None, Some("frontend"), "cluster-3"),
                rule(Some("cluster-3"), Some("frontend"), "cluster-1"),
            ],
        };
        table.validate(&topo).expect("valid");
        let svc = &topo.services[topo.service_id("web-api.web").expect("service")];
        let frontend = |c: usize| {
            topo.workloads
                .iter()
                .find(|w| w.name == "frontend" && w.cluster == c)
        };
        let gw = topo
            .workloads
            .iter()
            .find(|w| w.name == "istio-ingressgateway" && w.cluster == 2);
        let cases = [(2, frontend(2), 0), (1, frontend(1), 2), (2, gw, 1), (0, None, 0)];
        for (cluster, source, want) in cases {
            let got = table.lookup(&topo, cluster, source, svc).expect("a rule matches");
            assert_eq!(got, vec![(want, 1.0)], "source cluster {cluster}");
        }
        let bad = RoutingTable {
            rules: vec![rule(Some("cluster-9"), None, "cluster-1")],
        };
        assert!(bad.validate(&topo).is_err());
    }
}
