//! Metric families' metadata (`# HELP`, `# TYPE`, `# UNIT`) read from a scrape body, for the
//! aggregator's `/api/v1/metadata`.
//!
//! Cheap on the hot path: each scrape makes one pass over the body's comment lines and hashes the
//! metadata ones; entries are built only when that hash differs from the last successful scrape's
//! (the first scrape, or the target changed its metadata). The relay client keeps the latest entry
//! per family and sends only the ones that changed.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use meshfed_model::exposition::{Format, MetricType, unescape_help};
use meshfed_relay::proto::MetricMetadata;

/// Remembers what a target's metadata looked like last time.
#[derive(Default)]
pub(super) struct MetadataTracker {
    last: Option<u64>,
}

impl MetadataTracker {
    /// The body's metadata when its `# HELP`/`# TYPE`/`# UNIT` lines differ from the last body's
    /// given here, else `None`. Call only for scrapes that parsed.
    pub fn changed(&mut self, body: &str, format: Format) -> Option<Vec<MetricMetadata>> {
        let mut h = DefaultHasher::new();
        for line in metadata_lines(body) {
            line.hash(&mut h);
        }
        let hash = h.finish();
        if self.last == Some(hash) {
            return None;
        }
        self.last = Some(hash);
        Some(extract(body, format))
    }
}

/// The comment lines that carry metadata.
fn metadata_lines(body: &str) -> impl Iterator<Item = &str> {
    body.split('\n')
        .filter(|l| l.starts_with("# HELP ") || l.starts_with("# TYPE ") || l.starts_with("# UNIT "))
}

/// Every family's metadata in `body`, one entry per family named by a `# HELP`, `# TYPE` or
/// `# UNIT` line, in name order. A family with no (valid) `# TYPE` is `unknown`, as in Prometheus.
pub(super) fn extract(body: &str, format: Format) -> Vec<MetricMetadata> {
    let mut families: BTreeMap<&str, MetricMetadata> = BTreeMap::new();
    for line in metadata_lines(body) {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let (keyword, rest) = (&line[2..6], &line[7..]);
        let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
        if name.is_empty() {
            continue;
        }
        let entry = families.entry(name).or_insert_with(|| MetricMetadata {
            metric: name.to_owned(),
            r#type: "unknown".to_owned(),
            help: String::new(),
            unit: String::new(),
        });
        match keyword {
            "HELP" => entry.help = unescape_help(text, format),
            "TYPE" => {
                if let Some(t) = MetricType::from_type_word(text.trim(), format) {
                    entry.r#type = api_type(t).to_owned();
                }
            }
            _ => entry.unit = text.trim().to_owned(),
        }
    }
    families.into_values().collect()
}

/// The type as Prometheus' metadata API spells it (`untyped` is `unknown`).
fn api_type(t: MetricType) -> &'static str {
    match t {
        MetricType::Counter => "counter",
        MetricType::Gauge => "gauge",
        MetricType::Histogram => "histogram",
        MetricType::GaugeHistogram => "gaugehistogram",
        MetricType::Summary => "summary",
        MetricType::Info => "info",
        MetricType::StateSet => "stateset",
        MetricType::Unknown => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(m: &MetricMetadata) -> (&str, &str, &str, &str) {
        (&m.metric, &m.r#type, &m.help, &m.unit)
    }

    #[test]
    fn text_format_families() {
        let body = "# HELP istio_requests_total Total requests.\n# TYPE istio_requests_total counter\n\
                    istio_requests_total{a=\"b\"} 1\n# TYPE up untyped\nup 1\n\
                    # HELP esc A \\\\ backslash\\nand a newline.\n# A plain comment\nesc 2\n";
        let m = extract(body, Format::PrometheusText);
        let got: Vec<_> = m.iter().map(meta).collect();
        assert_eq!(
            got,
            vec![
                ("esc", "unknown", "A \\ backslash\nand a newline.", ""),
                ("istio_requests_total", "counter", "Total requests.", ""),
                ("up", "unknown", "", ""),
            ]
        );
    }

    #[test]
    fn openmetrics_units_and_types() {
        let body = "# TYPE build info\n# HELP build Build \\\"x\\\".\nbuild_info{v=\"1\"} 1\n\
                    # TYPE req_seconds histogram\n# UNIT req_seconds seconds\n# EOF\n";
        let m = extract(body, Format::OpenMetrics);
        let got: Vec<_> = m.iter().map(meta).collect();
        assert_eq!(
            got,
            vec![
                ("build", "info", "Build \"x\".", ""),
                ("req_seconds", "histogram", "", "seconds"),
            ]
        );
    }

    #[test]
    fn only_changes_are_reported() {
        let mut t = MetadataTracker::default();
        let a = "# TYPE x counter\nx 1\n";
        assert_eq!(t.changed(a, Format::PrometheusText).map(|m| m.len()), Some(1));
        assert!(
            t.changed("# TYPE x counter\nx 2\n", Format::PrometheusText)
                .is_none()
        );
        let b = "# TYPE x gauge\nx 1\n";
        let changed = t.changed(b, Format::PrometheusText).unwrap_or_default();
        assert_eq!(changed[0].r#type, "gauge");
    }

    #[test]
    fn odd_lines_do_not_panic() {
        for body in [
            "# HELP \n",
            "# TYPE  counter\n",
            "# UNIT x\n",
            "# HELP x \\",
            "# TYPE x bogus\n",
        ] {
            let _ = extract(body, Format::OpenMetrics);
            let _ = extract(body, Format::PrometheusText);
        }
    }
}
