//! The simulated mesh: clusters, services, workloads (one instance per cluster they run in), pods
//! and the call graph, built deterministically from [`SimConfig`] and its seed.

use std::collections::HashMap;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::config::SimConfig;
use crate::spec::{self, AppSpec, EdgeSpecKind};

/// Index into [`Topology::clusters`].
pub type ClusterId = usize;
/// Index into [`Topology::services`].
pub type ServiceId = usize;
/// Index into [`Topology::workloads`] (a workload instance in one cluster).
pub type WorkloadId = usize;
/// Index into [`Topology::pods`].
pub type PodId = usize;

/// Protocol a service speaks, as Istio reports it in `request_protocol`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1 or HTTP/2.
    Http,
    /// gRPC over HTTP/2.
    Grpc,
    /// Opaque TCP.
    Tcp,
}

/// A fixed, deterministic traffic profile of a service (medians of log-normal distributions).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Profile {
    /// Median server-side latency in ms.
    pub latency_median_ms: f64,
    /// Log-normal sigma of the latency.
    pub latency_sigma: f64,
    /// Median request size in bytes (headers included).
    pub request_bytes_median: f64,
    /// Median response size in bytes.
    pub response_bytes_median: f64,
}

/// A Kubernetes service (the same name exists in every cluster that runs one of its workloads).
#[derive(Clone, Debug, Serialize)]
pub struct Service {
    /// Short name, e.g. `reviews`.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Service port (also the port in Envoy cluster names).
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
    /// `name.namespace.svc.cluster.local`.
    pub fqdn: String,
    /// Traffic profile.
    pub profile: Profile,
    /// A host outside the mesh: no workloads, reached through Envoy's `PassthroughCluster` and
    /// reported only by the client.
    pub external: bool,
}

impl Service {
    /// The client-side Envoy cluster name, `outbound|9080||reviews.bookinfo.svc.cluster.local`
    /// (`PassthroughCluster` for external hosts).
    pub fn outbound_cluster(&self) -> String {
        if self.external {
            return "PassthroughCluster".to_string();
        }
        format!("outbound|{}||{}", self.port, self.fqdn)
    }

    /// The server-side Envoy cluster name, `inbound|9080||`.
    pub fn inbound_cluster(&self) -> String {
        format!("inbound|{}||", self.port)
    }

    /// True when `name` is this service's short name, `name.namespace` or FQDN.
    pub fn matches(&self, name: &str) -> bool {
        name == self.name || name == self.fqdn || name == format!("{}.{}", self.name, self.namespace)
    }
}

/// One workload (Deployment) running in one cluster.
#[derive(Clone, Debug, Serialize)]
pub struct Workload {
    /// Cluster index.
    pub cluster: ClusterId,
    /// Cluster name.
    pub cluster_name: String,
    /// Namespace.
    pub namespace: String,
    /// Workload name, e.g. `reviews-v2`.
    pub name: String,
    /// `app` label.
    pub app: String,
    /// `version` label (`unknown` for gateways, as Istio reports it).
    pub version: String,
    /// Canonical revision (`latest` when the workload has no version label).
    pub canonical_revision: String,
    /// Service account.
    pub service_account: String,
    /// The service this workload backs, if any.
    pub service: Option<ServiceId>,
    /// Its pods.
    pub pods: Vec<PodId>,
}

impl Workload {
    /// SPIFFE identity, `spiffe://cluster.local/ns/<ns>/sa/<sa>`.
    pub fn principal(&self) -> String {
        format!(
            "spiffe://cluster.local/ns/{}/sa/{}",
            self.namespace, self.service_account
        )
    }

    /// True when `name` is this workload's name or app.
    pub fn matches(&self, name: &str) -> bool {
        self.name == name || self.app == name
    }
}

/// One pod: one Envoy sidecar, one scrape target.
#[derive(Clone, Debug, Serialize)]
pub struct Pod {
    /// Pod name, e.g. `reviews-v2-7bf8c9648f-x2kq9`.
    pub name: String,
    /// Cluster index.
    pub cluster: ClusterId,
    /// Workload instance.
    pub workload: WorkloadId,
    /// A plausible pod IP (informational).
    pub ip: String,
}

/// Who originates an edge's traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeSource {
    /// A meshed workload instance.
    Workload(WorkloadId),
    /// A client outside the mesh entering in the given cluster (reported only by the destination).
    Unknown(ClusterId),
}

/// What flows on an edge.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// HTTP or gRPC requests per second.
    Requests {
        /// Requests per second from this source instance (all its pods together).
        rate_rps: f64,
    },
    /// TCP connections and bytes per second.
    Tcp {
        /// Connections opened per second.
        connections_per_sec: f64,
        /// Request bytes per second (client to server; `istio_tcp_received_bytes_total`).
        request_bytes_per_sec: f64,
        /// Response bytes per second (server to client; `istio_tcp_sent_bytes_total`).
        response_bytes_per_sec: f64,
    },
}

