//! The Prometheus text exposition format 0.0.4 and OpenMetrics 1.0.0: parsing, checking and
//! rendering.
//!
//! [`parse`] turns a scrape body into [`MetricFamily`]s; [`check`] reports every problem it can find
//! (for `meshfed check metrics`); [`render`] writes families back out. Both parsers scan bytes and
//! borrow from the body, allocating only the owned [`Labels`] of each sample.
//!
//! The 0.0.4 parser is as lenient as Prometheus 2.42 (interleaved families, samples without `TYPE`,
//! free whitespace and trailing commas in label sets, `#` comments). OpenMetrics syntax is always
//! strict; its semantic rules (those of the reference parser `prometheus_client`, which the
//! OpenMetrics parser test suite checks) apply under [`Validation::Strict`], which [`check`] uses,
//! while [`parse`] uses [`Validation::Scrape`] so that real clients' spec slips do not fail a scrape.
//!
//! [`for_each_sample`] is the lower-level streaming form for scrapers that cache series: it checks
//! the same syntax as [`parse`] but hands each sample over as a [`RawSample`] that borrows its
//! series text (`name{labels}` exactly as written) and builds a [`Labels`] only when asked.

use crate::labels::Labels;

mod error;
pub mod fuzzing;
mod lexer;
mod om_rules;
mod openmetrics;
mod render;
mod text;

#[cfg(test)]
mod tests;

pub use error::ParseError;
pub use render::{format_value, render};

/// A HELP text with its escapes replaced: `\\` and `\n` in both formats, `\"` in OpenMetrics;
/// any other escape is kept as written. The parser's own rule, for callers that read comment
/// lines themselves.
pub fn unescape_help(text: &str, format: Format) -> String {
    if !text.contains('\\') {
        return text.to_owned();
    }
    lexer::unescape(text, format == Format::OpenMetrics)
}

/// The Content-Type prefix that selects OpenMetrics.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text";

/// An exposition format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Prometheus text format 0.0.4 (`text/plain; version=0.0.4`).
    PrometheusText,
    /// OpenMetrics 1.0.0 text (`application/openmetrics-text; version=1.0.0`).
    OpenMetrics,
}

impl Format {
    /// Picks the format from a response's Content-Type: `application/openmetrics-text` (any
    /// parameters, any case) is OpenMetrics, anything else is the Prometheus text format.
    pub fn from_content_type(content_type: &str) -> Format {
        let media = content_type.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case(OPENMETRICS_CONTENT_TYPE) {
            Format::OpenMetrics
        } else {
            Format::PrometheusText
        }
    }

    /// The Content-Type to send with a body rendered in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::PrometheusText => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// A metric family's type, as declared by `# TYPE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricType {
    /// A monotonically increasing total (`_total`, `_created`).
    Counter,
    /// A value that can go up and down.
    Gauge,
    /// Cumulative buckets (`_bucket{le}`, `_count`, `_sum`, `_created`).
    Histogram,
    /// Buckets of a current distribution (`_bucket{le}`, `_gcount`, `_gsum`).
    GaugeHistogram,
    /// Quantiles (`{quantile}`), `_count`, `_sum`, `_created`.
    Summary,
    /// Constant key/value information (`_info` with value 1).
    Info,
    /// A set of boolean states, one label named after the family.
    StateSet,
    /// No type, `untyped` (0.0.4) or `unknown` (OpenMetrics).
    Unknown,
}

impl MetricType {
    /// Parses a `# TYPE` word in `format`; `None` for a word the format does not allow.
    pub fn from_type_word(word: &str, format: Format) -> Option<MetricType> {
        Some(match (word, format) {
            ("counter", _) => MetricType::Counter,
            ("gauge", _) => MetricType::Gauge,
            ("histogram", _) => MetricType::Histogram,
            ("summary", _) => MetricType::Summary,
            ("untyped", Format::PrometheusText) => MetricType::Unknown,
            ("unknown", Format::OpenMetrics) => MetricType::Unknown,
            ("gaugehistogram", Format::OpenMetrics) => MetricType::GaugeHistogram,
            ("info", Format::OpenMetrics) => MetricType::Info,
            ("stateset", Format::OpenMetrics) => MetricType::StateSet,
            _ => return None,
        })
    }

