//! Metric metadata (HELP/TYPE/UNIT per metric family) reported by the collectors, served at
//! `/api/v1/metadata` through [`meshfed_query::MetadataSource`].
//!
//! Merged across clusters as Prometheus merges its targets' metadata: each family has a list of
//! distinct entries, so ten clusters exposing the same `istio_requests_total` HELP/TYPE give one
//! entry. Each cluster contributes at most one entry per family, its latest (a changed HELP
//! replaces that cluster's previous one; an entry no cluster reports any more disappears).
//! Bounded: at most `max_families` families and `max_entries_per_family` entries per family, help
//! texts cut at `max_help_bytes`; what does not fit is dropped and counted in
//! `meshfed_ingest_metadata_dropped_total{reason}`.

use std::collections::{BTreeMap, BTreeSet};

use meshfed_query::{MetadataSource, MetricMetadata};
use meshfed_relay::proto;
use parking_lot::RwLock;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Bounds of the [`MetadataStore`].
#[derive(Clone, Debug)]
pub struct MetadataLimits {
    /// Most metric families kept.
    pub max_families: usize,
    /// Most distinct entries kept per family.
    pub max_entries_per_family: usize,
    /// HELP texts longer than this are cut (at a character boundary).
    pub max_help_bytes: usize,
}

impl Default for MetadataLimits {
    fn default() -> Self {
        Self {
            max_families: 100_000,
            max_entries_per_family: 16,
            max_help_bytes: 4096,
        }
    }
}

/// One distinct entry and the clusters reporting it.
struct Entry {
    meta: MetricMetadata,
    clusters: BTreeSet<String>,
}

/// The aggregator's metadata, by family name.
pub struct MetadataStore {
    families: RwLock<BTreeMap<String, Vec<Entry>>>,
    limits: MetadataLimits,
    dropped: Family<Vec<(String, String)>, Counter>,
    family_count: Gauge,
}

const TYPES: [&str; 8] = [
    "counter",
    "gauge",
    "histogram",
    "gaugehistogram",
    "summary",
    "info",
    "stateset",
    "unknown",
];

impl MetadataStore {
    /// An empty store with `limits`.
    pub fn new(limits: MetadataLimits) -> Self {
        Self {
            families: RwLock::new(BTreeMap::new()),
            limits,
            dropped: Family::default(),
            family_count: Gauge::default(),
        }
    }

    /// Registers `meshfed_ingest_metadata_*` metrics.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("meshfed_ingest_metadata");
        r.register(
            "dropped",
            "Metadata entries not kept, by reason (invalid, family_limit, entry_limit)",
            self.dropped.clone(),
        );
        r.register(
            "families",
            "Metric families with metadata",
            self.family_count.clone(),
        );
    }

    fn drop_one(&self, reason: &str) {
        self.dropped
            .get_or_create(&vec![("reason".to_owned(), reason.to_owned())])
            .inc();
    }

    /// Records `cluster`'s latest entries (new or changed families; others stay as they were).
    pub fn update(&self, cluster: &str, entries: &[proto::MetricMetadata]) {
        let mut families = self.families.write();
        for e in entries {
            if e.metric.is_empty() {
                self.drop_one("invalid");
                continue;
            }
            let meta = MetricMetadata {
                metric_type: if TYPES.contains(&e.r#type.as_str()) {
                    e.r#type.clone()
                } else {
                    "unknown".to_owned()
                },
                help: cut(&e.help, self.limits.max_help_bytes).to_owned(),
                unit: cut(&e.unit, 256).to_owned(),
            };
            if !families.contains_key(&e.metric) && families.len() >= self.limits.max_families {
                self.drop_one("family_limit");
                continue;
            }
            let list = families.entry(e.metric.clone()).or_default();
            for other in list.iter_mut().filter(|x| x.meta != meta) {
                other.clusters.remove(cluster);
            }
            list.retain(|x| !x.clusters.is_empty());
            let room = list.len() < self.limits.max_entries_per_family;
            match list.iter_mut().find(|x| x.meta == meta) {
                Some(x) => {
                    x.clusters.insert(cluster.to_owned());
                }
                None if room => list.push(Entry {
                    meta,
                    clusters: BTreeSet::from([cluster.to_owned()]),
                }),
                None => self.drop_one("entry_limit"),
            }
            if list.is_empty() {
                families.remove(&e.metric);
            }
        }
        self.family_count.set(families.len() as i64);
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl MetadataSource for MetadataStore {
    fn metadata(&self, metric: Option<&str>) -> Vec<(String, Vec<MetricMetadata>)> {
        let families = self.families.read();
        let entries = |list: &Vec<Entry>| list.iter().map(|e| e.meta.clone()).collect();
        match metric {
            Some(m) => families
                .get(m)
                .map(|list| vec![(m.to_owned(), entries(list))])
                .unwrap_or_default(),
            None => families
                .iter()
                .map(|(name, list)| (name.clone(), entries(list)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(metric: &str, t: &str, help: &str) -> proto::MetricMetadata {
        proto::MetricMetadata {
            metric: metric.into(),
            r#type: t.into(),
            help: help.into(),
            unit: String::new(),
        }
    }

    fn helps(s: &MetadataStore, metric: &str) -> Vec<String> {
        s.metadata(Some(metric))
            .into_iter()
            .flat_map(|(_, e)| e.into_iter().map(|e| e.help))
            .collect()
    }

    #[test]
    fn identical_entries_from_clusters_merge_and_changes_replace() {
        let s = MetadataStore::new(MetadataLimits::default());
        s.update("east", &[m("req_total", "counter", "Requests.")]);
        s.update("west", &[m("req_total", "counter", "Requests.")]);
        assert_eq!(helps(&s, "req_total"), ["Requests."]);
        s.update("west", &[m("req_total", "counter", "Requests, v2.")]);
        assert_eq!(helps(&s, "req_total"), ["Requests.", "Requests, v2."]);
        s.update("east", &[m("req_total", "counter", "Requests, v2.")]);
        assert_eq!(helps(&s, "req_total"), ["Requests, v2."]);
        assert_eq!(s.metadata(None).len(), 1);
    }

    #[test]
    fn bounded_and_sanitised() {
        let s = MetadataStore::new(MetadataLimits {
            max_families: 2,
            max_entries_per_family: 1,
            max_help_bytes: 3,
        });
        s.update(
            "a",
            &[
                m("x", "bogus", "héllo"),
                m("y", "gauge", ""),
                m("z", "gauge", ""),
                m("", "gauge", ""),
            ],
        );
        s.update("b", &[m("x", "counter", "other")]);
        let all = s.metadata(None);
        assert_eq!(all.len(), 2, "family limit");
        assert_eq!(all[0].1.len(), 1, "entry limit");
        assert_eq!(all[0].1[0].metric_type, "unknown");
        assert_eq!(all[0].1[0].help, "hé", "cut at a character boundary");
        let dropped = |reason: &str| {
            s.dropped
                .get_or_create(&vec![("reason".to_owned(), reason.to_owned())])
                .get()
        };
        assert_eq!(
            (
                dropped("family_limit"),
                dropped("invalid"),
                dropped("entry_limit")
            ),
            (1, 1, 1)
        );
    }
}