/// A configured call from one source instance to one service (routing picks the clusters).
#[derive(Clone, Debug, Serialize)]
pub struct Edge {
    /// Source.
    pub source: EdgeSource,
    /// Destination service.
    pub service: ServiceId,
    /// Rates.
    pub kind: EdgeKind,
    /// The key used in [`SimConfig::edge_rates`], e.g. `productpage-v1->reviews`.
    pub key: String,
}

/// The whole simulated mesh.
#[derive(Clone, Debug, Serialize)]
pub struct Topology {
    /// Cluster names.
    pub clusters: Vec<String>,
    /// Services.
    pub services: Vec<Service>,
    /// Workload instances.
    pub workloads: Vec<Workload>,
    /// Pods.
    pub pods: Vec<Pod>,
    /// Edges.
    pub edges: Vec<Edge>,
    /// For each service and cluster, the workload instances backing it there.
    #[serde(skip)]
    pub backends: Vec<Vec<Vec<WorkloadId>>>,
    /// For each workload instance, the services it calls.
    #[serde(skip)]
    pub calls: Vec<Vec<ServiceId>>,
    /// Pod index by name.
    #[serde(skip)]
    pod_index: HashMap<String, PodId>,
}

const POD_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn random_suffix(rng: &mut SmallRng, n: usize) -> String {
    (0..n)
        .map(|_| POD_ALPHABET[rng.random_range(0..POD_ALPHABET.len())] as char)
        .collect()
}

impl Topology {
    /// Builds the mesh described by `cfg` (bookinfo, istio-system gateways, web and its copies).
    pub fn build(cfg: &SimConfig) -> Self {
        let mut rng = SmallRng::seed_from_u64(cfg.seed);
        let k = cfg.clusters.max(1);
        let mut t = Topology {
            clusters: (1..=k).map(|i| format!("cluster-{i}")).collect(),
            services: Vec::new(),
            workloads: Vec::new(),
            pods: Vec::new(),
            edges: Vec::new(),
            backends: Vec::new(),
            calls: Vec::new(),
            pod_index: HashMap::new(),
        };
        let mut apps: Vec<AppSpec> = vec![spec::bookinfo(), spec::web("web")];
        for i in 0..cfg.extra_namespaces {
            apps.push(spec::web(&format!("web-{}", i + 2)));
        }
        let mut entries = Vec::new();
        for app in &apps {
            let first_service = t.services.len();
            for s in &app.services {
                let jitter = |rng: &mut SmallRng| rng.random_range(0.85..1.15);
                let profile = Profile {
                    latency_median_ms: s.latency_ms * jitter(&mut rng),
                    latency_sigma: s.sigma,
                    request_bytes_median: (s.request_bytes * jitter(&mut rng)).round(),
                    response_bytes_median: (s.response_bytes * jitter(&mut rng)).round(),
                };
                t.services.push(Service {
                    name: s.name.to_string(),
                    namespace: app.namespace.clone(),
                    port: s.port,
                    protocol: s.protocol,
                    fqdn: if s.external {
                        s.name.to_string()
                    } else {
                        format!("{}.{}.svc.cluster.local", s.name, app.namespace)
                    },
                    profile,
                    external: s.external,
                });
            }
            let find_service = |t: &Topology, name: &str| {
                (first_service..t.services.len()).find(|&i| t.services[i].name == name)
            };
            for w in &app.workloads {
                for c in placement(w.placement, k) {
                    let service = w.service.and_then(|s| find_service(&t, s));
                    t.add_workload(&mut rng, cfg, c, &app.namespace, w, service);
                }
            }
            if let Some((svc, rate)) = app.entry
                && let Some(s) = find_service(&t, svc)
            {
                entries.push((s, rate));
            }
            for e in &app.edges {
                let Some(service) = find_service(&t, e.to) else {
                    continue;
                };
                let key = format!("{}->{}", e.from, e.to);
                let rate_override = cfg.edge_rates.get(&key).copied();
                let kind = scaled(e.kind, rate_override, cfg.rate_scale);
                if e.from == "unknown" {
                    for c in 0..k {
                        t.edges.push(Edge {
                            source: EdgeSource::Unknown(c),
                            service,
                            kind,
                            key: key.clone(),
                        });
                    }
                    continue;
                }
                let sources: Vec<WorkloadId> = (0..t.workloads.len())
                    .filter(|&w| t.workloads[w].namespace == app.namespace && t.workloads[w].name == e.from)
                    .collect();
                for w in sources {
                    t.edges.push(Edge {
                        source: EdgeSource::Workload(w),
                        service,
                        kind,
                        key: key.clone(),
                    });
                }
            }
        }
        // Ingress gateways last, so app pods keep the same names whatever the gateway count.
        let gw = spec::ingress_gateway();
        for c in 0..k {
            let w = t.add_workload(&mut rng, cfg, c, "istio-system", &gw, None);
            for &(service, rate) in &entries {
                let key = format!("{}->{}", gw.name, t.services[service].name);
                let rate_override = cfg.edge_rates.get(&key).copied();
                let kind = scaled(EdgeSpecKind::Requests(rate), rate_override, cfg.rate_scale);
                t.edges.push(Edge {
                    source: EdgeSource::Workload(w),
                    service,
                    kind,
                    key,
                });
            }
        }
        t.index();
        t
    }

