//! Faults: what can go wrong, how a request for one is resolved against the topology, and the
//! combined effect of the faults active at one instant.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::topology::{ClusterId, PodId, Topology, WorkloadId};
use crate::{Result, SimError};

/// Identifier of an injected fault.
pub type FaultId = u64;

/// How a dark cluster's pod endpoints misbehave.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DarkMode {
    /// Accept and immediately reset connections (a scraper sees a connection error at once).
    #[default]
    Refuse,
    /// Accept and never answer (a scraper hits its timeout), like a black-holed network.
    Hang,
}

/// A fault. `workload` matches a workload name (`reviews-v2`) or its app (`reviews`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// The workload in the cluster answers `fraction` of its requests with `code` (default 503).
    ErrorRate {
        /// Cluster name.
        cluster: String,
        /// Workload name or app.
        workload: String,
        /// Fraction of requests failing, in [0, 1].
        fraction: f64,
        /// HTTP status of the failures.
        #[serde(default = "default_code")]
        code: u16,
    },
    /// The workload in the cluster answers `added_ms` slower.
    Latency {
        /// Cluster name.
        cluster: String,
        /// Workload name or app.
        workload: String,
        /// Added latency in ms.
        added_ms: f64,
    },
    /// Outlier detection ejects `count` endpoints of the workload in the cluster: they get no
    /// traffic, and clients' ejection/healthy-membership gauges show it.
    EjectEndpoints {
        /// Cluster name.
        cluster: String,
        /// Workload name or app.
        workload: String,
        /// Endpoints ejected per matching workload (the first ones).
        #[serde(default = "one")]
        count: usize,
    },
    /// The pod restarts: its counters start again from zero (instantaneous; duration is ignored).
    PodRestart {
        /// Pod name.
        pod: String,
    },
    /// The cluster goes dark: its pod endpoints stop answering scrapes, and calls between it and
    /// other clusters fail at the client (`503`, `UF,URX`).
    ClusterDark {
        /// Cluster name.
        cluster: String,
        /// Refuse or hang connections.
        #[serde(default)]
        mode: DarkMode,
    },
}

fn default_code() -> u16 {
    503
}

fn one() -> usize {
    1
}

/// A request to inject a fault, starting `delay_secs` from now, for `duration_secs` (or until cleared).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRequest {
    /// The fault.
    pub fault: Fault,
    /// Delay before it starts, in seconds.
    #[serde(default)]
    pub delay_secs: f64,
    /// How long it lasts; `None` until cleared.
    #[serde(default)]
    pub duration_secs: Option<f64>,
}

impl From<Fault> for FaultRequest {
    fn from(fault: Fault) -> Self {
        Self {
            fault,
            delay_secs: 0.0,
            duration_secs: None,
        }
    }
}

/// A fault as the simulator holds it, with its time window in simulated seconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FaultStatus {
    /// Id (for clearing).
    pub id: FaultId,
    /// The fault.
    pub fault: Fault,
    /// Start, in seconds since the simulator started.
    pub start_secs: f64,
    /// End, if bounded.
    pub end_secs: Option<f64>,
    /// Whether it is in effect now.
    pub active: bool,
}

/// A fault resolved to topology indices.
#[derive(Clone, Debug)]
pub(crate) enum Resolved {
    Error {
        workloads: Vec<WorkloadId>,
        fraction: f64,
        code: u16,
    },
    Latency {
        workloads: Vec<WorkloadId>,
        added_ms: f64,
    },
    Eject {
        pods: Vec<PodId>,
    },
    Restart {
        pod: PodId,
    },
    Dark {
        cluster: ClusterId,
        mode: DarkMode,
    },
}

fn cluster(topo: &Topology, name: &str) -> Result<ClusterId> {
    topo.cluster_id(name)
        .ok_or_else(|| SimError::UnknownCluster(name.to_string()))
}

fn workloads(topo: &Topology, cluster_name: &str, name: &str) -> Result<Vec<WorkloadId>> {
    let c = cluster(topo, cluster_name)?;
    let ws = topo.workloads_matching(c, name);
    if ws.is_empty() {
        return Err(SimError::UnknownWorkload {
            cluster: cluster_name.to_string(),
            workload: name.to_string(),
        });
    }
    Ok(ws)
}

impl Fault {
    /// Checks the fault against the topology and resolves names to indices.
    pub(crate) fn resolve(&self, topo: &Topology) -> Result<Resolved> {
        Ok(match self {
            Fault::ErrorRate {
                cluster,
                workload,
                fraction,
                code,
            } => {
                if !(0.0..=1.0).contains(fraction) {
                    return Err(SimError::InvalidFault("fraction must be within [0, 1]".into()));
                }
                if !(100..=599).contains(code) {
                    return Err(SimError::InvalidFault("code must be an HTTP status".into()));
                }
                Resolved::Error {
                    workloads: workloads(topo, cluster, workload)?,
                    fraction: *fraction,
                    code: *code,
                }
            }
            Fault::Latency {
                cluster,
                workload,
                added_ms,
            } => {
                if !(added_ms.is_finite() && *added_ms >= 0.0) {
                    return Err(SimError::InvalidFault("added_ms must be >= 0".into()));
                }
                Resolved::Latency {
                    workloads: workloads(topo, cluster, workload)?,
                    added_ms: *added_ms,
                }
            }
            Fault::EjectEndpoints {
                cluster,
                workload,
                count,
            } => {
                let pods = workloads(topo, cluster, workload)?
                    .into_iter()
                    .flat_map(|w| {
                        topo.workloads[w]
                            .pods
                            .iter()
                            .take(*count)
                            .copied()
                            .collect::<Vec<_>>()
                    })
                    .collect();
                Resolved::Eject { pods }
            }
            Fault::PodRestart { pod } => Resolved::Restart {
                pod: topo
                    .pod_id(pod)
                    .ok_or_else(|| SimError::UnknownPod(pod.clone()))?,
            },
            Fault::ClusterDark { cluster: c, mode } => Resolved::Dark {
                cluster: cluster(topo, c)?,
                mode: *mode,
            },
        })
    }
}

/// The combined effect of a set of simultaneously active faults.
#[derive(Clone, Debug, Default)]
pub(crate) struct Effects {
    /// Failure fraction and code per workload instance (independent faults combine).
    pub error: HashMap<WorkloadId, (f64, u16)>,
    /// Added latency per workload instance.
    pub latency: HashMap<WorkloadId, f64>,
    /// Ejected pods.
    pub ejected: Vec<bool>,
    /// Dark clusters.
    pub dark: Vec<bool>,
}

impl Effects {
    pub(crate) fn combine<'a>(topo: &Topology, active: impl IntoIterator<Item = &'a Resolved>) -> Self {
        let mut e = Effects {
            ejected: vec![false; topo.pods.len()],
            dark: vec![false; topo.clusters.len()],
            ..Default::default()
        };
        for r in active {
            match r {
                Resolved::Error {
                    workloads,
                    fraction,
                    code,
                } => {
                    for w in workloads {
                        let entry = e.error.entry(*w).or_insert((0.0, *code));
                        *entry = (1.0 - (1.0 - entry.0) * (1.0 - fraction), *code);
                    }
                }
                Resolved::Latency { workloads, added_ms } => {
                    for w in workloads {
                        *e.latency.entry(*w).or_insert(0.0) += added_ms;
                    }
                }
                Resolved::Eject { pods } => pods.iter().for_each(|&p| e.ejected[p] = true),
                Resolved::Dark { cluster, .. } => e.dark[*cluster] = true,
                Resolved::Restart { .. } => {}
            }
        }
        e
    }
}
