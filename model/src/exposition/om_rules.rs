//! The OpenMetrics semantic rules, as the reference parser (`prometheus_client`) applies them and the
//! OpenMetrics parser test suite checks them: per sample (`le`/`quantile` labels, integer and
//! non-negative counter-like values, grouping, timestamp order, where exemplars may appear) and per
//! family (clashing names, units, histogram bucket consistency).

use std::borrow::Cow;
use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use super::lexer::parse_float;
use super::openmetrics::{Current, LinePos};
use super::{ExpositionSample, Format, MetricFamily, MetricType};
use crate::labels::{Labels, METRIC_NAME};

/// A rule failure: the reason, and whether it points at the value rather than the line start.
pub(super) type SampleRule = Result<(), (Cow<'static, str>, bool)>;

/// The label groups (a family's label set without `le`/`quantile`/the stateset label) seen so far.
#[derive(Default)]
pub(super) struct Group {
    last: Option<u64>,
    seen: HashSet<u64>,
    /// The previous sample's timestamp in seconds.
    ts: Option<f64>,
}

fn bad<T>(reason: impl Into<Cow<'static, str>>) -> Result<T, (Cow<'static, str>, bool)> {
    Err((reason.into(), false))
}

fn bad_value<T>(reason: impl Into<Cow<'static, str>>) -> Result<T, (Cow<'static, str>, bool)> {
    Err((reason.into(), true))
}

fn is_integer(v: f64) -> bool {
    v.is_finite() && v.fract() == 0.0
}

/// A `le` or `quantile` bound: a float, not NaN, infinities spelled `+Inf`/`-Inf` exactly.
fn bound(s: &str) -> Option<f64> {
    parse_float(s).filter(|v| !v.is_nan() && (v.is_finite() || s == "+Inf" || s == "-Inf"))
}

/// Hash of the labels without `__name__` and `skip`: the sample's group.
fn group_hash(labels: &Labels, skip: Option<&str>) -> u64 {
    let mut h = DefaultHasher::new();
    for l in labels
        .iter()
        .filter(|l| l.name != METRIC_NAME && Some(l.name.as_str()) != skip)
    {
        l.hash(&mut h);
    }
    h.finish()
}

/// Checks one sample of `fam` (which it belongs to) and advances the grouping state.
pub(super) fn check_sample(
    fam: &MetricFamily,
    group: &mut Group,
    s: &ExpositionSample,
    ts_secs: Option<f64>,
) -> SampleRule {
    let name = s.labels.metric_name().unwrap_or("");
    let suffix = name.get(fam.name.len()..).unwrap_or("");
    let typ = fam.metric_type;
    let hist = matches!(typ, MetricType::Histogram | MetricType::GaugeHistogram);
    let quantiles = typ == MetricType::Summary && suffix.is_empty();
    let v = s.value;

    if typ == MetricType::StateSet && s.labels.get(&fam.name).is_none() {
        return bad(format!("stateset sample without a {:?} label", fam.name));
    }
    if hist && suffix == "_bucket" {
        if s.labels.get("le").and_then(bound).is_none() {
            return bad("missing or invalid le label");
        }
        if !is_integer(v) {
            return bad_value("bucket value must be an integer");
        }
    }
    if matches!(suffix, "_count" | "_gcount") && !is_integer(v) {
        return bad_value("count value must be an integer");
    }
    if quantiles
        && !s
            .labels
            .get("quantile")
            .and_then(bound)
            .is_some_and(|q| (0.0..=1.0).contains(&q))
    {
        return bad("missing or invalid quantile label (must be between 0 and 1)");
    }

    let g = match typ {
        MetricType::Info => 0,
        MetricType::StateSet => group_hash(&s.labels, Some(&fam.name)),
        _ if quantiles => group_hash(&s.labels, Some("quantile")),
        _ if hist && suffix == "_bucket" => group_hash(&s.labels, Some("le")),
        _ => group_hash(&s.labels, None),
    };
    if group.last.is_some_and(|l| l != g) && group.seen.contains(&g) {
        return bad("invalid grouping: samples of one label set must be together");
    }
    if group.last == Some(g) {
        if ts_secs.is_some() != group.ts.is_some() {
            return bad("mix of samples with and without timestamps in one group");
        }
        if let (Some(prev), Some(t)) = (group.ts, ts_secs)
            && prev > t
            && typ != MetricType::Info
        {
            return bad("timestamps went backwards within a group");
        }
    }
    group.last = Some(g);
    group.ts = ts_secs;
    group.seen.insert(g);

    if typ == MetricType::StateSet && v != 0.0 && v != 1.0 {
        return bad_value("stateset values must be 0 or 1");
    }
    if typ == MetricType::Info && v != 1.0 {
        return bad_value("info values must be 1");
    }
    if quantiles && v < 0.0 {
        return bad_value("quantile values cannot be negative");
    }
    let counter_like = matches!(
        suffix,
        "_total" | "_sum" | "_count" | "_bucket" | "_gcount" | "_gsum"
    );
    if counter_like && v.is_nan() {
        return bad_value("counter-like values cannot be NaN");
    }
    if counter_like && suffix != "_gsum" && v < 0.0 {
        return bad_value("counter-like values cannot be negative");
    }
    let exemplar_ok =
        (hist && name.ends_with("_bucket")) || (typ == MetricType::Counter && name.ends_with("_total"));
    if s.exemplar.is_some() && !exemplar_ok {
        return bad("exemplars are only allowed on histogram buckets and counter totals");
    }
    Ok(())
}

/// Checks a complete family; `seen` collects the sample names of every finished family.
pub(super) fn check_family(
    fam: &MetricFamily,
    cur: &Current,
    seen: &mut HashSet<String>,
) -> Result<(), (String, LinePos)> {
    let suffixes = fam.metric_type.suffixes(Format::OpenMetrics);
    let bare: &[&str] = if suffixes.contains(&"") { &[] } else { &[""] };
    for suffix in suffixes.iter().chain(bare) {
        let full = format!("{}{suffix}", fam.name);
        if !seen.insert(full.clone()) {
            return Err((
                format!("clashing name {full:?}: an earlier family uses it"),
                cur.at,
            ));
        }
    }
    if let Some(unit) = fam.unit.as_deref().filter(|u| !u.is_empty()) {
        if !fam
            .name
            .strip_suffix(unit)
            .is_some_and(|rest| rest.ends_with('_'))
        {
            return Err((
                format!("unit {unit:?} is not the suffix of the name {:?}", fam.name),
                cur.at,
            ));
        }
        if matches!(fam.metric_type, MetricType::Info | MetricType::StateSet) {
            return Err(("info and stateset families cannot have a unit".to_owned(), cur.at));
        }
    }
    if matches!(
        fam.metric_type,
        MetricType::Histogram | MetricType::GaugeHistogram
    ) {
        check_histogram(fam, &cur.sample_at)?;
    }
    Ok(())
}

/// One histogram group's running state.
#[derive(Default)]
struct Buckets {
    group: u64,
    ts: Option<i64>,
    count: Option<f64>,
    bound: Option<f64>,
    value: f64,
    negative_buckets: bool,
    sum: bool,
    gsum: bool,
    negative_gsum: bool,
}

impl Buckets {
    fn finish(&self) -> Result<(), &'static str> {
        if self.bound != Some(f64::INFINITY) {
            return Err("+Inf bucket missing");
        }
        if self.count.is_some_and(|c| c != self.value) {
            return Err("count does not match the +Inf bucket");
        }
        if self.sum && self.count.is_none() {
            return Err("_count must be present if _sum is");
        }
        if self.gsum && self.count.is_none() {
            return Err("_gcount must be present if _gsum is");
        }
        if !(self.sum || self.gsum) && self.count.is_some() {
            return Err("_sum/_gsum must be present if _count/_gcount is");
        }
        if self.negative_buckets && self.sum {
            return Err("a histogram with negative buckets cannot have _sum");
        }
        if !self.negative_buckets && self.negative_gsum {
            return Err("negative _gsum with non-negative buckets");
        }
        Ok(())
    }
}

