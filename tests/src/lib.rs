//! Helpers for meshfed's end-to-end tests: a mesh driven on simulated time, and small clients for
//! the aggregator's HTTP API.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use meshfed_aggregator::{Aggregator, AggregatorConfig};
use meshfed_collector::config::ScrapeConfig;
use meshfed_collector::discovery::Target;
use meshfed_collector::scrape::Scraper;
use meshfed_model::Labels;
use meshfed_query::Value;
use meshfed_relay::client::{RelayClient, RelayClientOptions};
use meshfed_sim::{ManualClock, RunningSim, SimConfig, Simulator};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub mod prometheus;

/// A simulator on a manual clock, the real aggregator, and per-cluster relay clients fed by real
/// `Scraper`s. Each [`SteppedMesh::step`] advances simulated time and scrapes every pod once with
/// the simulated timestamp, so minutes of traffic run in milliseconds with exact ground truth.
pub struct SteppedMesh {
    /// The simulator.
    pub sim: RunningSim,
    /// Its clock.
    pub clock: Arc<ManualClock>,
    /// The aggregator.
    pub aggregator: Aggregator,
    scrapers: Vec<(usize, Scraper)>,
    relays: Vec<(RelayClient, CancellationToken, JoinHandle<()>)>,
    stop: CancellationToken,
}

impl SteppedMesh {
    /// Starts everything; the simulator runs no scenario unless `config` has one.
    pub async fn start(config: SimConfig) -> anyhow::Result<Self> {
        Self::start_with(config, |_| {}).await
    }

    /// [`SteppedMesh::start`] with the aggregator's config changed by `tweak` first.
    pub async fn start_with(
        config: SimConfig,
        tweak: impl FnOnce(&mut AggregatorConfig),
    ) -> anyhow::Result<Self> {
        let clock = Arc::new(ManualClock::new());
        let sim = Simulator::start_with_clock(config, clock.clone()).await?;
        let stop = CancellationToken::new();
        let mut agg_config = AggregatorConfig {
            relay_listen: "127.0.0.1:0".into(),
            http_listen: "127.0.0.1:0".into(),
            // Security is covered by relay_security.rs; these tests are about data.
            insecure: true,
            ..AggregatorConfig::default()
        };
        tweak(&mut agg_config);
        let aggregator = Aggregator::start(&agg_config, stop.clone()).await?;
        let http = reqwest::Client::new();
        let mut clusters: BTreeMap<String, usize> = BTreeMap::new();
        let mut relays = Vec::new();
        let mut scrapers = Vec::new();
        for t in sim.targets() {
            let next = clusters.len();
            let idx = *clusters.entry(t.cluster.clone()).or_insert_with(|| {
                let token = CancellationToken::new();
                let options = RelayClientOptions {
                    endpoints: vec![format!("http://{}", aggregator.relay_addr)],
                    cluster: t.cluster.clone(),
                    collector_id: format!("{}-test", t.cluster),
                    ..RelayClientOptions::default()
                };
                let (client, handle) = RelayClient::spawn(options, token.clone());
                relays.push((client, token, handle));
                next
            });
            let labels = BTreeMap::from([
                ("namespace".to_owned(), t.namespace.clone()),
                ("pod".to_owned(), t.pod.clone()),
                ("instance".to_owned(), t.address.clone()),
                ("job".to_owned(), "envoy-stats".to_owned()),
            ]);
            let target = Target {
                url: t.url.clone(),
                labels,
            };
            scrapers.push((
                idx,
                Scraper::new(http.clone(), target, ScrapeConfig::default(), &t.cluster),
            ));
        }
        Ok(Self {
            sim,
            clock,
            aggregator,
            scrapers,
            relays,
            stop,
        })
    }

    /// Unix milliseconds of simulated time `at_ms`.
    pub fn unix_ms(&self, at_ms: u64) -> i64 {
        ManualClock::DEFAULT_BASE_UNIX_MS + at_ms as i64
    }

