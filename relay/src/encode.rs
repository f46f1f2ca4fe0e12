//! Turning samples into [`SampleBatch`]es with a series dictionary: each series is defined once
//! (labels and a ref) and later named by its ref. The relay stream and each disk-buffer segment
//! keep their own dictionary.

use std::collections::HashMap;
use std::hash::BuildHasher;

use hashbrown::HashTable;
use meshfed_model::LabelsBuilder;

use prost::Message;

use crate::proto::{self, SampleBatch, SeriesDefinition};

mod intern;
mod series;

pub use series::SeriesLabels;

/// One sample headed for the aggregator. Labels are packed and shared so a scrape neither copies
/// them nor keeps a [`Labels`](meshfed_model::Labels) per series alive.
#[derive(Clone, Debug, PartialEq)]
pub struct OutgoingSample {
    /// The series, `__name__` included.
    pub labels: SeriesLabels,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The value (may be a staleness marker).
    pub value: f64,
}

/// The series a stream (or buffer segment) has defined so far.
///
/// The dictionary is keyed by the packing's address rather than the label set: the collector
/// hands the same packing for a series at every scrape, so this saves hashing some 25 labels per
/// sample. Two packings of equal labels just get two refs, which the aggregator resolves to the
/// same series. Each entry holds a clone, so an address cannot be reused while it is in the
/// dictionary. Refs are dense (1, 2, …): each ref's label set and previous value sit in a vector
/// indexed by ref, and the address table holds only the index (4 B an entry instead of a 24-byte
/// label-set handle and ref: at ~470 k series that table alone was ~25 MB).
///
/// Entries whose packing nobody else holds any more (the collector evicted the series and no
/// sample of it is pending) are pruned when the dictionary is full, before it would grow, so a
/// stream does not keep evicted label sets alive. Refs are never reused.
pub struct StreamEncoder {
    /// Indexes into `series` of the defined series, by the hash of their packing's address.
    refs: HashTable<u32>,
    columnar: bool,
    /// Per ref (index `ref - 1`): the packing while it is in `refs` (`None` once pruned), and the
    /// previous value bits for the XOR value encoding. One entry per ref ever given, so its length
    /// is the last ref.
    series: Vec<(Option<SeriesLabels>, u64)>,
    /// One zstd context for the stream's series definitions (created on first use).
    zstd: Option<zstd::bulk::Compressor<'static>>,
}

impl std::fmt::Debug for StreamEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamEncoder")
            .field("defined_series", &self.refs.len())
            .field("columnar", &self.columnar)
            .finish_non_exhaustive()
    }
}

/// Addresses are not chosen by peers, so a fixed-seed fast hash is enough.
fn addr_hash(addr: usize) -> u64 {
    foldhash::fast::FixedState::with_seed(0x6d65_7368_6665_6421).hash_one(addr)
}

/// The table hash of a dictionary entry (only entries with a packing are in the table).
fn series_hash(labels: &Option<SeriesLabels>) -> u64 {
    labels.as_ref().map_or(0, |l| addr_hash(l.addr()))
}

/// Smallest dictionary size at which pruning is considered.
const MIN_PRUNE: usize = 1024;

/// Most bytes the compressed series definitions of one batch may expand to.
pub const MAX_DEFINITIONS_BYTES: usize = 64 << 20;

/// The previous value of each series on a stream, for the XOR value encoding of the columnar
/// form. Encoder and decoder keep one each and apply batches in the same order.
#[derive(Debug, Default)]
pub struct ValueState {
    prev: HashMap<u64, u64, foldhash::fast::RandomState>,
}

impl ValueState {
    /// Encodes: the value's bits XOR the series' previous bits.
    pub fn xor_in(&mut self, series_ref: u64, value: f64) -> u64 {
        let bits = value.to_bits();
        bits ^ self.prev.insert(series_ref, bits).unwrap_or(0)
    }

    /// Decodes what [`ValueState::xor_in`] produced. Callers check `series_ref` is defined first,
    /// so the state holds at most one entry per defined series.
    pub fn xor_out(&mut self, series_ref: u64, xored: u64) -> f64 {
        let bits = xored ^ self.prev.get(&series_ref).copied().unwrap_or(0);
        self.prev.insert(series_ref, bits);
        f64::from_bits(bits)
    }
}

