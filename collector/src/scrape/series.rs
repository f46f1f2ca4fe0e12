//! The per-target series cache: series text → final series, with staleness bookkeeping.
//!
//! Two tables. `texts` maps the exposed text (`name{labels}`, exactly as written; kept only as a
//! 128-bit hash, see [`super::texts`]) to a slot, or to "dropped by relabelling". `slots` hold the final series (target labels, relabelling, limits
//! applied); different texts that end up as the same label set share one slot (found through
//! `by_labels`, consulted only on a miss: a table of slot numbers hashed by the slot's labels, 4
//! bytes an entry instead of a second handle on the label set). Each entry records the scrape generation it was last
//! seen in, so staleness and eviction need no per-scrape sets: after a successful scrape, slots seen
//! in the previous one but not this one get a staleness marker, and everything not seen is evicted.
//! Text entries check a slot's version, so evicting a slot never leaves a dangling text.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use std::sync::Arc;

use super::texts::TextMap;

use meshfed_model::exposition::{self, Format, MetricType, RawSample};
use meshfed_model::{Labels, LabelsBuilder, METRIC_NAME};
use meshfed_relay::encode::{OutgoingSample, SeriesLabels};

use super::{ScrapeError, stale};
use crate::config::ScrapeConfig;
use crate::reduce::{GaugePolicy, Reducer};
use crate::relabel::{self, RelabelRule};

/// A hasher seeded per process: fast on long keys, and targets cannot predict it.
#[derive(Clone, Default)]
struct SeriesHasher(foldhash::fast::RandomState);

impl BuildHasher for SeriesHasher {
    type Hasher = foldhash::fast::FoldHasher;
    fn build_hasher(&self) -> Self::Hasher {
        self.0.build_hasher()
    }
}

const DROPPED: u32 = u32::MAX;

struct TextEntry {
    slot: u32,
    version: u32,
    seen: u64,
}

struct Slot {
    /// The final label set, packed: what the relay gets with every sample.
    labels: Option<SeriesLabels>,
    version: u32,
    seen: u64,
    /// Present in the last successful scrape.
    prev: bool,
    /// The reduced series this one feeds, when reducing.
    reduce: Option<u32>,
}

/// What a successful ingest counted.
pub(super) struct Ingested {
    pub scraped: usize,
    pub added: usize,
}

pub(super) struct SeriesCache {
    target_labels: Vec<(String, String)>,
    rules: Result<Vec<RelabelRule>, String>,
    sample_limit: usize,
    label_limit: usize,
    name_len_limit: usize,
    value_len_limit: usize,
    texts: TextMap<TextEntry>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Slots with labels, by the hash of their labels.
    by_labels: HashTable<u32>,
    hasher: SeriesHasher,
    epoch: u64,
    last_ok: u64,
    last_len: usize,
    reducer: Option<(Arc<Reducer>, u32)>,
    reduced: Vec<(u32, u32, f64)>,
}

impl SeriesCache {
    pub fn new(
        target_labels: Vec<(String, String)>,
        rules: Result<Vec<RelabelRule>, String>,
        config: &ScrapeConfig,
    ) -> Self {
        Self {
            target_labels,
            rules,
            sample_limit: config.sample_limit,
            label_limit: config.label_limit,
            name_len_limit: config.label_name_length_limit,
            value_len_limit: config.label_value_length_limit,
            texts: TextMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            by_labels: HashTable::new(),
            hasher: SeriesHasher::default(),
            epoch: 0,
            last_ok: 0,
            last_len: 0,
            reducer: None,
            reduced: Vec::new(),
        }
    }

    pub fn set_reducer(&mut self, reducer: Arc<Reducer>) {
        let source = reducer.register_source();
        self.reducer = Some((reducer, source));
    }

    pub fn release_reducer(&mut self) {
        if let Some((r, source)) = &self.reducer {
            r.release_source(*source);
        }
    }

    pub fn len(&self) -> usize {
        self.texts.len()
    }

    pub fn last_len(&self) -> usize {
        self.last_len
    }

    /// Streams `body` into `out` (samples with final labels). On error, `out` holds a partial
    /// result the caller discards.
    pub fn ingest(
        &mut self,
        body: &str,
        format: Format,
        timestamp_ms: i64,
        out: &mut Vec<OutgoingSample>,
    ) -> Result<Ingested, ScrapeError> {
        if let Err(e) = &self.rules {
            return Err(ScrapeError::RelabelConfig(e.clone()));
        }
        self.epoch += 1;
        self.reduced.clear();
        let mut state = Pass {
            scraped: 0,
            kept: 0,
            added: 0,
            error: None,
        };
        let parsed = exposition::for_each_sample(body, format, |raw| {
            if state.error.is_none()
                && let Err(e) = self.sample(&raw, timestamp_ms, out, &mut state)
            {
                state.error = Some(e);
            }
        });
        parsed.map_err(ScrapeError::Parse)?;
        if let Some(e) = state.error {
            return Err(e);
        }
        if let Some((r, source)) = &self.reducer {
            r.observe(*source, &self.reduced);
        }
        self.last_len = out.len();
        Ok(Ingested {
            scraped: state.scraped,
            added: state.added,
        })
    }