    /// Sets simulated time to `at_ms` and scrapes every pod once, forwarding over the relay.
    pub async fn scrape_at(&mut self, at_ms: u64) -> anyhow::Result<()> {
        self.clock.set_ms(at_ms);
        let ts = self.unix_ms(at_ms);
        for (idx, scraper) in &mut self.scrapers {
            let out = scraper.scrape(ts).await;
            if let Some(e) = out.error {
                anyhow::bail!("scrape of {} failed: {e}", scraper.target().url);
            }
            if self.relays[*idx].0.send(out.samples).await.is_err() {
                anyhow::bail!("relay client stopped");
            }
        }
        Ok(())
    }

    /// Scrapes at every `step_ms` from `from_ms` through `to_ms`, then waits for the relay to drain.
    pub async fn run_until(&mut self, from_ms: u64, to_ms: u64, step_ms: u64) -> anyhow::Result<()> {
        let mut t = from_ms;
        while t <= to_ms {
            self.scrape_at(t).await?;
            t += step_ms;
        }
        self.flush().await
    }

    /// Waits until the aggregator acknowledged everything sent so far.
    pub async fn flush(&self) -> anyhow::Result<()> {
        for _ in 0..500 {
            if self.relays.iter().all(|(c, _, _)| c.pending() == 0) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        anyhow::bail!("relay did not drain within 5 s")
    }

    /// Evaluates an instant query on the aggregator's engine at simulated time `at_ms`.
    pub fn query(&self, q: &str, at_ms: u64) -> anyhow::Result<Vec<(Labels, f64)>> {
        match self.aggregator.engine.query_instant(q, self.unix_ms(at_ms))? {
            Value::Vector { samples, .. } => Ok(samples),
            other => anyhow::bail!("expected a vector from {q}, got {}", other.type_name()),
        }
    }

    /// Stops relays (drained), aggregator and simulator.
    pub async fn shutdown(self) {
        for (_, token, handle) in self.relays {
            token.cancel();
            let _ = handle.await;
        }
        self.stop.cancel();
        self.aggregator.join().await;
        self.sim.shutdown().await;
    }
}

/// A simulator config for stepped tests: no control API, no scenario, and traffic five times faster
/// so the integer rounding of counters is negligible against a 1% tolerance.
pub fn stepped_config() -> SimConfig {
    SimConfig {
        control_listen: None,
        scenario: Some(Vec::new()),
        rate_scale: 5.0,
        ..SimConfig::default()
    }
}

/// GETs `path` from the aggregator's HTTP API and returns the parsed JSON.
pub async fn get_json(
    addr: std::net::SocketAddr,
    path: &str,
    params: &[(&str, &str)],
) -> anyhow::Result<serde_json::Value> {
    let url = reqwest::Url::parse_with_params(&format!("http://{addr}{path}"), params)?;
    let body = reqwest::get(url).await?.text().await?;
    Ok(serde_json::from_str(&body)?)
}

/// `(labels as a map, value)` pairs of a Prometheus API vector response.
pub fn vector_of(resp: &serde_json::Value) -> anyhow::Result<Vec<(BTreeMap<String, String>, f64)>> {
    anyhow::ensure!(resp["status"] == "success", "query failed: {resp}");
    let result = resp["data"]["result"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("no result in {resp}"))?;
    result
        .iter()
        .map(|r| {
            let metric = r["metric"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            let v = r["value"][1]
                .as_str()
                .ok_or_else(|| anyhow::anyhow!("value is not a string: {r}"))?;
            Ok((metric, v.parse::<f64>()?))
        })
        .collect()
}

/// The program a real-peer test needs: `$env_var` if set, else `default` from `PATH`.
///
/// # Panics
/// When the program cannot be run: a test that needs a peer must not pass without it.
pub fn peer_program(env_var: &str, default: &str) -> String {
    let program = std::env::var(env_var).unwrap_or_else(|_| default.to_owned());
    let runs = std::process::Command::new(&program)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        runs,
        "{program} is not available (set {env_var}); scripts/test installs it"
    );
    program
}

/// The value of the first sample of `name` with `reason="<reason>"` in a `/metrics` body (0 when
/// absent).
pub fn counter_with_reason(metrics: &str, name: &str, reason: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(name) && l.contains(&format!("reason=\"{reason}\"")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}