impl Default for StreamEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamEncoder {
    /// A fresh, empty dictionary that writes sample columns as compressed Arrow IPC.
    pub fn new() -> Self {
        Self {
            refs: HashTable::new(),
            columnar: true,
            series: Vec::new(),
            zstd: None,
        }
    }

    /// A dictionary writing plain protobuf columns (for tests and size comparisons).
    pub fn plain() -> Self {
        Self {
            columnar: false,
            ..Self::new()
        }
    }

    /// Number of series defined and still in the dictionary (pruned ones not counted).
    pub fn defined_series(&self) -> usize {
        self.refs.len()
    }

    /// Drops entries whose series nobody else references, when the dictionary is full (an
    /// insert would grow it). If little is freed, the insert grows the table and the next
    /// pruning waits until it is full again, so the scans cost O(1) per new series.
    fn prune_if_full(&mut self) {
        if self.refs.len() < MIN_PRUNE || self.refs.len() < self.refs.capacity() {
            return;
        }
        let series = &mut self.series;
        self.refs.retain(|&mut i| {
            let entry = &mut series[i as usize].0;
            let evicted = entry.as_ref().is_none_or(SeriesLabels::is_unique);
            if evicted {
                *entry = None;
            }
            !evicted
        });
        if self.refs.capacity() > 4 * self.refs.len().max(MIN_PRUNE) {
            let series = &self.series;
            self.refs.shrink_to_fit(|&i| series_hash(&series[i as usize].0));
        }
    }

    /// Encodes `samples` as a batch with `sequence`, defining series new to this dictionary.
    pub fn encode(&mut self, sequence: u64, samples: &[OutgoingSample]) -> SampleBatch {
        let mut batch = SampleBatch {
            sequence,
            new_series: Vec::new(),
            refs: Vec::with_capacity(samples.len()),
            timestamps_ms: Vec::with_capacity(samples.len()),
            values: Vec::with_capacity(samples.len()),
            columns: Vec::new(),
            new_series_zstd: Vec::new(),
        };
        for s in samples {
            let hash = addr_hash(s.labels.addr());
            let series = &self.series;
            let found = self
                .refs
                .find(hash, |&i| {
                    series[i as usize]
                        .0
                        .as_ref()
                        .is_some_and(|l| SeriesLabels::ptr_eq(l, &s.labels))
                })
                .map(|&i| u64::from(i) + 1);
            let series_ref = match found {
                Some(r) => r,
                None => {
                    self.prune_if_full();
                    // Refs stay below 2³² (the table's index type): 4 G series would take far
                    // more memory than any stream has.
                    let idx = self.series.len() as u32;
                    self.series.push((Some(s.labels.clone()), 0));
                    let next = u64::from(idx) + 1;
                    batch.new_series.push(SeriesDefinition {
                        r#ref: next,
                        labels: s
                            .labels
                            .iter()
                            .map(|(name, value)| proto::Label {
                                name: name.to_owned(),
                                value: value.to_owned(),
                            })
                            .collect(),
                    });
                    let series = &self.series;
                    self.refs
                        .insert_unique(hash, idx, |&i| series_hash(&series[i as usize].0));
                    next
                }
            };
            batch.refs.push(series_ref);
            batch.timestamps_ms.push(s.timestamp_ms);
            batch.values.push(s.value);
        }
        if self.columnar && !samples.is_empty() {
            self.make_columnar(&mut batch);
        }
        batch
    }

