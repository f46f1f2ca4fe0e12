//! One series' in-memory samples: a list of closed, immutable chunks and the open chunk new samples
//! go to, plus the series' time bounds readable without its lock.
//!
//! Block cutting copies the samples older than a boundary out (readers and appenders carry on),
//! and once the block is published drops them with [`MemSeries::drop_before`], re-encoding the one
//! chunk that straddles the boundary. Appends older than the store's lower bound (the newest cut)
//! are refused under the series lock, so none can slip in behind a cut.

use std::sync::atomic::{AtomicI64, Ordering};

use meshfed_model::Sample;
use parking_lot::RwLock;

use crate::chunk::{XorAppender, XorIter};
use crate::head_chunks::{ChunkLoc, ChunkView, HeadChunkFiles};

/// Bytes preallocated for a new open chunk; it grows as needed and is trimmed when closed.
const OPEN_CHUNK_BYTES: usize = 32;

/// `Chunks::open_min_t` of a series holding no sample is its lifecycle state (no field of its
/// own, so live series pay nothing for it): plain empty, …
const EMPTY: i64 = i64::MAX;
/// … marked by one forget round (still refs-valid; any append or lookup unmarks it), …
const MARKED: i64 = i64::MIN;
/// … or forgotten: its labels left the registry and appends by its ref are refused.
const FORGOTTEN: i64 = i64::MIN + 1;

/// What a forget round did to one empty series ([`MemSeries::forget_step`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ForgetStep {
    /// It holds samples again (or is already forgotten): nothing to do.
    Keep,
    /// First round: marked.
    Marked,
    /// Second round with no sample or lookup in between: now forgotten.
    Forgotten,
}

/// What became of one appended sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum AppendOutcome {
    /// Stored.
    Appended,
    /// An identical repeat of the newest sample; ignored.
    Unchanged,
    /// Older than the newest sample, whose timestamp is given.
    OutOfOrder(i64),
    /// Same timestamp as the newest sample with a different value.
    Duplicate,
    /// Older than the store's lower bound: that time range is already in blocks.
    TooOld,
    /// The series was forgotten (it had no data left); its ref is dead.
    Forgotten,
}

/// Where a closed chunk's bytes are.
#[derive(Debug)]
enum ChunkData {
    /// On the heap (in-memory stores, a chunk re-encoded by a cut, or after a file write error).
    Heap(Box<[u8]>),
    /// In a memory-mapped head-chunk file (`head_chunks.rs`).
    Mapped(ChunkLoc),
}

/// A full chunk that no longer changes.
#[derive(Debug)]
struct ClosedChunk {
    min_t: i64,
    /// `max_t - min_t`: a chunk is closed early rather than span more than `u32::MAX` ms.
    span: u32,
    count: u16,
    data: ChunkData,
}

impl ClosedChunk {
    fn max_t(&self) -> i64 {
        self.min_t.saturating_add(i64::from(self.span))
    }

    fn bytes<'a>(&'a self, view: &'a ChunkView<'_>) -> &'a [u8] {
        match &self.data {
            ChunkData::Heap(b) => b,
            ChunkData::Mapped(loc) => view.bytes(*loc),
        }
    }
}

/// `max_t - min_t` if it fits a chunk's span.
fn span(min_t: i64, max_t: i64) -> Option<u32> {
    max_t.checked_sub(min_t).and_then(|d| u32::try_from(d).ok())
}

/// A series' chunks.
#[derive(Debug)]
struct Chunks {
    closed: Vec<ClosedChunk>,
    /// Holds the newest sample whenever the series has any, except right after an open reused a
    /// chunk file's chunk (then the newest is the last closed chunk's `max_t`): a full chunk is
    /// closed only when the next sample arrives.
    open: XorAppender,
    open_min_t: i64,
}

impl Chunks {
    /// No closed chunk and nothing in the open one.
    fn holds_nothing(&self) -> bool {
        self.closed.is_empty() && self.open.count() == 0
    }

