//! Rendering families as Prometheus text 0.0.4 or OpenMetrics 1.0.0.
//!
//! Values are written so they parse back to the same bits (shortest round-trip form); timestamps
//! are integer milliseconds in 0.0.4 and exact decimal seconds in OpenMetrics.

use std::fmt::Write as _;

use super::{Exemplar, ExpositionSample, Format, MetricFamily, MetricType};
use crate::labels::{Labels, METRIC_NAME};

/// Renders `families` in `format`. OpenMetrics output ends with `# EOF`; 0.0.4 output drops units
/// and exemplars, which that format cannot carry.
pub fn render(families: &[MetricFamily], format: Format) -> String {
    let mut out = String::with_capacity(families.iter().map(|f| 64 + f.samples.len() * 96).sum());
    for fam in families {
        render_family(&mut out, fam, format);
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

/// The name used on `# HELP`/`# TYPE` lines: OpenMetrics counters drop `_total`, 0.0.4 counters and
/// infos use their samples' name, as `prometheus_client` does.
fn metadata_name(fam: &MetricFamily, format: Format) -> (String, MetricType) {
    let all_named = |suffix: &str| {
        !fam.samples.is_empty()
            && fam.samples.iter().all(|s| {
                let n = s.labels.metric_name().unwrap_or("");
                n.strip_prefix(fam.name.as_str()) == Some(suffix)
            })
    };
    match (fam.metric_type, format) {
        (MetricType::Counter, Format::OpenMetrics) => match fam.name.strip_suffix("_total") {
            Some(base) if all_named("") => (base.to_owned(), MetricType::Counter),
            // A 0.0.4 counter whose samples lack `_total` cannot be an OpenMetrics counter.
            _ if !fam.samples.is_empty() && !fam.samples.iter().all(|s| counter_sample(fam, s)) => {
                (fam.name.clone(), MetricType::Unknown)
            }
            _ => (fam.name.clone(), MetricType::Counter),
        },
        (MetricType::Counter, Format::PrometheusText) if all_named("_total") => {
            (format!("{}_total", fam.name), MetricType::Counter)
        }
        (MetricType::Info, Format::PrometheusText) if all_named("_info") => {
            (format!("{}_info", fam.name), MetricType::Info)
        }
        (t, _) => (fam.name.clone(), t),
    }
}

fn counter_sample(fam: &MetricFamily, s: &ExpositionSample) -> bool {
    let n = s.labels.metric_name().unwrap_or("");
    matches!(n.strip_prefix(fam.name.as_str()), Some("_total" | "_created"))
}

fn render_family(out: &mut String, fam: &MetricFamily, format: Format) {
    let (name, typ) = metadata_name(fam, format);
    if let Some(help) = &fam.help {
        let _ = write!(out, "# HELP {name} ");
        escape_into(out, help, false);
        out.push('\n');
    }
    let _ = writeln!(out, "# TYPE {name} {}", typ.type_word(format));
    if let (Some(unit), Format::OpenMetrics) = (&fam.unit, format) {
        let _ = writeln!(out, "# UNIT {name} {unit}");
    }
    for s in &fam.samples {
        render_sample(out, s, format);
    }
}

fn render_sample(out: &mut String, s: &ExpositionSample, format: Format) {
    out.push_str(s.labels.metric_name().unwrap_or(""));
    render_labels(out, &s.labels);
    out.push(' ');
    out.push_str(&format_value(s.value));
    if let Some(ts) = s.timestamp_ms {
        out.push(' ');
        render_timestamp(out, ts, format);
    }
    if let (Some(ex), Format::OpenMetrics) = (&s.exemplar, format) {
        render_exemplar(out, ex);
    }
    out.push('\n');
}

fn render_exemplar(out: &mut String, ex: &Exemplar) {
    out.push_str(" # ");
    if ex.labels.is_empty() {
        out.push_str("{}");
    } else {
        render_labels(out, &ex.labels);
    }
    out.push(' ');
    out.push_str(&format_value(ex.value));
    if let Some(ts) = ex.timestamp_ms {
        out.push(' ');
        render_timestamp(out, ts, Format::OpenMetrics);
    }
}

/// `{a="b",c="d"}` without `__name__`; nothing when there are no other labels.
fn render_labels(out: &mut String, labels: &Labels) {
    let mut first = true;
    for l in labels.iter().filter(|l| l.name != METRIC_NAME) {
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(&l.name);
        out.push_str("=\"");
        escape_into(out, &l.value, true);
        out.push('"');
    }
    if !first {
        out.push('}');
    }
}

/// Escapes `\` and newline (and `"` in label values).
fn escape_into(out: &mut String, s: &str, quote: bool) {
    if !s.contains(['\\', '\n', '"']) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

fn render_timestamp(out: &mut String, ms: i64, format: Format) {
    if format == Format::PrometheusText {
        let _ = write!(out, "{ms}");
        return;
    }
    let sign = if ms < 0 { "-" } else { "" };
    let abs = ms.unsigned_abs();
    let (secs, frac) = (abs / 1000, abs % 1000);
    if frac == 0 {
        let _ = write!(out, "{sign}{secs}");
    } else {
        let digits = format!("{frac:03}");
        let _ = write!(out, "{sign}{secs}.{}", digits.trim_end_matches('0'));
    }
}

/// Formats a sample value so that it parses back to the same number: integers below 2^53 without a
/// fraction, `NaN`, `+Inf`, `-Inf`, otherwise Rust's shortest round-trip representation.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else if v == 0.0 && v.is_sign_negative() {
        "-0".to_owned()
    } else if v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 {
        format!("{}", v as i64)
    } else {
        format!("{v:?}")
    }
}
