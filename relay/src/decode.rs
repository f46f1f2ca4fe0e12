//! Aggregator side: validating batches and resolving stream-local refs to the sink's series ids.

use std::collections::HashMap;

use meshfed_model::{Labels, LabelsBuilder, METRIC_NAME};

use crate::encode::{ValueState, new_series, sample_columns};
use crate::proto::{SampleBatch, SeriesDefinition};
use crate::{CLUSTER_LABEL, Error, Result};

/// A sample resolved to the sink's series id.
pub type ResolvedSample = (u64, i64, f64);

/// The per-stream dictionary on the aggregator: stream ref → the sink's series id.
#[derive(Debug)]
pub struct StreamDecoder {
    cluster: String,
    refs: HashMap<u64, u64>,
    values: ValueState,
}

impl StreamDecoder {
    /// A decoder for a stream whose identity is `cluster`.
    pub fn new(cluster: impl Into<String>) -> Self {
        Self {
            cluster: cluster.into(),
            refs: HashMap::new(),
            values: ValueState::default(),
        }
    }

    /// Series defined on this stream so far.
    pub fn defined_series(&self) -> usize {
        self.refs.len()
    }

    /// The stream's cluster.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// Validates `batch`, registers its new series through `register` (which returns the sink's id
    /// for a label set) and fills `out` with the resolved samples.
    ///
    /// Every series is stamped with the stream's `cluster` label; a series that carries a different
    /// `cluster` is refused, so a collector can only ever speak for its own cluster.
    pub fn decode(
        &mut self,
        batch: &SampleBatch,
        mut register: impl FnMut(&Labels) -> u64,
        out: &mut Vec<ResolvedSample>,
    ) -> Result<()> {
        out.clear();
        let seq = batch.sequence;
        let defs = new_series(batch).map_err(|reason| Error::BadColumns {
            sequence: seq,
            reason,
        })?;
        for def in defs.iter() {
            let labels = self.series_labels(seq, def)?;
            let id = register(&labels);
            self.refs.insert(def.r#ref, id);
        }
        let c = sample_columns(batch).map_err(|e| Error::BadColumns {
            sequence: seq,
            reason: e.0,
        })?;
        if !c.is_consistent() {
            return Err(Error::RaggedColumns {
                sequence: seq,
                refs: c.refs.len(),
                timestamps: c.timestamps_ms.len(),
                values: c.values.len(),
            });
        }
        out.reserve(c.refs.len());
        for i in 0..c.refs.len() {
            let r = c.refs[i];
            let id = *self.refs.get(&r).ok_or(Error::UnknownRef {
                sequence: seq,
                series_ref: r,
            })?;
            out.push((id, c.timestamps_ms[i], c.value(i, &mut self.values)));
        }
        Ok(())
    }

    fn series_labels(&self, sequence: u64, def: &SeriesDefinition) -> Result<Labels> {
        let invalid = |reason| Error::InvalidSeries {
            sequence,
            series_ref: def.r#ref,
            reason,
        };
        let mut b = LabelsBuilder::with_capacity(def.labels.len() + 1);
        let mut prev: Option<&str> = None;
        for l in &def.labels {
            if l.name.is_empty() {
                return Err(invalid("empty label name"));
            }
            if prev.is_some_and(|p| p >= l.name.as_str()) {
                return Err(invalid("labels not sorted or duplicated"));
            }
            prev = Some(&l.name);
            if l.name == CLUSTER_LABEL && l.value != self.cluster {
                return Err(Error::ForeignCluster {
                    sequence,
                    cluster: self.cluster.clone(),
                    claimed: l.value.clone(),
                });
            }
            b.set(l.name.as_str(), l.value.as_str());
        }
        if b.get(METRIC_NAME).is_none() {
            return Err(invalid("no metric name"));
        }
        b.set(CLUSTER_LABEL, self.cluster.as_str());
        Ok(b.build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{OutgoingSample, StreamEncoder};

    fn out(labels: &[(&str, &str)], v: f64) -> OutgoingSample {
        OutgoingSample {
            labels: Labels::from_pairs(labels.iter().copied()).into(),
            timestamp_ms: 5,
            value: v,
        }
    }

    #[test]
    fn round_trip_stamps_cluster() {
        let mut enc = StreamEncoder::new();
        let mut dec = StreamDecoder::new("c1");
        let mut registered = Vec::new();
        let mut resolved = Vec::new();
        let up = out(&[("__name__", "up"), ("job", "x")], 1.0);
        let batch = enc.encode(1, std::slice::from_ref(&up));
        dec.decode(
            &batch,
            |l| {
                registered.push(l.clone());
                7
            },
            &mut resolved,
        )
        .unwrap();
        assert_eq!(resolved, [(7, 5, 1.0)]);
        assert_eq!(registered[0].get("cluster"), Some("c1"));
        // The second batch reuses the definition (the collector hands the same label set).
        let batch = enc.encode(2, &[OutgoingSample { value: 2.0, ..up }]);
        assert!(batch.new_series.is_empty() && batch.new_series_zstd.is_empty());
        dec.decode(&batch, |_| unreachable!(), &mut resolved).unwrap();
        assert_eq!(resolved, [(7, 5, 2.0)]);
    }

    #[test]
    fn foreign_cluster_refused() {
        let mut enc = StreamEncoder::new();
        let mut dec = StreamDecoder::new("cluster-2");
        let batch = enc.encode(1, &[out(&[("__name__", "up"), ("cluster", "cluster-1")], 1.0)]);
        let err = dec.decode(&batch, |_| 1, &mut Vec::new()).unwrap_err();
        assert_eq!(err.reason(), "foreign_cluster");
    }

    #[test]
    fn unknown_ref_and_ragged_columns_refused() {
        let mut dec = StreamDecoder::new("c");
        let batch = SampleBatch {
            sequence: 1,
            refs: vec![9],
            timestamps_ms: vec![1],
            values: vec![1.0],
            ..Default::default()
        };
        assert_eq!(
            dec.decode(&batch, |_| 1, &mut Vec::new()).unwrap_err().reason(),
            "unknown_ref"
        );
        let batch = SampleBatch {
            sequence: 2,
            refs: vec![9],
            timestamps_ms: vec![],
            values: vec![1.0],
            ..Default::default()
        };
        assert_eq!(
            dec.decode(&batch, |_| 1, &mut Vec::new()).unwrap_err().reason(),
            "ragged_columns"
        );
    }
}