    /// Closes the open chunk (which holds samples): to a chunk file if there is one, else kept
    /// on the heap.
    fn close_open(&mut self, series: u64, files: &HeadChunkFiles) {
        let Some((max_t, _)) = self.open.last() else {
            return;
        };
        let full = std::mem::replace(&mut self.open, XorAppender::with_capacity(OPEN_CHUNK_BYTES));
        let (min_t, count) = (self.open_min_t, full.count());
        let data = match files.write(series, min_t, max_t, count, full.bytes()) {
            Some(loc) => ChunkData::Mapped(loc),
            None => ChunkData::Heap(full.finish()),
        };
        // Exactly sized: a 2 h head holds 3 closed chunks, and a doubling Vec would hold 4.
        self.closed.reserve_exact(1);
        self.closed.push(ClosedChunk {
            min_t,
            span: span(min_t, max_t).unwrap_or(u32::MAX),
            count,
            data,
        });
        self.open_min_t = EMPTY;
    }
}

/// The samples of one series.
#[derive(Debug)]
pub(crate) struct MemSeries {
    /// Oldest sample's timestamp, `i64::MAX` while empty.
    min_t: AtomicI64,
    /// Newest sample's timestamp, `i64::MIN` while empty.
    max_t: AtomicI64,
    chunks: RwLock<Chunks>,
}

impl Default for MemSeries {
    fn default() -> Self {
        Self {
            min_t: AtomicI64::new(i64::MAX),
            max_t: AtomicI64::new(i64::MIN),
            chunks: RwLock::new(Chunks {
                closed: Vec::new(),
                open: XorAppender::with_capacity(0),
                open_min_t: EMPTY,
            }),
        }
    }
}