    fn make_columnar(&mut self, batch: &mut SampleBatch) {
        let prev = &mut self.series;
        let xored: Vec<u64> = batch
            .refs
            .iter()
            .zip(&batch.values)
            .map(|(&r, &v)| {
                // Refs come from this dictionary: 1..=len.
                let slot = &mut prev[(r - 1) as usize].1;
                let bits = v.to_bits();
                let x = bits ^ *slot;
                *slot = bits;
                x
            })
            .collect();
        match crate::columns::encode(&batch.refs, &batch.timestamps_ms, &xored) {
            Ok(bytes) => {
                batch.columns = bytes;
                batch.refs = Vec::new();
                batch.timestamps_ms = Vec::new();
                batch.values = Vec::new();
            }
            Err(e) => {
                // Cannot happen with our own well-formed columns. Should it, fall back to plain
                // columns for the rest of the stream (plain values do not use the XOR state).
                tracing::error!(error = %e, "Encoding relay columns failed; sending plain columns.");
                self.columnar = false;
            }
        }
        if !batch.new_series.is_empty() {
            let defs = proto::SeriesDefinitions {
                series: std::mem::take(&mut batch.new_series),
            }
            .encode_to_vec();
            let zstd = match self.zstd.take() {
                Some(z) => Ok(z),
                None => zstd::bulk::Compressor::new(3),
            };
            let compressed = zstd.and_then(|mut z| {
                let out = z.compress(&defs);
                self.zstd = Some(z);
                out
            });
            match compressed {
                Ok(z) => batch.new_series_zstd = z,
                Err(_) => {
                    batch.new_series = proto::SeriesDefinitions::decode(defs.as_slice())
                        .map(|d| d.series)
                        .unwrap_or_default()
                }
            }
        }
    }
}

/// The series definitions of `batch`, decompressing them when compressed.
pub fn new_series(batch: &SampleBatch) -> Result<std::borrow::Cow<'_, [SeriesDefinition]>, String> {
    if batch.new_series_zstd.is_empty() {
        return Ok(std::borrow::Cow::Borrowed(&batch.new_series));
    }
    let raw = zstd::bulk::decompress(&batch.new_series_zstd, MAX_DEFINITIONS_BYTES)
        .map_err(|e| format!("series definitions: {e}"))?;
    let defs =
        proto::SeriesDefinitions::decode(raw.as_slice()).map_err(|e| format!("series definitions: {e}"))?;
    Ok(std::borrow::Cow::Owned(defs.series))
}

/// The sample columns of `batch`: refs, timestamps, and values. In the columnar form values are
/// still XOR-encoded bits; `plain` tells which.
pub fn sample_columns(batch: &SampleBatch) -> Result<Columns, crate::columns::ColumnsError> {
    if batch.columns.is_empty() {
        let values = batch.values.iter().map(|v| v.to_bits()).collect();
        return Ok(Columns {
            refs: batch.refs.clone(),
            timestamps_ms: batch.timestamps_ms.clone(),
            values,
            xored: false,
        });
    }
    let mut c = Columns {
        refs: Vec::new(),
        timestamps_ms: Vec::new(),
        values: Vec::new(),
        xored: true,
    };
    crate::columns::decode(&batch.columns, &mut c.refs, &mut c.timestamps_ms, &mut c.values)?;
    Ok(c)
}

/// Decoded sample columns.
#[derive(Debug)]
pub struct Columns {
    /// Series refs.
    pub refs: Vec<u64>,
    /// Timestamps.
    pub timestamps_ms: Vec<i64>,
    /// Value bits, XOR-encoded when `xored`.
    pub values: Vec<u64>,
    /// Whether `values` must go through [`ValueState::xor_out`].
    pub xored: bool,
}

impl Columns {
    /// Whether the three columns have equal length.
    pub fn is_consistent(&self) -> bool {
        self.refs.len() == self.timestamps_ms.len() && self.refs.len() == self.values.len()
    }

    /// The value at `i` (after checking its ref is defined).
    pub fn value(&self, i: usize, state: &mut ValueState) -> f64 {
        if self.xored {
            state.xor_out(self.refs[i], self.values[i])
        } else {
            f64::from_bits(self.values[i])
        }
    }
}

/// The reverse of [`StreamEncoder`] for data the collector wrote itself (its disk buffer):
/// rebuilds samples with labels from a sequence of batches sharing one dictionary.
#[derive(Debug, Default)]
pub struct DictionaryDecoder {
    series: HashMap<u64, SeriesLabels>,
    values: ValueState,
}