    /// The `# TYPE` word for this type in `format` (OpenMetrics-only types map to their nearest 0.0.4
    /// equivalent, as `prometheus_client` does).
    pub fn type_word(self, format: Format) -> &'static str {
        match (self, format) {
            (MetricType::Counter, _) => "counter",
            (MetricType::Gauge, _) => "gauge",
            (MetricType::Histogram, _) => "histogram",
            (MetricType::Summary, _) => "summary",
            (MetricType::GaugeHistogram, Format::OpenMetrics) => "gaugehistogram",
            (MetricType::GaugeHistogram, Format::PrometheusText) => "histogram",
            (MetricType::Info, Format::OpenMetrics) => "info",
            (MetricType::StateSet, Format::OpenMetrics) => "stateset",
            (MetricType::Info | MetricType::StateSet, Format::PrometheusText) => "gauge",
            (MetricType::Unknown, Format::OpenMetrics) => "unknown",
            (MetricType::Unknown, Format::PrometheusText) => "untyped",
        }
    }

    /// The sample-name suffixes a family of this type may use in `format` (`""` is the bare name).
    pub fn suffixes(self, format: Format) -> &'static [&'static str] {
        match (self, format) {
            (MetricType::Counter, Format::OpenMetrics) => &["_total", "_created"],
            (MetricType::Summary, Format::OpenMetrics) => &["", "_count", "_sum", "_created"],
            (MetricType::Histogram, Format::OpenMetrics) => &["_count", "_sum", "_bucket", "_created"],
            (MetricType::GaugeHistogram, _) => &["_gcount", "_gsum", "_bucket"],
            (MetricType::Info, Format::OpenMetrics) => &["_info"],
            (MetricType::Summary, Format::PrometheusText) => &["", "_count", "_sum"],
            (MetricType::Histogram, Format::PrometheusText) => &["", "_count", "_sum", "_bucket"],
            // `foo_total` after `# TYPE foo counter` (OpenMetrics naming in a 0.0.4 body).
            (MetricType::Counter, Format::PrometheusText) => &["", "_total"],
            _ => &[""],
        }
    }
}

/// One metric family: its metadata and its samples, in exposition order.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricFamily {
    /// The family name (`# TYPE` name; for an OpenMetrics counter, without `_total`).
    pub name: String,
    /// `# HELP` text, unescaped.
    pub help: Option<String>,
    /// `# UNIT` (OpenMetrics only).
    pub unit: Option<String>,
    /// The declared type; [`MetricType::Unknown`] when there was no `# TYPE`.
    pub metric_type: MetricType,
    /// The samples, each carrying its full name (`foo_bucket`) in `__name__`.
    pub samples: Vec<ExpositionSample>,
}

impl MetricFamily {
    /// An empty family with no metadata but its type.
    pub fn new(name: impl Into<String>, metric_type: MetricType) -> Self {
        Self {
            name: name.into(),
            help: None,
            unit: None,
            metric_type,
            samples: Vec::new(),
        }
    }
}

/// One exposed sample.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpositionSample {
    /// The labels, including `__name__` (the sample's full name, e.g. `foo_bucket`). Labels with an
    /// empty value are absent, as in Prometheus.
    pub labels: Labels,
    /// The value.
    pub value: f64,
    /// The exposed timestamp in milliseconds since the epoch, if any.
    pub timestamp_ms: Option<i64>,
    /// The exemplar (OpenMetrics only).
    pub exemplar: Option<Exemplar>,
}

/// An OpenMetrics exemplar: a trace reference attached to a counter or bucket sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Exemplar {
    /// The exemplar's labels (no `__name__`), e.g. `trace_id`.
    pub labels: Labels,
    /// The exemplar's value.
    pub value: f64,
    /// The exemplar's timestamp in milliseconds, if any.
    pub timestamp_ms: Option<i64>,
}

/// How much of the OpenMetrics rule set to enforce. The 0.0.4 format is always read as Prometheus
/// reads it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Validation {
    /// What a scraper needs: the full syntax (single spaces, quoting, numbers, valid `TYPE` words,
    /// `# EOF`, nothing after it), but none of the semantic rules. Real clients break some of them
    /// (client_golang exposes histograms with negative buckets and a negative `_sum`), and Prometheus
    /// ingests such scrapes, so a collector must too.
    #[default]
    Scrape,
    /// Everything the OpenMetrics reference parser checks: also counter-like values, `le`/`quantile`
    /// labels, histogram bucket consistency, grouping and timestamp order, clashing names, units,
    /// repeated or misplaced metadata, and where exemplars may appear. For linting (`check`).
    Strict,
}

