//! Collector side: turning samples into [`SampleBatch`]es with a per-stream series dictionary.

use std::collections::HashMap;
use std::sync::Arc;

use meshfed_model::Labels;

use crate::proto::{self, SampleBatch, SeriesDefinition};

/// One sample headed for the aggregator. Labels are shared so a scrape does not copy them.
#[derive(Clone, Debug)]
pub struct OutgoingSample {
    /// The series, `__name__` included.
    pub labels: Arc<Labels>,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The value (may be a staleness marker).
    pub value: f64,
}

/// The series a stream has defined so far. A new stream starts with an empty dictionary, so after
/// a reconnect every series is defined again on first use.
#[derive(Debug, Default)]
pub struct StreamEncoder {
    refs: HashMap<Arc<Labels>, u64>,
    next_sequence: u64,
}

impl StreamEncoder {
    /// A fresh dictionary for a new stream.
    pub fn new() -> Self {
        Self {
            refs: HashMap::new(),
            next_sequence: 1,
        }
    }

    /// Number of series defined on this stream.
    pub fn defined_series(&self) -> usize {
        self.refs.len()
    }

    /// Encodes `samples` as the next batch on this stream.
    pub fn encode(&mut self, samples: &[OutgoingSample]) -> SampleBatch {
        let mut batch = SampleBatch {
            sequence: self.next_sequence,
            new_series: Vec::new(),
            refs: Vec::with_capacity(samples.len()),
            timestamps_ms: Vec::with_capacity(samples.len()),
            values: Vec::with_capacity(samples.len()),
        };
        self.next_sequence += 1;
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
    fn series_defined_once_per_stream() {
        let mut enc = StreamEncoder::new();
        let b1 = enc.encode(&[sample("a", 1.0), sample("b", 2.0), sample("a", 3.0)]);
        assert_eq!(b1.sequence, 1);
        assert_eq!(b1.new_series.len(), 2);
        assert_eq!(b1.refs, [1, 2, 1]);
        let b2 = enc.encode(&[sample("b", 4.0), sample("c", 5.0)]);
        assert_eq!(b2.sequence, 2);
        assert_eq!(b2.new_series.len(), 1);
        assert_eq!(b2.new_series[0].r#ref, 3);
        assert_eq!(b2.refs, [2, 3]);
    }
}