/// Bucket order, `+Inf` presence and `_count`/`_sum` consistency, per label group and timestamp.
fn check_histogram(fam: &MetricFamily, at: &[LinePos]) -> Result<(), (String, LinePos)> {
    let mut state: Option<(Buckets, LinePos)> = None;
    let fail = |reason: &str, at: LinePos| Err((format!("{reason} in histogram {:?}", fam.name), at));
    for (s, &pos) in fam.samples.iter().zip(at) {
        let name = s.labels.metric_name().unwrap_or("");
        let suffix = name.get(fam.name.len()..).unwrap_or("");
        if suffix.is_empty() {
            continue;
        }
        let group = group_hash(&s.labels, Some("le").filter(|_| suffix == "_bucket"));
        let b = match state.take() {
            Some((b, _)) if b.group == group && b.ts == s.timestamp_ms => b,
            Some((b, last)) => {
                b.finish().or_else(|r| fail(r, last))?;
                Buckets {
                    group,
                    ts: s.timestamp_ms,
                    ..Buckets::default()
                }
            }
            None => Buckets {
                group,
                ts: s.timestamp_ms,
                ..Buckets::default()
            },
        };
        let b = state.insert((b, pos));
        let b = &mut b.0;
        match suffix {
            "_bucket" => {
                let le = s.labels.get("le").and_then(bound).unwrap_or(f64::NAN);
                b.negative_buckets |= le < 0.0;
                if b.bound.is_some_and(|prev| le <= prev) {
                    return fail("buckets out of order", pos);
                }
                if s.value < b.value {
                    return fail("bucket values decrease", pos);
                }
                b.bound = Some(le);
                b.value = s.value;
            }
            "_count" | "_gcount" => b.count = Some(s.value),
            "_sum" => b.sum = true,
            "_gsum" => {
                b.gsum = true;
                b.negative_gsum |= s.value < 0.0;
            }
            _ => {}
        }
    }
    if let Some((b, last)) = state {
        b.finish().or_else(|r| fail(r, last))?;
    }
    Ok(())
}