    fn add_workload(
        &mut self,
        rng: &mut SmallRng,
        cfg: &SimConfig,
        cluster: ClusterId,
        namespace: &str,
        w: &spec::WorkloadSpec,
        service: Option<ServiceId>,
    ) -> WorkloadId {
        let id = self.workloads.len();
        let rs_hash = random_suffix(rng, 10);
        let mut pods = Vec::with_capacity(cfg.pods_per_workload);
        for _ in 0..cfg.pods_per_workload {
            let name = loop {
                let name = format!("{}-{}-{}", w.name, rs_hash, random_suffix(rng, 5));
                if !self.pod_index.contains_key(&name) {
                    break name;
                }
            };
            let ip = format!(
                "10.{}.{}.{}",
                cluster,
                rng.random_range(0..=255u8),
                rng.random_range(2..=254u8)
            );
            self.pod_index.insert(name.clone(), self.pods.len());
            pods.push(self.pods.len());
            self.pods.push(Pod {
                name,
                cluster,
                workload: id,
                ip,
            });
        }
        self.workloads.push(Workload {
            cluster,
            cluster_name: self.clusters[cluster].clone(),
            namespace: namespace.to_string(),
            name: w.name.to_string(),
            app: w.app.to_string(),
            version: w.version.unwrap_or("unknown").to_string(),
            canonical_revision: w.version.unwrap_or("latest").to_string(),
            service_account: w.service_account.to_string(),
            service,
            pods,
        });
        id
    }

    fn index(&mut self) {
        self.backends = vec![vec![Vec::new(); self.clusters.len()]; self.services.len()];
        for (i, w) in self.workloads.iter().enumerate() {
            if let Some(s) = w.service {
                self.backends[s][w.cluster].push(i);
            }
        }
        self.calls = vec![Vec::new(); self.workloads.len()];
        for e in &self.edges {
            if let EdgeSource::Workload(w) = e.source
                && !self.calls[w].contains(&e.service)
            {
                self.calls[w].push(e.service);
            }
        }
    }

    /// The cluster index called `name`.
    pub fn cluster_id(&self, name: &str) -> Option<ClusterId> {
        self.clusters.iter().position(|c| c == name)
    }

    /// The pod called `name`.
    pub fn pod_id(&self, name: &str) -> Option<PodId> {
        self.pod_index.get(name).copied()
    }

    /// The service matching `name` (short name, `name.ns` or FQDN; the first match for short names).
    pub fn service_id(&self, name: &str) -> Option<ServiceId> {
        self.services.iter().position(|s| s.matches(name))
    }

    /// Workload instances in `cluster` whose name or app is `name`.
    pub fn workloads_matching(&self, cluster: ClusterId, name: &str) -> Vec<WorkloadId> {
        (0..self.workloads.len())
            .filter(|&w| self.workloads[w].cluster == cluster && self.workloads[w].matches(name))
            .collect()
    }

    /// All pods backing `service` across clusters.
    pub fn service_pods(&self, service: ServiceId) -> impl Iterator<Item = PodId> + '_ {
        self.backends[service]
            .iter()
            .flatten()
            .flat_map(|&w| self.workloads[w].pods.iter().copied())
    }
}

fn placement(p: &[usize], k: usize) -> Vec<ClusterId> {
    if p.is_empty() {
        return (0..k).collect();
    }
    let mut out: Vec<ClusterId> = p.iter().map(|&c| (c.max(1) - 1) % k).collect();
    out.sort_unstable();
    out.dedup();
    out
}

fn scaled(kind: EdgeSpecKind, rate_override: Option<f64>, scale: f64) -> EdgeKind {
    match kind {
        EdgeSpecKind::Requests(r) => EdgeKind::Requests {
            rate_rps: rate_override.unwrap_or(r) * scale,
        },
        EdgeSpecKind::Tcp {
            connections_per_sec,
            request_bytes_per_sec,
            response_bytes_per_sec,
        } => {
            let f = rate_override.map_or(1.0, |o| o / connections_per_sec) * scale;
            EdgeKind::Tcp {
                connections_per_sec: connections_per_sec * f,
                request_bytes_per_sec: request_bytes_per_sec * f,
                response_bytes_per_sec: response_bytes_per_sec * f,
            }
        }
    }
}