impl DictionaryDecoder {
    /// Decodes one batch; `None` if it names a ref never defined or its columns differ in length.
    pub fn decode(&mut self, batch: &SampleBatch) -> Option<Vec<OutgoingSample>> {
        for def in new_series(batch).ok()?.iter() {
            let mut b = LabelsBuilder::with_capacity(def.labels.len());
            for l in &def.labels {
                b.set(l.name.as_str(), l.value.as_str());
            }
            self.series.insert(def.r#ref, SeriesLabels::new(&b.build()));
        }
        let c = sample_columns(batch).ok()?;
        if !c.is_consistent() {
            return None;
        }
        (0..c.refs.len())
            .map(|i| {
                let labels = self.series.get(&c.refs[i])?.clone();
                Some(OutgoingSample {
                    labels,
                    timestamp_ms: c.timestamps_ms[i],
                    value: c.value(i, &mut self.values),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One shared label set per name, as the collector's series cache hands out.
    fn sample(name: &str, v: f64) -> OutgoingSample {
        thread_local! {
            static SERIES: std::cell::RefCell<HashMap<String, SeriesLabels>> = Default::default();
        }
        let labels = SERIES.with(|m| {
            m.borrow_mut()
                .entry(name.to_owned())
                .or_insert_with(|| SeriesLabels::from_pairs([("__name__", name)]))
                .clone()
        });
        OutgoingSample {
            labels,
            timestamp_ms: 1000,
            value: v,
        }
    }

    #[test]
    fn series_defined_once_and_decoded_back() {
        let mut enc = StreamEncoder::plain();
        let first = [sample("a", 1.0), sample("b", 2.0), sample("a", 3.0)];
        let b1 = enc.encode(7, &first);
        assert_eq!(b1.sequence, 7);
        assert_eq!(b1.new_series.len(), 2);
        assert_eq!(b1.refs, [1, 2, 1]);
        let second = [sample("b", 4.0), sample("c", 5.0)];
        let b2 = enc.encode(8, &second);
        assert_eq!(b2.new_series.len(), 1);
        assert_eq!(b2.new_series[0].r#ref, 3);
        assert_eq!(b2.refs, [2, 3]);
        let mut dec = DictionaryDecoder::default();
        assert_eq!(dec.decode(&b1).unwrap(), first);
        assert_eq!(dec.decode(&b2).unwrap(), second);
        // The columnar form decodes to the same samples.
        let mut enc = StreamEncoder::new();
        let mut dec = DictionaryDecoder::default();
        let b = enc.encode(1, &first);
        assert!(b.refs.is_empty() && !b.columns.is_empty());
        assert_eq!(dec.decode(&b).unwrap(), first);
    }

    #[test]
    fn evicted_series_are_pruned_and_refs_not_reused() {
        let mut enc = StreamEncoder::plain();
        let mut dec = DictionaryDecoder::default();
        let kept = OutgoingSample {
            labels: SeriesLabels::from_pairs([("__name__", "kept")]),
            timestamp_ms: 1,
            value: 1.0,
        };
        let mut last_ref = 0;
        for round in 0..4 {
            // Series the caller drops after sending: only the dictionary holds them afterwards.
            let batch: Vec<OutgoingSample> = (0..MIN_PRUNE)
                .map(|i| OutgoingSample {
                    labels: SeriesLabels::from_pairs([("__name__", format!("churn_{round}_{i}"))]),
                    timestamp_ms: 1,
                    value: i as f64,
                })
                .chain([kept.clone()])
                .collect();
            let b = enc.encode(round + 1, &batch);
            let refs = dec.decode(&b).unwrap();
            assert_eq!(refs, batch);
            let max = b.new_series.iter().map(|d| d.r#ref).max().unwrap_or(0);
            assert!(max > last_ref);
            last_ref = max;
        }
        assert!(
            enc.defined_series() <= 2 * MIN_PRUNE + 1,
            "{}",
            enc.defined_series()
        );
        // The kept series is still defined: encoding it again defines nothing.
        assert!(enc.encode(9, &[kept]).new_series.is_empty());
    }

    #[test]
    fn undefined_ref_is_refused() {
        let batch = SampleBatch {
            sequence: 1,
            refs: vec![4],
            timestamps_ms: vec![1],
            values: vec![1.0],
            ..Default::default()
        };
        assert!(DictionaryDecoder::default().decode(&batch).is_none());
    }
}
