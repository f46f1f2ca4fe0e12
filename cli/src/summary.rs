//! The demo's one-line live summary: connected clusters, series, ingest rate, graph edges,
//! unhealthy services and the routing the failover controller decided.

use std::time::Instant;

use meshfed_aggregator::Aggregator;
use meshfed_aggregator::graph::GraphQuery;
use meshfed_aggregator::health::HealthState;

/// Remembers the previous sample count to print a rate.
pub struct Summary {
    started: Instant,
    last: Option<(Instant, u64)>,
    clusters_expected: usize,
}

impl Summary {
    /// A summary for a mesh of `clusters_expected` clusters.
    pub fn new(clusters_expected: usize) -> Self {
        Self {
            started: Instant::now(),
            last: None,
            clusters_expected,
        }
    }

    /// One line describing the aggregator now.
    pub fn line(&mut self, aggregator: &Aggregator) -> String {
        let now = Instant::now();
        let stats = aggregator.store.stats();
        let rate = match self.last {
            Some((t, n)) => (stats.samples.saturating_sub(n)) as f64 / now.duration_since(t).as_secs_f64(),
            None => 0.0,
        };
        self.last = Some((now, stats.samples));
        let connected = aggregator.ingest.connected_clusters().len();
        let edges =
            match aggregator
                .graph
                .graph(aggregator.graph.shortest_window(), None, &GraphQuery::default())
            {
                Ok(g) => {
                    let cross = g.edges.iter().filter(|e| e.cross_cluster).count();
                    let worst = g
                        .edges
                        .iter()
                        .filter(|e| e.error_rate_percent >= 1.0)
                        .max_by(|a, b| a.error_rate_percent.total_cmp(&b.error_rate_percent))
                        .map(|e| {
                            format!(
                                " | worst {} -> {} {:.1}% 5xx",
                                e.source, e.target, e.error_rate_percent
                            )
                        })
                        .unwrap_or_default();
                    format!("edges {} ({cross} cross-cluster){worst}", g.edges.len())
                }
                Err(e) => format!("graph error: {e}"),
            };
        let unhealthy: Vec<String> = aggregator
            .health
            .rows()
            .into_iter()
            .filter(|r| r.health.state != HealthState::Healthy)
            .map(|r| format!("{}/{} {}", r.cluster, r.service, r.health.state.as_str()))
            .collect();
        let health = if unhealthy.is_empty() {
            "all services healthy".to_owned()
        } else {
            unhealthy.join(", ")
        };
        let routing: String = aggregator
            .controller
            .statuses()
            .0
            .iter()
            .filter_map(|r| {
                let d = r.status.last_decision.as_ref()?;
                let host = r.hosts.first()?;
                let applied = r
                    .delivery
                    .iter()
                    .filter(|d| d.applied_version == Some(d.version) && d.errors.is_empty())
                    .count();
                Some(format!(
                    " | {host} -> {} (applied {applied}/{})",
                    meshfed_aggregator::controller::weights_text(&d.weights),
                    r.delivery.len()
                ))
            })
            .collect();
        format!(
            "[{:>5}s] clusters {connected}/{} connected | series {} | {:.0} samples/s | {edges} | {health}{routing}",
            self.started.elapsed().as_secs(),
            self.clusters_expected,
            stats.series,
            rate,
        )
    }
}
