//! The simulated mesh without sockets: topology, clock, fault/routing timeline and recorded
//! scrapes. Everything a pod endpoint serves is computed here, so tests and benchmarks can use it
//! directly.

mod truth;

pub use truth::EdgeRate;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use meshfed_model::Labels;
use serde::Serialize;

use crate::clock::Clock;
use crate::config::SimConfig;
use crate::counters::Timeline;
use crate::faults::{DarkMode, FaultId, FaultRequest, FaultStatus};
use crate::render;
use crate::routing::{RoutingRule, RoutingTable};
use crate::scenario::{default_scenario, load_scenario};
use crate::topology::{ClusterId, PodId, Topology};
use crate::{Result, SimError};

/// One scrape as served: when, and exactly which samples.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServedScrape {
    /// Simulated time in ms since start.
    pub at_ms: u64,
    /// Unix time in ms.
    pub unix_ms: i64,
    /// Samples (labels include `__name__`; empty label values are absent, as in Prometheus).
    #[serde(skip)]
    pub samples: Vec<(Labels, f64)>,
}

/// The mesh state shared by all pod servers and the control API.
#[derive(Debug)]
pub struct Mesh {
    topo: Arc<Topology>,
    clock: Arc<dyn Clock>,
    timeline: RwLock<Timeline>,
    record_scrapes: usize,
    /// `envoy_upstream_series` and the upstream cluster names it spreads over.
    upstream: (usize, Arc<[Arc<str>]>),
    recorded: Mutex<Vec<VecDeque<ServedScrape>>>,
}

