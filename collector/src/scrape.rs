//! One target's scrape: fetch the exposition over HTTP (streamed, size-limited, gzip decoded),
//! stream its samples through a per-target series cache, and work out staleness and the synthetic
//! series Prometheus adds (`up`, `scrape_duration_seconds`, `scrape_samples_scraped`,
//! `scrape_series_added`).
//!
//! The cache ([`series`]) maps each series' text as exposed (`name{labels}`) to its final label set
//! — target labels attached, `metric_relabel_configs` applied, limits checked — so a steady-state
//! scrape neither builds label sets nor runs relabelling: per sample it does one hash lookup of
//! the text and clones an `Arc`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use meshfed_model::exposition::{self, Format};
use meshfed_model::{LabelsBuilder, METRIC_NAME, stale_nan};
use meshfed_relay::encode::{OutgoingSample, SeriesLabels};

use crate::config::ScrapeConfig;
use crate::discovery::Target;
use crate::reduce::Reducer;
use crate::relabel::RelabelRule;

mod http;
mod metadata;
mod series;
#[cfg(test)]
mod tests;
mod texts;

pub use http::ScrapeClient;
use metadata::MetadataTracker;
use series::SeriesCache;

/// The `Accept` header Prometheus 2.42 sends: OpenMetrics first, then the text format.
pub const ACCEPT_HEADER: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Why a scrape failed.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// Connecting or reading failed.
    #[error("request failed: {0}")]
    Http(String),
    /// The scrape took longer than the timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The target answered with a non-2xx status.
    #[error("server returned HTTP status {0}")]
    Status(u16),
    /// The (decompressed) body exceeded `max_body_bytes`.
    #[error("body_size_limit exceeded: the body is larger than {0} bytes")]
    BodyTooLarge(usize),
    /// The body is not valid UTF-8.
    #[error("body is not valid UTF-8 at byte {0}")]
    NotUtf8(usize),
    /// The exposition is malformed.
    #[error("line {0}")]
    Parse(exposition::ParseError),
    /// More samples than `sample_limit`.
    #[error("sample_limit exceeded: more than {0} samples")]
    SampleLimit(usize),
    /// A series with more labels than `label_limit`.
    #[error("label_limit exceeded (metric: {metric:.50}, number of labels: {count}, limit: {limit})")]
    LabelLimit {
        /// The metric name.
        metric: String,
        /// Its label count.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A label name longer than `label_name_length_limit`.
    #[error(
        "label_name_length_limit exceeded (metric: {metric:.50}, label name: {name:.50}, length: {length}, limit: {limit})"
    )]
    LabelNameLength {
        /// The metric name.
        metric: String,
        /// The label name.
        name: String,
        /// Its length in bytes.
        length: usize,
        /// The limit.
        limit: usize,
    },
    /// A label value longer than `label_value_length_limit`.
    #[error(
        "label_value_length_limit exceeded (metric: {metric:.50}, label name: {name:.50}, length: {length}, limit: {limit})"
    )]
    LabelValueLength {
        /// The metric name.
        metric: String,
        /// The label name.
        name: String,
        /// The value's length in bytes.
        length: usize,
        /// The limit.
        limit: usize,
    },
    /// `metric_relabel_configs` does not compile (the config was not validated).
    #[error("{0}")]
    RelabelConfig(String),
}

impl ScrapeError {
    /// A bounded reason for `meshfed_collector_scrape_errors_total{reason}`.
    pub fn reason(&self) -> &'static str {
        match self {
            ScrapeError::Http(_) => "http",
            ScrapeError::Timeout(_) => "timeout",
            ScrapeError::Status(_) => "status",
            ScrapeError::BodyTooLarge(_) => "body_size_limit",
            ScrapeError::NotUtf8(_) => "not_utf8",
            ScrapeError::Parse(_) => "parse",
            ScrapeError::SampleLimit(_) => "sample_limit",
            ScrapeError::LabelLimit { .. } => "label_limit",
            ScrapeError::LabelNameLength { .. } => "label_name_length_limit",
            ScrapeError::LabelValueLength { .. } => "label_value_length_limit",
            ScrapeError::RelabelConfig(_) => "relabel_config",
        }
    }

    /// The body line a parse error points at.
    pub fn line(&self) -> Option<usize> {
        match self {
            ScrapeError::Parse(e) => Some(e.line),
            _ => None,
        }
    }
}