    fn sample(
        &mut self,
        raw: &RawSample<'_>,
        timestamp_ms: i64,
        out: &mut Vec<OutgoingSample>,
        st: &mut Pass,
    ) -> Result<(), ScrapeError> {
        st.scraped += 1;
        let epoch = self.epoch;
        let key = self.texts.key(raw.series_text);
        let slots = &self.slots;
        let hit = match self.texts.get_mut(key) {
            Some(e) if e.slot == DROPPED || slots[e.slot as usize].version == e.version => {
                e.seen = epoch;
                Some(e.slot)
            }
            Some(_) => None,
            None => None,
        };
        let slot = match hit {
            Some(slot) => slot,
            None => self.miss(raw, key)?,
        };
        if slot == DROPPED {
            return Ok(());
        }
        let s = &mut self.slots[slot as usize];
        if s.seen == epoch {
            // The same series twice in one scrape: Prometheus keeps the first.
            return Ok(());
        }
        s.seen = epoch;
        if !s.prev {
            st.added += 1;
        }
        st.kept += 1;
        if self.sample_limit > 0 && st.kept > self.sample_limit {
            return Err(ScrapeError::SampleLimit(self.sample_limit));
        }
        let value = raw.value;
        match (s.reduce, &s.labels) {
            (Some(id), _) => self.reduced.push((id, slot, value)),
            (None, Some(labels)) => out.push(OutgoingSample {
                labels: labels.clone(),
                timestamp_ms: raw.timestamp_ms.unwrap_or(timestamp_ms),
                value,
            }),
            (None, None) => {}
        }
        Ok(())
    }

    /// The slow path for a text not seen before: build, label, relabel, check, intern.
    fn miss(&mut self, raw: &RawSample<'_>, key: u128) -> Result<u32, ScrapeError> {
        let exposed = raw.labels().map_err(ScrapeError::Parse)?;
        let labelled = with_target_labels(&exposed, &self.target_labels);
        let rules = self.rules.as_deref().unwrap_or(&[]);
        let slot = match relabel::process(labelled, rules) {
            None => DROPPED,
            Some(labels) => {
                self.check_limits(&labels)?;
                // Only the packed form is kept; `labels` is dropped at the end of the miss.
                let packed = SeriesLabels::new(&labels);
                let hash = self.hasher.hash_one(&packed);
                let slots = &self.slots;
                let found = self
                    .by_labels
                    .find(hash, |&i| slots[i as usize].labels.as_ref() == Some(&packed));
                match found {
                    Some(&slot) => slot,
                    None => self.new_slot(&labels, packed, hash, raw),
                }
            }
        };
        let version = if slot == DROPPED {
            0
        } else {
            self.slots[slot as usize].version
        };
        let entry = TextEntry {
            slot,
            version,
            seen: self.epoch,
        };
        match self.texts.get_mut(key) {
            // A text whose slot was evicted and reused: point it at the new one.
            Some(e) => *e = entry,
            None => self.texts.insert_new(key, entry),
        }
        Ok(slot)
    }

    fn new_slot(&mut self, full: &Labels, packed: SeriesLabels, hash: u64, raw: &RawSample<'_>) -> u32 {
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    labels: None,
                    version: 0,
                    seen: 0,
                    prev: false,
                    reduce: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let mut reduce = None;
        let mut labels = Some(packed);
        if let Some((reducer, source)) = &self.reducer {
            if summable(raw.metric_type, raw.name) {
                reduce = Some(reducer.intern(*source, idx, full));
            } else if reducer.config().gauges == GaugePolicy::Drop {
                labels = None;
            }
        }
        let has_labels = labels.is_some();
        let s = &mut self.slots[idx as usize];
        s.labels = labels;
        s.seen = 0;
        s.prev = false;
        s.reduce = reduce;
        if has_labels {
            let (slots, hasher) = (&self.slots, &self.hasher);
            self.by_labels
                .insert_unique(hash, idx, |&i| slot_hash(hasher, &slots[i as usize]));
        }
        idx
    }

    fn check_limits(&self, labels: &Labels) -> Result<(), ScrapeError> {
        let metric = || labels.metric_name().unwrap_or("").to_owned();
        if self.label_limit > 0 && labels.len() > self.label_limit {
            return Err(ScrapeError::LabelLimit {
                metric: metric(),
                count: labels.len(),
                limit: self.label_limit,
            });
        }
        for l in labels {
            if self.name_len_limit > 0 && l.name.len() > self.name_len_limit {
                return Err(ScrapeError::LabelNameLength {
                    metric: metric(),
                    name: l.name.to_string(),
                    length: l.name.len(),
                    limit: self.name_len_limit,
                });
            }
            if self.value_len_limit > 0 && l.value.len() > self.value_len_limit {
                return Err(ScrapeError::LabelValueLength {
                    metric: metric(),
                    name: l.name.to_string(),
                    length: l.value.len(),
                    limit: self.value_len_limit,
                });
            }
        }
        Ok(())
    }