impl Mesh {
    /// Builds the mesh and schedules the configured scenario.
    pub fn new(config: &SimConfig, clock: Arc<dyn Clock>) -> Result<Self> {
        config.validate()?;
        let topo = Arc::new(Topology::build(config));
        let scenario = match (&config.scenario_file, &config.scenario) {
            (Some(path), _) => load_scenario(path)?,
            (None, Some(s)) => s.clone(),
            (None, None) => default_scenario(),
        };
        let mut timeline = Timeline::new(&topo);
        for s in scenario {
            let end = s.duration_secs.map(|d| s.at_secs + d);
            timeline.add_fault(&topo, s.fault, s.at_secs, end)?;
        }
        let upstream = (
            config.envoy_upstream_series,
            render::upstream::cluster_names(&topo, config.envoy_upstream_series),
        );
        Ok(Self {
            recorded: Mutex::new(vec![VecDeque::new(); topo.pods.len()]),
            upstream,
            topo,
            clock,
            timeline: RwLock::new(timeline),
            record_scrapes: config.record_scrapes,
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, Timeline> {
        self.timeline.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Timeline> {
        self.timeline.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The topology.
    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    fn now_secs(&self) -> f64 {
        self.clock.now_ms() as f64 / 1000.0
    }

    /// The pod index of `name`.
    pub fn pod_id(&self, name: &str) -> Result<PodId> {
        self.topo
            .pod_id(name)
            .ok_or_else(|| SimError::UnknownPod(name.to_string()))
    }

    fn families(&self, pod: PodId, at_ms: u64) -> Vec<render::Family> {
        let t = at_ms as f64 / 1000.0;
        let tl = self.read();
        let values = tl.integrate(pod, t);
        let model = tl.model_at(t).clone();
        let started = tl.started_at(pod, t);
        drop(tl);
        let gauges = &model.gauges[self.topo.pods[pod].workload];
        let mut fams = render::families(&self.topo, &values, gauges);
        let (series, clusters) = &self.upstream;
        if *series > 0 {
            // Envoy prints counters, then gauges, then histograms.
            let at = fams.iter().position(|f| f.is_histogram()).unwrap_or(fams.len());
            let extra = render::upstream::families(clusters, *series, pod, t, t - started);
            fams.splice(at..at, extra);
        }
        fams
    }

    /// The exposition a scrape of `pod` at simulated time `at_ms` returns (nothing recorded).
    pub fn render_at(&self, pod: &str, at_ms: u64) -> Result<String> {
        Ok(render::to_text(&self.families(self.pod_id(pod)?, at_ms)))
    }

    /// The exact samples a scrape of `pod` at `at_ms` returns.
    pub fn samples_at(&self, pod: &str, at_ms: u64) -> Result<Vec<(Labels, f64)>> {
        Ok(render::to_samples(&self.families(self.pod_id(pod)?, at_ms)))
    }

    /// Number of samples a scrape of `pod` exposes now.
    pub fn series_count(&self, pod: &str) -> Result<usize> {
        Ok(render::sample_count(
            &self.families(self.pod_id(pod)?, self.clock.now_ms()),
        ))
    }

    /// Serves a scrape of `pod` now, recording it when recording is on.
    pub(crate) fn serve(&self, pod: PodId) -> String {
        let at_ms = self.clock.now_ms();
        let fams = self.families(pod, at_ms);
        if self.record_scrapes > 0 {
            let scrape = ServedScrape {
                at_ms,
                unix_ms: self.clock.unix_ms(),
                samples: render::to_samples(&fams),
            };
            let mut rec = self.recorded.lock().unwrap_or_else(|e| e.into_inner());
            let q = &mut rec[pod];
            if q.len() == self.record_scrapes {
                q.pop_front();
            }
            q.push_back(scrape);
        }
        render::to_text(&fams)
    }

    /// The last scrapes served for `pod` (oldest first); empty unless `record_scrapes > 0`.
    pub fn served_scrapes(&self, pod: &str) -> Result<Vec<ServedScrape>> {
        let p = self.pod_id(pod)?;
        let rec = self.recorded.lock().unwrap_or_else(|e| e.into_inner());
        Ok(rec[p].iter().cloned().collect())
    }

    /// Injects a fault; it starts `delay_secs` from now.
    pub fn inject(&self, req: FaultRequest) -> Result<FaultId> {
        let delay_ok = req.delay_secs.is_finite() && req.delay_secs >= 0.0;
        if !delay_ok || req.duration_secs.is_some_and(|d| !(d.is_finite() && d >= 0.0)) {
            return Err(SimError::InvalidFault(
                "delay_secs and duration_secs must be finite and >= 0".into(),
            ));
        }
        let mut tl = self.write();
        let start = self.now_secs() + req.delay_secs;
        let id = tl.add_fault(&self.topo, req.fault, start, req.duration_secs.map(|d| start + d))?;
        tl.compact(&self.topo, start - req.delay_secs);
        tracing::info!(id, start_secs = start, "Fault injected.");
        Ok(id)
    }

    /// Ends a fault now; false when it is unknown or already over.
    pub fn clear_fault(&self, id: FaultId) -> bool {
        let mut tl = self.write();
        let now = self.now_secs();
        let cleared = tl.clear_fault(&self.topo, id, now);
        tl.compact(&self.topo, now);
        cleared
    }

    /// All faults with their windows.
    pub fn faults(&self) -> Vec<FaultStatus> {
        let now = self.now_secs();
        self.read()
            .faults
            .iter()
            .map(|f| FaultStatus {
                id: f.id,
                fault: f.fault.clone(),
                start_secs: f.start,
                end_secs: f.end,
                active: f.active_at(now),
            })
            .collect()
    }

    /// Replaces the routing table from now on (history is kept, so counters stay exact).
    pub fn set_routing(&self, table: RoutingTable) -> Result<()> {
        table.validate(&self.topo)?;
        let mut tl = self.write();
        let now = self.now_secs();
        tl.set_routing(&self.topo, table, now);
        tl.compact(&self.topo, now);
        Ok(())
    }

    /// Replaces the rules whose source is `cluster` with `rules` (their `source_cluster` is set to
    /// `cluster`), leaving other clusters' rules alone: what one cluster's agent applies.
    pub fn set_cluster_routing(&self, cluster: &str, rules: Vec<RoutingRule>) -> Result<()> {
        if self.topo.cluster_id(cluster).is_none() {
            return Err(SimError::UnknownCluster(cluster.to_owned()));
        }
        let mut tl = self.write();
        let now = self.now_secs();
        let mut table = tl.routing_at(now).as_ref().clone();
        table
            .rules
            .retain(|r| r.source_cluster.as_deref() != Some(cluster));
        table.rules.extend(rules.into_iter().map(|r| RoutingRule {
            source_cluster: Some(cluster.to_owned()),
            ..r
        }));
        table.validate(&self.topo)?;
        tl.set_routing(&self.topo, table, now);
        tl.compact(&self.topo, now);
        Ok(())
    }

    /// The routing table in effect now.
    pub fn routing(&self) -> RoutingTable {
        self.read().routing_at(self.now_secs()).as_ref().clone()
    }

    /// How the cluster's endpoints misbehave now, if it is dark.
    pub fn dark_mode(&self, cluster: ClusterId) -> Option<DarkMode> {
        self.read().dark_mode(cluster, self.now_secs())
    }
}
