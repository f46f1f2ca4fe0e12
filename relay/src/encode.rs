//! Turning samples into [`SampleBatch`]es with a series dictionary: each series is defined once
//! (labels and a ref) and later named by its ref. The relay stream and each disk-buffer segment
//! keep their own dictionary.

use std::collections::HashMap;
use std::sync::Arc;

use meshfed_model::{Labels, LabelsBuilder};

use crate::proto::{self, SampleBatch, SeriesDefinition};

/// One sample headed for the aggregator. Labels are shared so a scrape does not copy them.
#[derive(Clone, Debug, PartialEq)]
pub struct OutgoingSample {
    /// The series, `__name__` included.
    pub labels: Arc<Labels>,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The value (may be a staleness marker).
    pub value: f64,
}

/// The series a stream (or buffer segment) has defined so far.
#[derive(Debug, Default)]
pub struct StreamEncoder {
    refs: HashMap<Arc<Labels>, u64>,
}

impl StreamEncoder {
    /// A fresh, empty dictionary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of series defined so far.
    pub fn defined_series(&self) -> usize {
        self.refs.len()
    }

    /// Encodes `samples` as a batch with `sequence`, defining series new to this dictionary.
    pub fn encode(&mut self, sequence: u64, samples: &[OutgoingSample]) -> SampleBatch {
        let mut batch = SampleBatch {
            sequence,
            new_series: Vec::new(),
            refs: Vec::with_capacity(samples.len()),
            timestamps_ms: Vec::with_capacity(samples.len()),
            values: Vec::with_capacity(samples.len()),
        };
        for s in samples {
            let next = self.refs.len() as u64 + 1;
            let series_ref = *self.refs.entry(Arc::clone(&s.labels)).or_insert_with(|| {
                batch.new_series.push(SeriesDefinition {
                    r#ref: next,
                    labels: s
                        .labels
                        .iter()
                        .map(|l| proto::Label {
                            name: l.name.clone(),
                            value: l.value.clone(),
                        })
                        .collect(),
                });
                next
            });
            batch.refs.push(series_ref);
            batch.timestamps_ms.push(s.timestamp_ms);
            batch.values.push(s.value);
        }
        batch
    }
}

/// The reverse of [`StreamEncoder`] for data the collector wrote itself (its disk buffer):
/// rebuilds samples with labels from a sequence of batches sharing one dictionary.
#[derive(Debug, Default)]
pub struct DictionaryDecoder {
    series: HashMap<u64, Arc<Labels>>,
}

impl DictionaryDecoder {
    /// Decodes one batch; `None` if it names a ref never defined or its columns differ in length.
    pub fn decode(&mut self, batch: &SampleBatch) -> Option<Vec<OutgoingSample>> {
        for def in &batch.new_series {
            let mut b = LabelsBuilder::with_capacity(def.labels.len());
            for l in &def.labels {
                b.set(l.name.as_str(), l.value.as_str());
            }
            self.series.insert(def.r#ref, Arc::new(b.build()));
        }
        let n = batch.refs.len();
        if batch.timestamps_ms.len() != n || batch.values.len() != n {
            return None;
        }
        (0..n)
            .map(|i| {
                let labels = Arc::clone(self.series.get(&batch.refs[i])?);
                Some(OutgoingSample {
                    labels,
                    timestamp_ms: batch.timestamps_ms[i],
                    value: batch.values[i],
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, v: f64) -> OutgoingSample {
        OutgoingSample {
            labels: Arc::new(Labels::from_pairs([("__name__", name)])),
            timestamp_ms: 1000,
            value: v,
        }
    }

    #[test]
    fn series_defined_once_and_decoded_back() {
        let mut enc = StreamEncoder::new();
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
