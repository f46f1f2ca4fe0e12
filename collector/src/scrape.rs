//! One target's scrape: fetch the exposition over HTTP, parse it, attach target labels, and work
//! out staleness and the synthetic series Prometheus adds (`up`, `scrape_duration_seconds`,
//! `scrape_samples_scraped`, `scrape_series_added`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use meshfed_model::exposition::{self, Format};
use meshfed_model::{Labels, LabelsBuilder, METRIC_NAME, stale_nan};
use meshfed_relay::encode::OutgoingSample;

use crate::config::ScrapeConfig;
use crate::discovery::Target;

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
    /// The body exceeded `max_body_bytes`.
    #[error("body exceeds the limit of {0} bytes")]
    BodyTooLarge(usize),
    /// The body is not valid UTF-8.
    #[error("body is not valid UTF-8 at byte {0}")]
    NotUtf8(usize),
    /// The exposition is malformed.
    #[error("{0}")]
    Parse(exposition::ParseError),
    /// More samples than `sample_limit`.
    #[error("sample limit of {0} exceeded")]
    SampleLimit(usize),
}

impl ScrapeError {
    /// A bounded reason for `meshfed_collector_scrape_errors_total{reason}`.
    pub fn reason(&self) -> &'static str {
        match self {
            ScrapeError::Http(_) => "http",
            ScrapeError::Timeout(_) => "timeout",
            ScrapeError::Status(_) => "status",
            ScrapeError::BodyTooLarge(_) => "body_too_large",
            ScrapeError::NotUtf8(_) => "not_utf8",
            ScrapeError::Parse(_) => "parse",
            ScrapeError::SampleLimit(_) => "sample_limit",
        }
    }
}

/// What one scrape produced.
#[derive(Debug)]
pub struct ScrapeOutput {
    /// Scraped samples, staleness markers and synthetic series, ready for the relay.
    pub samples: Vec<OutgoingSample>,
    /// Samples the target exposed (0 when the scrape failed).
    pub scraped: usize,
    /// The failure, if any.
    pub error: Option<ScrapeError>,
    /// Wall time the scrape took.
    pub duration: Duration,
}

/// Scrape state for one target, kept between scrapes.
pub struct Scraper {
    client: reqwest::Client,
    target: Target,
    config: ScrapeConfig,
    /// Target labels plus `cluster`, applied to every series.
    target_labels: Vec<(String, String)>,
    /// Exposed label set → final label set, so unchanged series are not rebuilt each scrape.
    cache: HashMap<Labels, Arc<Labels>>,
    /// Series of the previous successful scrape, for staleness.
    previous: HashSet<Arc<Labels>>,
    synthetic: [Arc<Labels>; 4],
}