/// What one scrape produced.
#[derive(Debug)]
pub struct ScrapeOutput {
    /// Scraped samples, staleness markers and synthetic series, ready for the relay. With edge
    /// reduction, the reduced samples went to the [`Reducer`] instead.
    pub samples: Vec<OutgoingSample>,
    /// Samples the target exposed (0 when the scrape failed).
    pub scraped: usize,
    /// The failure, if any.
    pub error: Option<ScrapeError>,
    /// Wall time the scrape took.
    pub duration: Duration,
    /// The families' `# HELP`/`# TYPE`/`# UNIT` metadata, when it differs from the last successful
    /// scrape's (for [`meshfed_relay::client::RelayClient::publish_metadata`]).
    pub metadata: Option<Vec<meshfed_relay::proto::MetricMetadata>>,
}

/// Scrape state for one target, kept between scrapes.
pub struct Scraper {
    client: ScrapeClient,
    target: Target,
    config: ScrapeConfig,
    cache: SeriesCache,
    synthetic: [SeriesLabels; 4],
    metadata: MetadataTracker,
}

/// Body buffers shared by all scrapers of the process: only scrapes in flight need one, so
/// hundreds of targets share a few buffers instead of each keeping its largest body.
static BODY_POOL: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());
/// Buffers kept in the pool; more concurrent scrapes allocate their own.
const POOL_BUFFERS: usize = 8;
/// Buffers larger than this are freed rather than pooled.
const POOL_MAX_BYTES: usize = 32 << 20;

fn take_buffer() -> Vec<u8> {
    let mut pool = BODY_POOL.lock().unwrap_or_else(|p| p.into_inner());
    pool.pop().unwrap_or_default()
}

fn return_buffer(mut body: Vec<u8>) {
    if body.capacity() > POOL_MAX_BYTES {
        return;
    }
    body.clear();
    let mut pool = BODY_POOL.lock().unwrap_or_else(|p| p.into_inner());
    if pool.len() < POOL_BUFFERS {
        pool.push(body);
    }
}

impl Scraper {
    /// State for `target`; `cluster` is stamped on every series. `client` is a [`ScrapeClient`] or
    /// a `reqwest::Client` (then every scrape goes through it).
    pub fn new(client: impl Into<ScrapeClient>, target: Target, config: ScrapeConfig, cluster: &str) -> Self {
        let client = client.into();
        let mut target_labels: Vec<(String, String)> = target
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        target_labels.retain(|(k, _)| k != "cluster");
        target_labels.push(("cluster".into(), cluster.to_owned()));
        let synth = |name: &str| {
            let mut b = LabelsBuilder::with_capacity(target_labels.len() + 1);
            for (k, v) in &target_labels {
                b.set(k.as_str(), v.as_str());
            }
            b.set(METRIC_NAME, name);
            SeriesLabels::new(&b.build())
        };
        let synthetic = [
            synth("up"),
            synth("scrape_duration_seconds"),
            synth("scrape_samples_scraped"),
            synth("scrape_series_added"),
        ];
        let rules = RelabelRule::compile(&config.metric_relabel_configs);
        let cache = SeriesCache::new(target_labels, rules, &config);
        Self {
            client,
            target,
            config,
            cache,
            synthetic,
            metadata: MetadataTracker::default(),
        }
    }

    /// Sends counter-like series to `reducer` instead of forwarding them (edge reduction).
    pub fn with_reducer(mut self, reducer: Arc<Reducer>) -> Self {
        self.cache.set_reducer(reducer);
        self
    }

