//! Edge reduction: per-pod counters and histogram buckets summed to workload level before they
//! leave the cluster.
//!
//! A [`Reducer`] is shared by every scrape loop of one collector. A scraper classifies each new
//! series once (cached with it): counter-like samples — counters, histogram `_bucket`/`_count`/`_sum`,
//! summary `_count`/`_sum` — are *reduced*: their labels minus `drop_labels` (default `pod`,
//! `instance`) name a reduced series, and the scraper hands the reducer `(id, value)` pairs instead of
//! forwarding them. Everything else (gauges, summary quantiles, untyped, `_created`, the synthetic
//! `up` & co.) is forwarded per pod, or dropped with `gauges: drop`.
//!
//! Each reduced series keeps one part per source series: its last raw value and its accumulated
//! contribution. A value at or above the last adds the difference; a value below it is a counter
//! reset and adds the new value in full. So the reduced value is a monotonic counter equal to the
//! plain sum while no source resets. A source that vanishes (its pod went away, or its series
//! disappeared from a successful scrape) folds its contribution into the series' base, so the sum
//! does not drop. A failed scrape keeps the parts: when the pod answers again, it continues with
//! differences. When no source is left, the reduced series gets a staleness marker.
//!
//! [`Reducer::flush`] runs once per scrape interval (from the manager) and emits every reduced
//! series with the flush time as timestamp (explicit target timestamps do not apply to reduced
//! series).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use meshfed_model::{Labels, stale_nan};
use meshfed_relay::encode::{OutgoingSample, SeriesLabels};
use serde::Deserialize;

/// `scrape.reduce` in the config.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReduceConfig {
    /// Sum counters and histograms over the pods of a workload.
    pub by_workload: bool,
    /// Labels removed to form the workload-level series.
    pub drop_labels: Vec<String>,
    /// What happens to series that cannot be summed (gauges, quantiles, untyped).
    pub gauges: GaugePolicy,
}

impl Default for ReduceConfig {
    fn default() -> Self {
        Self {
            by_workload: false,
            drop_labels: vec!["pod".into(), "instance".into()],
            gauges: GaugePolicy::Keep,
        }
    }
}

/// Treatment of series that are not summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GaugePolicy {
    /// Forward them per pod, unchanged.
    #[default]
    Keep,
    /// Drop them at the edge.
    Drop,
}

/// Reduction state shared by the scrape loops of one collector.
#[derive(Debug)]
pub struct Reducer {
    config: ReduceConfig,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    ids: HashMap<SeriesLabels, u32>,
    slots: Vec<Option<Reduced>>,
    free: Vec<u32>,
    next_source: u32,
    /// Reduced series whose last source went away: staleness marker at the next flush.
    ended: Vec<SeriesLabels>,
}

#[derive(Debug)]
struct Reduced {
    labels: SeriesLabels,
    /// Contributions of sources that went away.
    base: f64,
    parts: Vec<Part>,
}

#[derive(Debug)]
struct Part {
    /// The scraper (`source`) and its series slot.
    key: (u32, u32),
    last: Option<f64>,
    acc: f64,
}

/// Series counts at the last flush, for `meshfed_collector_reduction_*`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ReduceStats {
    /// Per-pod series feeding reduced series.
    pub series_in: usize,
    /// Reduced series emitted.
    pub series_out: usize,
}