impl MemSeries {
    /// Whether the series' time bounds overlap `[mint, maxt]`; read without taking its lock.
    pub(crate) fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        let (min_t, max_t) = (
            self.min_t.load(Ordering::Acquire),
            self.max_t.load(Ordering::Acquire),
        );
        // An empty series has min_t > max_t, which also keeps it out of `[i64::MIN, i64::MAX]`.
        min_t <= max_t && min_t <= maxt && max_t >= mint
    }

    /// Whether the series has a sample in `[mint, maxt]`. Answered from its bounds alone unless
    /// the range falls strictly between its oldest and newest samples without containing a chunk
    /// boundary; then one chunk is decoded.
    pub(crate) fn has_sample_in(&self, mint: i64, maxt: i64, files: &HeadChunkFiles) -> bool {
        if mint > maxt || !self.overlaps(mint, maxt) {
            return false;
        }
        if mint <= self.min_t.load(Ordering::Acquire) || maxt >= self.max_t.load(Ordering::Acquire) {
            return true;
        }
        let chunks = self.chunks.read();
        let view = files.view();
        let first = chunks.closed.partition_point(|c| c.max_t() < mint);
        let (bytes, count, min_t) = match chunks.closed.get(first) {
            Some(c) => (c.bytes(&view), c.count, c.min_t),
            None => (chunks.open.bytes(), chunks.open.count(), chunks.open_min_t),
        };
        if count == 0 || min_t > maxt {
            return false;
        }
        min_t >= mint
            || XorIter::new(bytes, count)
                .find(|&(t, _)| t >= mint)
                .is_some_and(|(t, _)| t <= maxt)
    }

    /// Appends a sample to series `id`, cutting a new chunk once the open one holds
    /// `samples_per_chunk` (the full one goes to `files`).
    pub(crate) fn append(
        &self,
        id: u64,
        t: i64,
        v: f64,
        samples_per_chunk: u16,
        min_valid: &AtomicI64,
        files: &HeadChunkFiles,
    ) -> AppendOutcome {
        let mut chunks = self.chunks.write();
        // Read under the lock: a cut raises the bound before it takes this lock to copy samples.
        if t < min_valid.load(Ordering::Acquire) {
            return AppendOutcome::TooOld;
        }
        if chunks.holds_nothing() && chunks.open_min_t == FORGOTTEN {
            return AppendOutcome::Forgotten;
        }
        let newest = match chunks.open.last() {
            Some(last) => Some(last),
            // Only after an open reused a chunk file's chunk as the newest; decoded on a repeat.
            None => chunks.closed.last().map(|c| {
                let bits = if t == c.max_t() {
                    let view = files.view();
                    XorIter::new(c.bytes(&view), c.count)
                        .last()
                        .map_or(!v.to_bits(), |(_, v)| v.to_bits())
                } else {
                    0
                };
                (c.max_t(), bits)
            }),
        };
        if let Some((last_t, last_bits)) = newest {
            if t < last_t {
                return AppendOutcome::OutOfOrder(last_t);
            }
            if t == last_t {
                return if last_bits == v.to_bits() {
                    AppendOutcome::Unchanged
                } else {
                    AppendOutcome::Duplicate
                };
            }
            let open = chunks.open.count();
            if open > 0 && (open >= samples_per_chunk || span(chunks.open_min_t, t).is_none()) {
                chunks.close_open(id, files);
            }
        }
        if chunks.open.count() == 0 {
            chunks.open_min_t = t;
            if chunks.open.capacity() == 0 {
                chunks.open = XorAppender::with_capacity(OPEN_CHUNK_BYTES);
            }
        }
        if chunks.open.append(t, v).is_err() {
            // Unreachable: t is greater than the open chunk's newest timestamp, checked above.
            return AppendOutcome::OutOfOrder(chunks.open.last().map_or(t, |l| l.0));
        }
        if self.min_t.load(Ordering::Relaxed) == i64::MAX {
            self.min_t.store(t, Ordering::Release);
        }
        self.max_t.store(t, Ordering::Release);
        AppendOutcome::Appended
    }

    /// At open: takes a chunk file's chunk `[min_t, max_t]` of `count` samples at `loc` as the
    /// series' next closed chunk (closing the open one first), if the series' newest sample is
    /// older than `min_t`. Returns whether it did.
    pub(crate) fn attach(
        &self,
        id: u64,
        loc: ChunkLoc,
        (min_t, max_t, count): (i64, i64, u16),
        files: &HeadChunkFiles,
    ) -> bool {
        let mut chunks = self.chunks.write();
        let Some(span) = span(min_t, max_t) else {
            return false;
        };
        if count == 0 || self.max_t().is_some_and(|newest| newest >= min_t) || chunks.open_min_t == FORGOTTEN
        {
            return false;
        }
        chunks.close_open(id, files);
        chunks.closed.reserve_exact(1);
        chunks.closed.push(ClosedChunk {
            min_t,
            span,
            count,
            data: ChunkData::Mapped(loc),
        });
        chunks.open_min_t = EMPTY;
        if self.min_t.load(Ordering::Relaxed) == i64::MAX {
            self.min_t.store(min_t, Ordering::Release);
        }
        self.max_t.store(max_t, Ordering::Release);
        true
    }

    /// Replaces `out` with the samples in `[mint, maxt]`, oldest first.
    pub(crate) fn read(&self, mint: i64, maxt: i64, out: &mut Vec<Sample>, files: &HeadChunkFiles) {
        out.clear();
        self.read_into(mint, maxt, out, files);
    }

    /// Appends the samples in `[mint, maxt]` to `out`, oldest first.
    pub(crate) fn read_into(&self, mint: i64, maxt: i64, out: &mut Vec<Sample>, files: &HeadChunkFiles) {
        if mint > maxt || !self.overlaps(mint, maxt) {
            return;
        }
        let chunks = self.chunks.read();
        let view = files.view();
        let first = chunks.closed.partition_point(|c| c.max_t() < mint);
        let in_range = chunks.closed[first..].iter().take_while(|c| c.min_t <= maxt);
        // Grow the caller's buffer at most once.
        out.reserve(in_range.map(|c| usize::from(c.count)).sum::<usize>() + usize::from(chunks.open.count()));
        for c in &chunks.closed[first..] {
            if c.min_t > maxt {
                return;
            }
            push_range(XorIter::new(c.bytes(&view), c.count), mint, maxt, out);
        }
        if chunks.open.count() > 0 && chunks.open_min_t <= maxt {
            push_range(
                XorIter::new(chunks.open.bytes(), chunks.open.count()),
                mint,
                maxt,
                out,
            );
        }
    }

    /// The newest sample's timestamp, if any.
    pub(crate) fn max_t(&self) -> Option<i64> {
        let t = self.max_t.load(Ordering::Acquire);
        (t != i64::MIN || self.min_t.load(Ordering::Acquire) != i64::MAX).then_some(t)
    }

    /// Drops the samples older than `boundary`; returns how many. A mapped chunk straddling the
    /// boundary is re-encoded onto the heap, so no mapped chunk before `boundary` stays referenced.
    pub(crate) fn drop_before(&self, boundary: i64, files: &HeadChunkFiles) -> u64 {
        if self.min_t.load(Ordering::Acquire) >= boundary {
            return 0;
        }
        let mut chunks = self.chunks.write();
        let whole = chunks.closed.partition_point(|c| c.max_t() < boundary);
        let mut removed: u64 = chunks.closed.drain(..whole).map(|c| u64::from(c.count)).sum();
        if let Some(c) = chunks.closed.first_mut() {
            if c.min_t < boundary {
                let view = files.view();
                let (kept, rest) = reencode(c.bytes(&view), c.count, boundary);
                drop(view);
                let max_t = c.max_t();
                removed += u64::from(c.count - kept.count());
                c.min_t = rest.unwrap_or(c.min_t);
                c.span = span(c.min_t, max_t).unwrap_or(0);
                c.count = kept.count();
                c.data = ChunkData::Heap(kept.finish());
            }
        } else if chunks.open.count() > 0 && chunks.open_min_t < boundary {
            let (kept, rest) = reencode(chunks.open.bytes(), chunks.open.count(), boundary);
            removed += u64::from(chunks.open.count() - kept.count());
            chunks.open_min_t = rest.unwrap_or(EMPTY);
            chunks.open = kept;
        }
        let new_min = match chunks.closed.first() {
            Some(c) => c.min_t,
            None if chunks.open.count() > 0 => chunks.open_min_t,
            None => i64::MAX,
        };
        self.min_t.store(new_min, Ordering::Release);
        if new_min == i64::MAX {
            self.max_t.store(i64::MIN, Ordering::Release);
        }
        removed
    }

    /// Whether the series holds no sample (read without its lock).
    pub(crate) fn is_empty(&self) -> bool {
        self.min_t.load(Ordering::Acquire) == i64::MAX
    }

    /// One forget round for an empty series: marks it, or forgets it if a previous round marked
    /// it and neither an append nor [`MemSeries::touch`] came since.
    pub(crate) fn forget_step(&self) -> ForgetStep {
        let mut chunks = self.chunks.write();
        if !chunks.holds_nothing() {
            return ForgetStep::Keep;
        }
        match chunks.open_min_t {
            MARKED => {
                chunks.open_min_t = FORGOTTEN;
                chunks.open = XorAppender::with_capacity(0);
                chunks.closed = Vec::new();
                ForgetStep::Forgotten
            }
            FORGOTTEN => ForgetStep::Keep,
            _ => {
                chunks.open_min_t = MARKED;
                ForgetStep::Marked
            }
        }
    }

    /// Unmarks a series marked for forgetting: someone looked it up and may append to it.
    pub(crate) fn touch(&self) {
        if self.is_empty() && self.chunks.read().open_min_t == MARKED {
            let mut chunks = self.chunks.write();
            if chunks.holds_nothing() && chunks.open_min_t == MARKED {
                chunks.open_min_t = EMPTY;
            }
        }
    }

    /// Heap bytes held by the chunks, plus the series itself (mapped chunks count only their
    /// entry: their bytes are in the page cache, not the heap).
    pub(crate) fn heap_bytes(&self) -> usize {
        let chunks = self.chunks.read();
        size_of::<Self>()
            + chunks.closed.capacity() * size_of::<ClosedChunk>()
            + chunks
                .closed
                .iter()
                .map(|c| match &c.data {
                    ChunkData::Heap(b) => b.len(),
                    ChunkData::Mapped(_) => 0,
                })
                .sum::<usize>()
            + chunks.open.capacity()
    }
}

