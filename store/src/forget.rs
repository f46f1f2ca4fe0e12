//! Forgetting series whose data is gone, so churn (pods, deploys) does not grow the registry,
//! postings and symbol table forever.
//!
//! A series is forgotten once it holds no sample in the head or any block (retention deleted its
//! last block, or it was registered and never written) across two rounds, with no append and no
//! [`Store::get_or_create`] lookup of it in between. The first round marks it; any append or
//! lookup unmarks it; the second forgets it: its labels, hash entry, postings and symbol uses
//! go, its ref is refused from then on ([`crate::AppendError::UnknownSeries`]) and never handed
//! out again. [`Store::maintain`] runs one round per call, after retention.
//!
//! Contract for holders of refs (the relay's per-stream dictionary, cached writers): a ref stays
//! valid while its series keeps data; after a refusal as unknown, look the labels up again. The
//! next checkpoint omits forgotten series, so a restart does not bring them back.

use std::sync::atomic::Ordering;

use crate::Store;
use crate::head::ForgetStep;
use crate::postings::SeriesId;

/// Ids forgotten per registry write-lock hold, so lookups and queries wait briefly.
const FORGET_BATCH: usize = 4096;

/// What one forget round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForgetReport {
    /// Empty series marked by this round (forgotten by the next one unless used meanwhile).
    pub marked: usize,
    /// Series forgotten by this round.
    pub forgotten: usize,
}

impl Store {
    /// One forget round (see the module docs of `forget.rs` / `docs/store.md`): marks series
    /// holding no sample in the head or any block, and forgets the ones an earlier round marked
    /// that stayed unused. Walks every series: for maintenance, not hot paths.
    pub fn forget_empty_series(&self) -> ForgetReport {
        // Blocks change only under the maintenance mutex: hold it so none gains a series we
        // are about to forget.
        let _m = self.disk.as_ref().map(|d| d.maintenance.lock());
        let set = self.block_set();
        let n = self.registry.read().len();
        let mut in_blocks = vec![0u64; n.div_ceil(64)];
        for b in set.iter().flat_map(|s| s.blocks.iter()) {
            for id in b.ids() {
                if let Some(w) = in_blocks.get_mut(id as usize / 64) {
                    *w |= 1 << (id % 64);
                }
            }
        }
        let candidates: Vec<SeriesId> = (0..n as SeriesId)
            .filter(|&id| in_blocks[id as usize / 64] & (1 << (id % 64)) == 0)
            .filter(|&id| self.table.with(u64::from(id), |s| s.is_empty()).unwrap_or(false))
            .collect();
        let marked = std::sync::atomic::AtomicUsize::new(0);
        let mut forgotten = 0;
        for batch in candidates.chunks(FORGET_BATCH) {
            forgotten += self.registry.forget(batch, |id| {
                match self.table.with(u64::from(id), |s| s.forget_step()) {
                    Some(ForgetStep::Forgotten) => true,
                    Some(ForgetStep::Marked) => {
                        marked.fetch_add(1, Ordering::Relaxed);
                        false
                    }
                    Some(ForgetStep::Keep) | None => false,
                }
            });
        }
        if forgotten > 0 {
            tracing::debug!(forgotten, "Forgot series with no data left.");
        }
        ForgetReport {
            marked: marked.into_inner(),
            forgotten,
        }
    }
}