    /// Staleness markers and eviction after a scrape. A successful scrape marks series of the
    /// previous one it did not see, and evicts everything it did not see; a failed one marks every
    /// series of the previous one and evicts what neither it nor the last successful one saw.
    pub fn end_scrape(&mut self, ok: bool, timestamp_ms: i64, out: &mut Vec<OutgoingSample>) {
        let epoch = self.epoch;
        let keep = |seen: u64| seen == epoch || (!ok && seen == self.last_ok);
        let mut released = Vec::new();
        for (i, s) in self.slots.iter_mut().enumerate() {
            let Some(labels) = &s.labels else {
                if s.seen != 0 && !keep(s.seen) {
                    s.seen = 0;
                    s.version = s.version.wrapping_add(1);
                    self.free.push(i as u32);
                }
                continue;
            };
            let now = ok && s.seen == epoch;
            if s.prev && !now && s.reduce.is_none() {
                out.push(stale(labels, timestamp_ms));
            }
            s.prev = now;
            if !keep(s.seen) {
                if let Some(id) = s.reduce.take() {
                    released.push((id, i as u32));
                }
                let hash = self.hasher.hash_one(labels);
                if let Ok(e) = self.by_labels.find_entry(hash, |&j| j == i as u32) {
                    e.remove();
                }
                s.labels = None;
                s.seen = 0;
                s.version = s.version.wrapping_add(1);
                self.free.push(i as u32);
            }
        }
        self.texts.retain(|e| keep(e.seen));
        if let Some((r, source)) = &self.reducer
            && !released.is_empty()
        {
            r.release(*source, &released);
        }
        if ok {
            self.last_ok = epoch;
        }
        // Do not hold on to the capacity of a much larger past scrape.
        if self.by_labels.capacity() > 4 * self.by_labels.len().max(1024) {
            let (slots, hasher) = (&self.slots, &self.hasher);
            self.by_labels
                .shrink_to_fit(|&i| slot_hash(hasher, &slots[i as usize]));
        }
        // Growing by doubling leaves up to half of the slot vector unused once a target's series
        // set is stable (1,520 series in 2,048 slots); slot numbers are indexes below `len`, so
        // only the spare capacity goes. Repeats only in scrapes that grew the vector.
        let len = self.slots.len();
        if self.slots.capacity() > len + len / 8 + 16 {
            self.slots.shrink_to(len + len / 16);
        }
    }

    /// Marks every series of the last successful scrape stale and forgets everything.
    pub fn end_of_run(&mut self, timestamp_ms: i64, out: &mut Vec<OutgoingSample>) {
        for s in &self.slots {
            if let (true, Some(l), None) = (s.prev, &s.labels, s.reduce) {
                out.push(stale(l, timestamp_ms));
            }
        }
        self.release_reducer();
        self.texts.clear();
        self.slots.clear();
        self.free.clear();
        self.by_labels.clear();
    }
}

/// The hash a slot is filed under in `by_labels` (only slots with labels are).
fn slot_hash(hasher: &SeriesHasher, slot: &Slot) -> u64 {
    slot.labels.as_ref().map_or(0, |l| hasher.hash_one(l))
}

struct Pass {
    scraped: usize,
    kept: usize,
    added: usize,
    error: Option<ScrapeError>,
}

/// Counter-like samples that can be summed across pods.
fn summable(t: MetricType, name: &str) -> bool {
    match t {
        MetricType::Counter => !name.ends_with("_created"),
        MetricType::Histogram => !name.ends_with("_created"),
        MetricType::Summary => name.ends_with("_count") || name.ends_with("_sum"),
        _ => false,
    }
}

/// Adds target labels; an exposed label that clashes is kept as `exported_<name>`, as Prometheus
/// does with `honor_labels: false`.
///
/// The set is built at its exact size: it lives as long as the series is cached, and a vector
/// grown by pushes would carry up to twice the room it needs.
pub(super) fn with_target_labels(exposed: &Labels, target_labels: &[(String, String)]) -> Labels {
    let extra = target_labels
        .iter()
        .filter(|(k, _)| exposed.get(k).is_none())
        .count();
    let renamed: Vec<(String, &str)> = target_labels
        .iter()
        // Prometheus renames a clashing exposed label even when the values are equal.
        .filter_map(|(k, _)| Some((format!("exported_{k}"), exposed.get(k)?)))
        .collect();
    let mut b = LabelsBuilder::with_capacity(exposed.len() + extra + renamed.len());
    for l in exposed {
        if !target_labels.iter().any(|(k, _)| *k == l.name) {
            b.set(l.name.as_str(), l.value.as_str());
        }
    }
    for (name, value) in renamed {
        b.set(name, value);
    }
    for (k, v) in target_labels {
        b.set(k.as_str(), v.as_str());
    }
    debug_assert!(b.get(METRIC_NAME).is_some() || exposed.get(METRIC_NAME).is_none());
    b.build()
}