/// A chunk of the samples at or after `boundary` of the given chunk, and the first one's time.
fn reencode(bytes: &[u8], count: u16, boundary: i64) -> (XorAppender, Option<i64>) {
    let mut kept = XorAppender::with_capacity(OPEN_CHUNK_BYTES);
    let mut first = None;
    for (t, v) in XorIter::new(bytes, count).filter(|&(t, _)| t >= boundary) {
        first.get_or_insert(t);
        // Decoded timestamps strictly increase, so this cannot fail.
        let _ = kept.append(t, v);
    }
    (kept, first)
}

fn push_range(iter: XorIter<'_>, mint: i64, maxt: i64, out: &mut Vec<Sample>) {
    for (t, v) in iter {
        if t > maxt {
            return;
        }
        if t >= mint {
            out.push(Sample::new(t, v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static NO_BOUND: AtomicI64 = AtomicI64::new(i64::MIN);
    static NO_FILES: HeadChunkFiles = HeadChunkFiles::none();

    #[test]
    fn drop_before_keeps_the_rest_readable() {
        for boundary in [0, 5, 30, 35, 95, 1000] {
            let s = MemSeries::default();
            for i in 0..10 {
                s.append(0, i * 10, i as f64, 3, &NO_BOUND, &NO_FILES);
            }
            let want: Vec<(i64, u64)> = read_all(&s).into_iter().filter(|&(t, _)| t >= boundary).collect();
            let removed = s.drop_before(boundary, &NO_FILES);
            assert_eq!(removed as usize, 10 - want.len(), "boundary {boundary}");
            assert_eq!(read_all(&s), want, "boundary {boundary}");
            assert_eq!(s.has_sample_in(i64::MIN, i64::MAX, &NO_FILES), !want.is_empty());
            assert_eq!(
                s.append(0, 1000, 1.0, 3, &NO_BOUND, &NO_FILES),
                AppendOutcome::Appended
            );
        }
    }

    fn read_all(s: &MemSeries) -> Vec<(i64, u64)> {
        let mut out = Vec::new();
        s.read(i64::MIN, i64::MAX, &mut out, &NO_FILES);
        out.iter().map(|s| (s.timestamp_ms, s.value.to_bits())).collect()
    }

    #[test]
    fn chunks_are_cut_and_read_across() {
        let s = MemSeries::default();
        for i in 0..10 {
            assert_eq!(
                s.append(0, i * 10, i as f64, 3, &NO_BOUND, &NO_FILES),
                AppendOutcome::Appended
            );
        }
        assert_eq!(s.chunks.read().closed.len(), 3);
        assert_eq!(read_all(&s).len(), 10);
        let mut out = Vec::new();
        s.read(25, 61, &mut out, &NO_FILES);
        let ts: Vec<i64> = out.iter().map(|s| s.timestamp_ms).collect();
        assert_eq!(ts, [30, 40, 50, 60]);
        s.read(61, 25, &mut out, &NO_FILES);
        assert!(out.is_empty());
        // Bounds overlap but no sample lies in between, inside a chunk and across a chunk gap.
        for (mint, maxt, want) in [
            (31, 39, false),
            (51, 59, false),
            (31, 40, true),
            (21, 29, false),
            (0, 0, true),
        ] {
            assert_eq!(s.has_sample_in(mint, maxt, &NO_FILES), want, "[{mint}, {maxt}]");
        }
        assert!(
            s.has_sample_in(85, 95, &NO_FILES)
                && !s.has_sample_in(91, 99, &NO_FILES)
                && !s.has_sample_in(-5, -1, &NO_FILES)
        );
        assert!(!MemSeries::default().has_sample_in(i64::MIN, i64::MAX, &NO_FILES));
    }

    #[test]
    fn closed_chunk_entries_stay_small() {
        // 8 B of location, niche-packed beside the heap variant's box.
        assert_eq!(size_of::<ChunkData>(), 16);
        assert_eq!(size_of::<ClosedChunk>(), 32);
    }

    #[test]
    fn order_rules() {
        let s = MemSeries::default();
        assert_eq!(
            s.append(0, 100, 1.0, 120, &NO_BOUND, &NO_FILES),
            AppendOutcome::Appended
        );
        assert_eq!(
            s.append(0, 100, 1.0, 120, &NO_BOUND, &NO_FILES),
            AppendOutcome::Unchanged
        );
        assert_eq!(
            s.append(0, 100, 2.0, 120, &NO_BOUND, &NO_FILES),
            AppendOutcome::Duplicate
        );
        assert_eq!(
            s.append(0, 99, 1.0, 120, &NO_BOUND, &NO_FILES),
            AppendOutcome::OutOfOrder(100)
        );
        assert!(s.overlaps(100, 100) && !s.overlaps(101, 200) && !s.overlaps(0, 99));
        assert_eq!(read_all(&s), [(100, 1f64.to_bits())]);
    }

    #[test]
    fn stale_marker_repeat_is_unchanged_but_plain_nan_differs() {
        let s = MemSeries::default();
        let stale = f64::from_bits(meshfed_model::STALE_NAN_BITS);
        assert_eq!(
            s.append(0, 1, stale, 120, &NO_BOUND, &NO_FILES),
            AppendOutcome::Appended
        );
        assert_eq!(
            s.append(0, 1, stale, 120, &NO_BOUND, &NO_FILES),
            AppendOutcome::Unchanged
        );
        assert_eq!(
            s.append(0, 1, f64::NAN, 120, &NO_BOUND, &NO_FILES),
            AppendOutcome::Duplicate
        );
        assert_eq!(read_all(&s), [(1, meshfed_model::STALE_NAN_BITS)]);
    }
}
