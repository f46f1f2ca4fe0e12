//! Software prefetch for the graph's per-scrape loops. At 440,000 series the blocks' rows do
//! not fit in any cache and each block costs a few memory reads; a loop that knows which block
//! comes next asks for its memory early, so several blocks' reads are under way at once (see
//! `aggregator/benches/edge_table.rs`). A prefetch is only a hint: it never faults and never
//! changes what the program computes.

/// Starts bringing the cache line holding `p` into the nearest cache, as a non-temporal read
/// (`prefetchnta`): each line is used once or twice per scrape, and keeping it out of the shared
/// cache leaves that to the store's working set (in the A/B of `bench/graph/run.sh` this was
/// no worse than `prefetcht0`, within the noise, with the graph's upkeep ~0.5 ms cheaper).
#[inline(always)]
pub(crate) fn line<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    // SAFETY: `prefetchnta` does not access memory architecturally: it is defined for any
    // address, faults on none, and has no effect on program state.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p.cast::<i8>(), std::arch::x86_64::_MM_HINT_NTA);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// [`line`] for every cache line of `items`.
#[inline(always)]
pub(crate) fn slice<T>(items: &[T]) {
    let bytes = std::mem::size_of_val(items);
    let start = items.as_ptr().cast::<u8>();
    let mut offset = 0;
    while offset < bytes {
        line(start.wrapping_add(offset));
        offset += 64;
    }
    if bytes > 0 {
        line(start.wrapping_add(bytes - 1));
    }
}

/// [`line`] for every cache line of `value`.
#[inline(always)]
pub(crate) fn value<T>(value: &T) {
    slice(std::slice::from_ref(value));
}