impl Scraper {
    /// State for `target`; `cluster` is stamped on every series.
    pub fn new(client: reqwest::Client, target: Target, config: ScrapeConfig, cluster: &str) -> Self {
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
            Arc::new(b.build())
        };
        let synthetic = [
            synth("up"),
            synth("scrape_duration_seconds"),
            synth("scrape_samples_scraped"),
            synth("scrape_series_added"),
        ];
        Self {
            client,
            target,
            config,
            target_labels,
            cache: HashMap::new(),
            previous: HashSet::new(),
            synthetic,
        }
    }

    /// The target being scraped.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Scrapes once with `timestamp_ms` as the sample time.
    pub async fn scrape(&mut self, timestamp_ms: i64) -> ScrapeOutput {
        let started = Instant::now();
        let timeout = Duration::from_millis(self.config.timeout_ms);
        let fetched = match tokio::time::timeout(timeout, self.fetch()).await {
            Ok(r) => r,
            Err(_) => Err(ScrapeError::Timeout(timeout)),
        };
        let mut samples = Vec::new();
        let mut current = HashSet::with_capacity(self.previous.len());
        let mut added = 0usize;
        let result = fetched.and_then(|(body, format)| {
            self.convert(
                &body,
                format,
                timestamp_ms,
                &mut samples,
                &mut current,
                &mut added,
            )
        });
        let duration = started.elapsed();
        let (scraped, error) = match result {
            Ok(n) => (n, None),
            Err(e) => {
                samples.clear();
                current.clear();
                added = 0;
                (0, Some(e))
            }
        };
        // Series gone since the last successful scrape (all of them when this one failed).
        for gone in self.previous.difference(&current) {
            samples.push(OutgoingSample {
                labels: Arc::clone(gone),
                timestamp_ms,
                value: stale_nan(),
            });
        }
        self.cache.retain(|_, v| current.contains(v));
        self.previous = current;
        let up = if error.is_none() { 1.0 } else { 0.0 };
        let synth = [up, duration.as_secs_f64(), scraped as f64, added as f64];
        for (labels, value) in self.synthetic.iter().zip(synth) {
            samples.push(OutgoingSample {
                labels: Arc::clone(labels),
                timestamp_ms,
                value,
            });
        }
        ScrapeOutput {
            samples,
            scraped,
            error,
            duration,
        }
    }

    /// Staleness markers for every series of the last scrape, for a target that went away.
    pub fn end_of_run_staleness(&mut self, timestamp_ms: i64) -> Vec<OutgoingSample> {
        self.cache.clear();
        std::mem::take(&mut self.previous)
            .into_iter()
            .map(|labels| OutgoingSample {
                labels,
                timestamp_ms,
                value: stale_nan(),
            })
            .collect()
    }

    async fn fetch(&self) -> Result<(String, Format), ScrapeError> {
        let mut resp = self
            .client
            .get(&self.target.url)
            .header(reqwest::header::ACCEPT, ACCEPT_HEADER)
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                format!("{}", self.config.timeout_ms as f64 / 1000.0),
            )
            .send()
            .await
            .map_err(|e| ScrapeError::Http(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(ScrapeError::Status(resp.status().as_u16()));
        }
        let limit = self.config.max_body_bytes;
        if resp.content_length().is_some_and(|n| n as usize > limit) {
            return Err(ScrapeError::BodyTooLarge(limit));
        }
        let format = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map_or(Format::PrometheusText, Format::from_content_type);
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| ScrapeError::Http(e.to_string()))? {
            if body.len() + chunk.len() > limit {
                return Err(ScrapeError::BodyTooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        let body = String::from_utf8(body).map_err(|e| ScrapeError::NotUtf8(e.utf8_error().valid_up_to()))?;
        Ok((body, format))
    }

    /// Parses `body` and appends its samples with target labels; returns how many it exposed.
    fn convert(
        &mut self,
        body: &str,
        format: Format,
        timestamp_ms: i64,
        out: &mut Vec<OutgoingSample>,
        current: &mut HashSet<Arc<Labels>>,
        added: &mut usize,
    ) -> Result<usize, ScrapeError> {
        let families = exposition::parse(body, format).map_err(ScrapeError::Parse)?;
        let total: usize = families.iter().map(|f| f.samples.len()).sum();
        if self.config.sample_limit > 0 && total > self.config.sample_limit {
            return Err(ScrapeError::SampleLimit(self.config.sample_limit));
        }
        out.reserve(total + 4);
        for family in families {
            for s in family.samples {
                let labels = match self.cache.get(&s.labels) {
                    Some(l) => Arc::clone(l),
                    None => {
                        let l = Arc::new(self.with_target_labels(&s.labels));
                        self.cache.insert(s.labels, Arc::clone(&l));
                        l
                    }
                };
                if !self.previous.contains(&labels) {
                    *added += 1;
                }
                current.insert(Arc::clone(&labels));
                out.push(OutgoingSample {
                    labels,
                    timestamp_ms: s.timestamp_ms.unwrap_or(timestamp_ms),
                    value: s.value,
                });
            }
        }
        Ok(total)
    }

    /// Adds target labels; an exposed label that clashes is kept as `exported_<name>`, as
    /// Prometheus does with `honor_labels: false`.
    fn with_target_labels(&self, exposed: &Labels) -> Labels {
        let mut b = exposed.to_builder();
        for (k, v) in &self.target_labels {
            if let Some(old) = exposed.get(k).filter(|old| *old != v) {
                b.set(format!("exported_{k}"), old);
            }
            b.set(k.as_str(), v.as_str());
        }
        b.build()
    }
}
