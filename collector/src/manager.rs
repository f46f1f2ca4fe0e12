//! Runs one scrape loop per target and keeps the set of loops in step with discovery.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use meshfed_relay::client::RelayClient;
use meshfed_relay::encode::OutgoingSample;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span, warn};

use crate::config::ScrapeConfig;
use crate::discovery::Target;
use crate::forward::Forwarder;
use crate::metrics::CollectorMetrics;
use crate::reduce::Reducer;
use crate::scrape::{ScrapeClient, Scraper};

/// Owns the running scrape loops.
pub struct ScrapeManager {
    client: ScrapeClient,
    config: ScrapeConfig,
    cluster: String,
    relay: RelayClient,
    metrics: CollectorMetrics,
    loops: HashMap<Target, RunningLoop>,
    /// Coalesces the loops' samples into relay batches.
    forwarder: (Forwarder, JoinHandle<()>),
    /// Edge reduction stage between the loops and the relay, when configured.
    reduction: Option<(Arc<Reducer>, CancellationToken, JoinHandle<()>)>,
}

impl ScrapeManager {
    /// A manager with no targets yet.
    pub fn new(config: ScrapeConfig, cluster: String, relay: RelayClient, metrics: CollectorMetrics) -> Self {
        let client = ScrapeClient::new(config.keep_alive);
        let reduction = config.reduce.as_ref().filter(|r| r.by_workload).map(|r| {
            let reducer = Reducer::new(r.clone());
            let stop = CancellationToken::new();
            let task = tokio::spawn(
                flush_loop(
                    Arc::clone(&reducer),
                    Duration::from_secs_f64(config.interval_secs),
                    relay.clone(),
                    metrics.clone(),
                    stop.clone(),
                )
                .in_current_span(),
            );
            (reducer, stop, task)
        });
        let forwarder = Forwarder::spawn(relay.clone(), metrics.clone());
        Self {
            client,
            config,
            cluster,
            relay,
            metrics,
            loops: HashMap::new(),
            forwarder,
            reduction,
        }
    }

    /// Starts loops for new targets and stops loops whose target is gone (their series are marked
    /// stale, as Prometheus does when a target disappears).
    pub fn sync(&mut self, targets: &[Target]) {
        let wanted: std::collections::HashSet<&Target> = targets.iter().collect();
        self.loops.retain(|t, running| {
            let keep = wanted.contains(t);
            if !keep {
                debug!(target = %t.url, "Target removed.");
                running.removed.store(true, Ordering::Relaxed);
                running.stop.cancel();
            }
            keep
        });
        for t in targets {
            if !self.loops.contains_key(t) {
                let stop = CancellationToken::new();
                let removed = Arc::new(AtomicBool::new(false));
                let mut scraper =
                    Scraper::new(self.client.clone(), t.clone(), self.config.clone(), &self.cluster);
                if let Some((reducer, _, _)) = &self.reduction {
                    scraper = scraper.with_reducer(Arc::clone(reducer));
                }
                let l = ScrapeLoop {
                    scraper,
                    interval: Duration::from_secs_f64(self.config.interval_secs),
                    relay: self.relay.clone(),
                    forwarder: self.forwarder.0.clone(),
                    metrics: self.metrics.clone(),
                };
                let span = info_span!("scrape", target = %t.url);
                let handle = tokio::spawn(l.run(stop.clone(), Arc::clone(&removed)).instrument(span));
                self.loops.insert(
                    t.clone(),
                    RunningLoop {
                        stop,
                        removed,
                        handle,
                    },
                );
            }
        }
        self.metrics.targets.set(self.loops.len() as i64);
    }

    /// Stops every loop without marking series stale (a restarting collector must not blank its
    /// cluster's data) and waits for in-flight scrapes to be handed to the relay.
    pub async fn shutdown(self) {
        let handles: Vec<_> = self
            .loops
            .into_values()
            .map(|running| {
                running.stop.cancel();
                running.handle
            })
            .collect();
        for h in handles {
            let _ = h.await;
        }
        // The loops are done; with the last sender gone the forwarder sends what it holds and ends.
        let (forwarder, forward_task) = self.forwarder;
        drop(forwarder);
        let _ = forward_task.await;
        if let Some((_, stop, task)) = self.reduction {
            // The flush loop hands over the last reduced values when stopped.
            stop.cancel();
            let _ = task.await;
        }
    }
}

struct RunningLoop {
    stop: CancellationToken,
    removed: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

struct ScrapeLoop {
    scraper: Scraper,
    interval: Duration,
    relay: RelayClient,
    forwarder: Forwarder,
    metrics: CollectorMetrics,
}

impl ScrapeLoop {
    async fn run(mut self, stop: CancellationToken, removed: Arc<AtomicBool>) {
        // Spread targets over the interval by a stable offset derived from the URL, like Prometheus.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.scraper.target().url.hash(&mut h);
        let offset = Duration::from_nanos(h.finish() % self.interval.as_nanos().max(1) as u64);
        let start = tokio::time::Instant::now() + offset;
        let mut ticker = tokio::time::interval_at(start, self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last_ts = 0;
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                _ = ticker.tick() => {}
            }
            let ts = now_ms();
            let out = self.scraper.scrape(ts).await;
            last_ts = ts;
            if let Some(e) = &out.error {
                warn!(
                    target = %self.scraper.target().url,
                    reason = e.reason(),
                    line = ?e.line(),
                    error = %e,
                    "Scrape failed."
                );
            }
            self.metrics
                .scrape_done(out.error.as_ref().map(|e| e.reason()), out.scraped);
            if let Some(metadata) = out.metadata {
                self.relay.publish_metadata(metadata);
            }
            self.forward(out.samples).await;
        }
        if removed.load(Ordering::Relaxed) {
            // The target went away (not a shutdown): its series end now.
            let ts = now_ms().max(last_ts + 1);
            let stale = self.scraper.end_of_run_staleness(ts);
            self.forward(stale).await;
        }
    }

    async fn forward(&self, samples: Vec<OutgoingSample>) {
        self.forwarder.send(samples, &self.metrics).await;
    }
}

/// Emits the reduced series once per interval, and once more when stopped.
async fn flush_loop(
    reducer: Arc<Reducer>,
    interval: Duration,
    relay: RelayClient,
    metrics: CollectorMetrics,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopped = tokio::select! {
            _ = stop.cancelled() => true,
            _ = ticker.tick() => false,
        };
        let (samples, stats) = reducer.flush(now_ms());
        metrics.reduction_flushed(stats);
        let n = samples.len() as u64;
        if !samples.is_empty() {
            match relay.send(samples).await {
                Ok(()) => metrics.samples_forwarded.inc_by(n),
                Err(_) => metrics.samples_dropped.inc_by(n),
            };
        }
        if stopped {
            break;
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