/// Parses a whole exposition body with [`Validation::Scrape`], stopping at the first error.
pub fn parse(body: &str, format: Format) -> Result<Vec<MetricFamily>, ParseError> {
    parse_with(body, format, Validation::Scrape)
}

/// Parses a whole exposition body, stopping at the first error.
pub fn parse_with(
    body: &str,
    format: Format,
    validation: Validation,
) -> Result<Vec<MetricFamily>, ParseError> {
    let mut errors = Vec::new();
    let families = parse_inner(body, format, validation, &mut errors, true);
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(families),
    }
}

/// Checks a body with [`Validation::Strict`] and returns every problem found (empty when it is
/// valid), in input order, like `promtool check metrics`. After a bad line the parser carries on
/// with the next one.
pub fn check(body: &str, format: Format) -> Vec<ParseError> {
    check_with(body, format, Validation::Strict)
}

/// [`check`] at a chosen validation level.
pub fn check_with(body: &str, format: Format, validation: Validation) -> Vec<ParseError> {
    let mut errors = Vec::new();
    parse_inner(body, format, validation, &mut errors, false);
    errors.sort_by_key(|e| (e.line, e.column));
    errors
}

/// Streams the samples of `body` to `f`, in order, without building label sets: the steady-state
/// path of a scraper that caches series by their text. Checks the same syntax as [`parse`]
/// ([`Validation::Scrape`]) and stops at the first error, after the samples before it were passed
/// to `f` (a scraper discards the scrape). Two things differ from [`parse`]: a sample label set that
/// repeats a name is reported by [`RawSample::labels`] rather than here, and exemplars are checked
/// but not returned. Allocates per family, not per sample.
pub fn for_each_sample<'a>(
    body: &'a str,
    format: Format,
    mut f: impl FnMut(RawSample<'a>),
) -> Result<(), ParseError> {
    match format {
        Format::PrometheusText => text::for_each(body, &mut f),
        Format::OpenMetrics => openmetrics::for_each(body, &mut f),
    }
}

/// One sample as [`for_each_sample`] streams it, borrowing from the body.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RawSample<'a> {
    /// The series exactly as written, `name` or `name{labels}` (from the name through `}`): equal
    /// texts mean equal label sets, so this is the key for a per-target series cache. The same
    /// series written differently (other label order or spacing) has another text.
    pub series_text: &'a str,
    /// The sample's name (`foo_bucket`).
    pub name: &'a str,
    /// The value.
    pub value: f64,
    /// The exposed timestamp in milliseconds since the epoch, if any.
    pub timestamp_ms: Option<i64>,
    /// The type of the family the sample belongs to, grouped as [`parse`] groups it.
    pub metric_type: MetricType,
    /// 1-based line number of the sample.
    pub line: usize,
    line_start: usize,
    format: Format,
}

impl RawSample<'_> {
    /// Builds the sample's label set (with `__name__`, without empty values), exactly as [`parse`]
    /// would: the slow path, for a series not yet cached. Fails when a label name is repeated.
    pub fn labels(&self) -> Result<Labels, ParseError> {
        let mut raw = Vec::new();
        let scanned = match self.format {
            Format::PrometheusText => text::series_labels(self.series_text, &mut raw),
            Format::OpenMetrics => openmetrics::series_labels(self.series_text, &mut raw),
        };
        let error = |pos: usize, reason: std::borrow::Cow<'static, str>| {
            // Positions are relative to the series text; report them on the sample's line.
            ParseError::at(self.series_text, self.line, 0, pos, reason)
        };
        scanned.map_err(|f| error(f.pos, f.reason))?;
        lexer::build_labels(Some(self.name), &mut raw).map_err(|r| error(0, r.into()))
    }

    /// Byte offset of the sample's line in the body.
    pub fn line_offset(&self) -> usize {
        self.line_start
    }
}

fn parse_inner(
    body: &str,
    format: Format,
    validation: Validation,
    errors: &mut Vec<ParseError>,
    fail_fast: bool,
) -> Vec<MetricFamily> {
    match format {
        Format::PrometheusText => text::parse(body, errors, fail_fast),
        Format::OpenMetrics => openmetrics::parse(body, validation == Validation::Strict, errors, fail_fast),
    }
}