impl Reducer {
    /// A reducer with no series yet.
    pub fn new(config: ReduceConfig) -> Arc<Self> {
        Arc::new(Self {
            config,
            inner: Mutex::new(Inner::default()),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ReduceConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new source id for one scraper.
    pub fn register_source(&self) -> u32 {
        let mut inner = self.lock();
        inner.next_source = inner.next_source.wrapping_add(1);
        inner.next_source
    }

    /// The reduced series for a scraped series (`labels` after target labels and relabelling),
    /// registering `(source, slot)` as one of its parts. Called once per new series.
    pub fn intern(&self, source: u32, slot: u32, labels: &Labels) -> u32 {
        let reduced = SeriesLabels::new(&labels.drop_names(&self.config.drop_labels));
        let mut inner = self.lock();
        let id = match inner.ids.get(&reduced) {
            Some(&id) => id,
            None => {
                let r = Reduced {
                    labels: reduced.clone(),
                    base: 0.0,
                    parts: Vec::new(),
                };
                let id = match inner.free.pop() {
                    Some(id) => {
                        inner.slots[id as usize] = Some(r);
                        id
                    }
                    None => {
                        inner.slots.push(Some(r));
                        (inner.slots.len() - 1) as u32
                    }
                };
                inner.ids.insert(reduced, id);
                id
            }
        };
        if let Some(Some(r)) = inner.slots.get_mut(id as usize)
            && !r.parts.iter().any(|p| p.key == (source, slot))
        {
            r.parts.push(Part {
                key: (source, slot),
                last: None,
                acc: 0.0,
            });
        }
        id
    }

    /// New values from one scrape of `source`: `(reduced id, slot, value)`.
    pub fn observe(&self, source: u32, values: &[(u32, u32, f64)]) {
        let mut inner = self.lock();
        for &(id, slot, v) in values {
            if v.is_nan() {
                continue;
            }
            let Some(Some(r)) = inner.slots.get_mut(id as usize) else {
                continue;
            };
            if let Some(p) = r.parts.iter_mut().find(|p| p.key == (source, slot)) {
                p.acc += match p.last {
                    Some(last) if v >= last => v - last,
                    // First value, or a reset: the whole value is new.
                    _ => v,
                };
                p.last = Some(v);
            }
        }
    }

    /// The series `(reduced id, slot)` of `source` went away: fold their contributions.
    pub fn release(&self, source: u32, parts: &[(u32, u32)]) {
        let mut inner = self.lock();
        for &(id, slot) in parts {
            inner.release_part(id, |k| k == (source, slot));
        }
    }

    /// Every series of `source` went away (its target was removed).
    pub fn release_source(&self, source: u32) {
        let mut inner = self.lock();
        for id in 0..inner.slots.len() as u32 {
            inner.release_part(id, |k| k.0 == source);
        }
    }

    /// The reduced samples at `timestamp_ms`, plus staleness markers for series that ended.
    pub fn flush(&self, timestamp_ms: i64) -> (Vec<OutgoingSample>, ReduceStats) {
        let mut inner = self.lock();
        let mut out: Vec<OutgoingSample> = std::mem::take(&mut inner.ended)
            .into_iter()
            .map(|labels| OutgoingSample {
                labels,
                timestamp_ms,
                value: stale_nan(),
            })
            .collect();
        let mut stats = ReduceStats::default();
        for r in inner.slots.iter().flatten() {
            if r.parts.iter().all(|p| p.last.is_none()) {
                continue;
            }
            stats.series_in += r.parts.len();
            stats.series_out += 1;
            out.push(OutgoingSample {
                labels: r.labels.clone(),
                timestamp_ms,
                value: r.base + r.parts.iter().map(|p| p.acc).sum::<f64>(),
            });
        }
        (out, stats)
    }
}

impl Inner {
    fn release_part(&mut self, id: u32, matches: impl Fn((u32, u32)) -> bool) {
        let Some(Some(r)) = self.slots.get_mut(id as usize) else {
            return;
        };
        let mut folded = 0.0;
        r.parts.retain(|p| {
            let hit = matches(p.key);
            if hit {
                folded += p.acc;
            }
            !hit
        });
        r.base += folded;
        if r.parts.is_empty() {
            let labels = r.labels.clone();
            let had_data = r.base != 0.0 || folded != 0.0;
            self.slots[id as usize] = None;
            self.free.push(id);
            self.ids.remove(&labels);
            if had_data {
                self.ended.push(labels);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ReduceConfig {
        ReduceConfig {
            by_workload: true,
            ..ReduceConfig::default()
        }
    }

    fn series(pod: &str) -> Labels {
        Labels::from_pairs([("__name__", "istio_requests_total"), ("pod", pod), ("app", "r")])
    }

    fn value(r: &Reducer) -> f64 {
        let (out, _) = r.flush(1);
        assert_eq!(out.len(), 1, "{out:?}");
        out[0].value
    }

    #[test]
    fn sums_pods_and_handles_resets_per_pod() {
        let r = Reducer::new(cfg());
        let (a, b) = (r.register_source(), r.register_source());
        let ia = r.intern(a, 0, &series("a"));
        let ib = r.intern(b, 0, &series("b"));
        assert_eq!(ia, ib, "pod labels dropped: one workload series");
        r.observe(a, &[(ia, 0, 100.0)]);
        r.observe(b, &[(ib, 0, 50.0)]);
        assert_eq!(value(&r), 150.0);
        r.observe(a, &[(ia, 0, 110.0)]);
        // Pod b restarted: 5 is new, not -45.
        r.observe(b, &[(ib, 0, 5.0)]);
        assert_eq!(value(&r), 165.0);
        let (out, stats) = r.flush(2);
        assert_eq!(out[0].labels.get("pod"), None);
        assert_eq!(
            stats,
            ReduceStats {
                series_in: 2,
                series_out: 1
            }
        );
    }

    #[test]
    fn vanished_pod_keeps_its_contribution_and_last_one_out_marks_stale() {
        let r = Reducer::new(cfg());
        let (a, b) = (r.register_source(), r.register_source());
        let id = r.intern(a, 0, &series("a"));
        r.intern(b, 3, &series("b"));
        r.observe(a, &[(id, 0, 10.0)]);
        r.observe(b, &[(id, 3, 20.0)]);
        r.release_source(b);
        assert_eq!(value(&r), 30.0, "monotonic after a pod left");
        r.observe(a, &[(id, 0, 15.0)]);
        assert_eq!(value(&r), 35.0);
        r.release(a, &[(id, 0)]);
        let (out, stats) = r.flush(9);
        assert_eq!(out.len(), 1);
        assert!(meshfed_model::is_stale_nan(out[0].value));
        assert_eq!(stats.series_out, 0);
        assert!(r.flush(10).0.is_empty());
    }
}