    /// The target being scraped.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Series currently cached (memory accounting and tests).
    pub fn cached_series(&self) -> usize {
        self.cache.len()
    }

    /// Scrapes once with `timestamp_ms` as the sample time.
    pub async fn scrape(&mut self, timestamp_ms: i64) -> ScrapeOutput {
        let started = Instant::now();
        let timeout = Duration::from_millis(self.config.timeout_ms);
        let mut body = take_buffer();
        let fetched = match tokio::time::timeout(timeout, self.fetch(&mut body)).await {
            Ok(r) => r,
            Err(_) => Err(ScrapeError::Timeout(timeout)),
        };
        let out = match fetched {
            Ok(format) => self.process(&body, format, timestamp_ms, started),
            Err(e) => self.finish(Err(e), Vec::new(), timestamp_ms, started),
        };
        return_buffer(body);
        out
    }

    /// The part of a scrape after the fetch: parses `body`, applies the cache, limits, staleness
    /// and synthetic series. Public so benchmarks can measure it without a socket.
    pub fn process(
        &mut self,
        body: &[u8],
        format: Format,
        timestamp_ms: i64,
        started: Instant,
    ) -> ScrapeOutput {
        let mut samples = Vec::with_capacity(self.cache.last_len() + 8);
        let mut metadata = None;
        let result = match std::str::from_utf8(body) {
            Ok(text) => {
                let ingested = self.cache.ingest(text, format, timestamp_ms, &mut samples);
                if ingested.is_ok() {
                    metadata = self.metadata.changed(text, format);
                }
                ingested
            }
            Err(e) => Err(ScrapeError::NotUtf8(e.valid_up_to())),
        };
        let mut out = self.finish(result, samples, timestamp_ms, started);
        out.metadata = metadata;
        out
    }

    fn finish(
        &mut self,
        result: Result<series::Ingested, ScrapeError>,
        mut samples: Vec<OutgoingSample>,
        timestamp_ms: i64,
        started: Instant,
    ) -> ScrapeOutput {
        let (scraped, added, error) = match result {
            Ok(i) => (i.scraped, i.added, None),
            Err(e) => {
                samples.clear();
                (0, 0, Some(e))
            }
        };
        // Series gone since the last successful scrape (all of them when this one failed).
        self.cache.end_scrape(error.is_none(), timestamp_ms, &mut samples);
        let duration = started.elapsed();
        let up = if error.is_none() { 1.0 } else { 0.0 };
        let synth = [up, duration.as_secs_f64(), scraped as f64, added as f64];
        for (labels, value) in self.synthetic.iter().zip(synth) {
            samples.push(OutgoingSample {
                labels: labels.clone(),
                timestamp_ms,
                value,
            });
        }
        ScrapeOutput {
            samples,
            scraped,
            error,
            duration,
            metadata: None,
        }
    }

    /// Staleness markers for every series of the last scrape, for a target that went away.
    pub fn end_of_run_staleness(&mut self, timestamp_ms: i64) -> Vec<OutgoingSample> {
        let mut out = Vec::new();
        self.cache.end_of_run(timestamp_ms, &mut out);
        out
    }

    /// Streams the body into `body`, stopping as soon as it passes `max_body_bytes` (counted after
    /// gzip decoding, so a compressed bomb is cut off too).
    async fn fetch(&self, body: &mut Vec<u8>) -> Result<Format, ScrapeError> {
        self.client
            .fetch(
                &self.target.url,
                self.config.timeout_ms,
                self.config.max_body_bytes,
                body,
            )
            .await
    }
}

impl Drop for Scraper {
    fn drop(&mut self) {
        self.cache.release_reducer();
    }
}

/// Stamps `stale_nan()` samples for `labels` (helper for the cache).
fn stale(labels: &SeriesLabels, timestamp_ms: i64) -> OutgoingSample {
    OutgoingSample {
        labels: labels.clone(),
        timestamp_ms,
        value: stale_nan(),
    }
}
