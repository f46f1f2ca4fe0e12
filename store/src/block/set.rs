//! The published set of blocks: a snapshot readers clone (an `Arc`) so a query sees one consistent
//! set while maintenance swaps in another.

use std::sync::Arc;

use meshfed_model::Sample;

use super::Block;
use crate::postings::SeriesId;

/// Blocks in time order and the head's lower bound for reads: samples before `floor` are read
/// from blocks, the rest from the head (so a sample briefly in both is returned once).
#[derive(Clone, Debug)]
pub(crate) struct BlockSet {
    pub(crate) blocks: Vec<Arc<Block>>,
    pub(crate) floor: i64,
}

impl Default for BlockSet {
    fn default() -> Self {
        Self {
            blocks: Vec::new(),
            floor: i64::MIN,
        }
    }
}

impl BlockSet {
    fn in_range(&self, mint: i64, maxt: i64) -> impl Iterator<Item = &Arc<Block>> {
        let maxt = maxt.min(self.floor.saturating_sub(1));
        self.blocks
            .iter()
            .filter(move |b| mint <= maxt && b.start <= maxt && b.end > mint)
    }

    /// Appends the block samples of `id` in `[mint, maxt]` (and before the floor) to `out`.
    pub(crate) fn read_into(&self, id: SeriesId, mint: i64, maxt: i64, out: &mut Vec<Sample>) {
        let top = maxt.min(self.floor.saturating_sub(1));
        for b in self.in_range(mint, maxt) {
            b.read_into(id, mint, top, out);
        }
    }

    /// Whether a block holds a sample of `id` in `[mint, maxt]` before the floor.
    pub(crate) fn has_sample_in(&self, id: SeriesId, mint: i64, maxt: i64) -> bool {
        let top = maxt.min(self.floor.saturating_sub(1));
        self.in_range(mint, maxt).any(|b| b.has_sample_in(id, mint, top))
    }

    /// Total bytes of the block files.
    pub(crate) fn bytes(&self) -> u64 {
        self.blocks.iter().map(|b| b.bytes).sum()
    }

    /// Total samples in blocks.
    pub(crate) fn samples(&self) -> u64 {
        self.blocks.iter().map(|b| b.samples).sum()
    }
}
