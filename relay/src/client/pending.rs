//! Where the relay client keeps batches until the aggregator acknowledges them: in memory, or in
//! the on-disk [`DiskBuffer`] that also survives restarts.

use std::collections::VecDeque;
use std::sync::Arc;

use tracing::warn;

use crate::buffer::DiskBuffer;
use crate::encode::OutgoingSample;
use crate::{Error, Result};

/// Where batches wait for their acknowledgement.
pub(super) enum Pending {
    Memory {
        batches: VecDeque<(u64, Arc<Vec<OutgoingSample>>)>,
        next: u64,
        epoch: u64,
    },
    Disk(DiskBuffer),
}

impl Pending {
    pub(super) fn epoch(&self) -> u64 {
        match self {
            Pending::Memory { epoch, .. } => *epoch,
            Pending::Disk(b) => b.epoch(),
        }
    }

    pub(super) fn has_room(&self, max: usize) -> bool {
        match self {
            Pending::Memory { batches, .. } => batches.len() < max,
            Pending::Disk(_) => true,
        }
    }

    pub(super) fn record(&mut self, samples: Vec<OutgoingSample>) -> Result<(u64, Arc<Vec<OutgoingSample>>)> {
        match self {
            Pending::Memory { batches, next, .. } => {
                let seq = *next;
                *next += 1;
                let samples = Arc::new(samples);
                batches.push_back((seq, Arc::clone(&samples)));
                Ok((seq, samples))
            }
            Pending::Disk(b) => {
                let seq = b.append(&samples).map_err(|e| Error::Buffer(e.to_string()))?;
                Ok((seq, Arc::new(samples)))
            }
        }
    }

    pub(super) fn unacknowledged(&self) -> Result<Vec<(u64, Arc<Vec<OutgoingSample>>)>> {
        match self {
            Pending::Memory { batches, .. } => Ok(batches.iter().cloned().collect()),
            Pending::Disk(b) => Ok(b
                .unacknowledged()
                .map_err(|e| Error::Buffer(e.to_string()))?
                .into_iter()
                .map(|(s, v)| (s, Arc::new(v)))
                .collect()),
        }
    }

    pub(super) fn acknowledge(&mut self, sequence: u64) {
        match self {
            Pending::Memory { batches, .. } => {
                while batches.front().is_some_and(|(s, _)| *s <= sequence) {
                    batches.pop_front();
                }
            }
            Pending::Disk(b) => {
                if let Err(e) = b.acknowledge(sequence) {
                    warn!(error = %e, "Could not record an acknowledgement in the relay buffer.");
                }
            }
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        match self {
            Pending::Memory { batches, .. } => batches.is_empty(),
            Pending::Disk(b) => b.acked() + 1 >= b.next_sequence(),
        }
    }

    pub(super) fn dropped_samples(&self) -> u64 {
        match self {
            Pending::Memory { .. } => 0,
            Pending::Disk(b) => b.stats().dropped_samples,
        }
    }
}
