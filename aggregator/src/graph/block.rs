//! A block: the recent samples of the series scraped together (one edge as one proxy reports
//! it), kept as a columnar ring of rows. A row is one scrape: its timestamp, then one value per
//! series of the block, side by side; an absent value is a reserved NaN.
//!
//! Series scraped together share their timestamps, so a window's bounds are found once per
//! block instead of once per series, and the rates of all its series are read from two rows
//! lying next to each other in memory ([`Block::window_rates`]). Where a window is not that regular (a
//! series missed a scrape, joined late, or a counter reset inside the window) the block's
//! series are evaluated one by one with Prometheus' own `rate()` kernel, so the result is always
//! what `rate(…[w])` returns for each series.

use meshfed_model::Sample;

use crate::graph::prefetch;

/// Marks "no sample of this series in this row" (a NaN no parser or store produces: a value
/// with these bits is stored as the canonical NaN instead).
const ABSENT_BITS: u64 = 0x7ff8_6d65_7368_0001;

fn absent(v: f64) -> bool {
    v.to_bits() == ABSENT_BITS
}

/// Rows [`Block::with_retention`] reserves at most at once (a 1 s scrape interval and a 10m
/// window need 660).
const MAX_RESERVED_ROWS: usize = 1024;

/// What a row knows besides its values.
#[derive(Clone, Copy, Debug, Default)]
struct RowMeta {
    t: i64,
    /// Series with a value in this row.
    filled: u32,
    /// Some series' value is below its previous one (a counter reset).
    reset: bool,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Block {
    /// Series (columns).
    n: usize,
    /// Per series: its newest value as of the last [`Block::settle`] (NaN before its first).
    last: Vec<f64>,
    /// Rows up to this time have been settled (resets marked, increments handed out).
    settled_t: i64,
    /// Samples stored into settled rows since (a series that missed its row and came late):
    /// column and value, settled with the next call.
    late: Vec<(u32, f64)>,
    /// Ring of row metadata and of row values (`n` per row), `cap` rows each.
    meta: Vec<RowMeta>,
    values: Vec<f64>,
    start: usize,
    len: usize,
    /// Rows of the ring that are not full or hold a reset: while there are none, every window
    /// is regular without looking at its rows.
    irregular: usize,
    /// The newest row's time (`i64::MIN` without rows), kept here so that a sample finds its row
    /// without reading the row metadata, which is out of cache by the next scrape.
    newest_t: i64,
    /// The oldest row's time (`i64::MAX` without rows), for the same reason.
    oldest_t: i64,
    /// The time of the row before the newest (`i64::MIN` with fewer than two rows), which
    /// tells [`Block::settle`] whether only the newest row is new.
    previous_t: i64,
    /// Series with a value in the newest row, likewise.
    newest_filled: usize,
    /// How long rows are kept (0: unknown), to size the ring once the scrape interval shows.
    retain_ms: i64,
}

impl Default for Block {
    fn default() -> Self {
        Self {
            n: 0,
            last: Vec::new(),
            settled_t: i64::MIN,
            late: Vec::new(),
            meta: Vec::new(),
            values: Vec::new(),
            start: 0,
            len: 0,
            irregular: 0,
            newest_t: i64::MIN,
            oldest_t: i64::MAX,
            previous_t: i64::MIN,
            newest_filled: 0,
            retain_ms: 0,
        }
    }
}

/// Outcome of [`Block::push`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Pushed {
    /// Stored in a new row: the block has rows to settle ([`Block::settle`]).
    NewRow,
    /// Stored in a row that already held samples of other series.
    Stored,
    /// Stored in a settled row (the series came late): the block has a sample to settle.
    Late,
    /// Not newer than the series' newest sample (the store refuses it too).
    Refused,
}

/// Rates of one window, per series (see [`Block::window_rates`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum WindowRates {
    /// No series has a rate.
    None,
    /// Every series has one.
    All,
    /// The series marked present have one.
    Some,
}

impl Block {
    /// Series (columns).
    pub fn columns(&self) -> usize {
        self.n
    }

    fn cap(&self) -> usize {
        self.meta.len()
    }

    fn phys(&self, row: usize) -> usize {
        let p = self.start + row;
        if p >= self.cap() { p - self.cap() } else { p }
    }

    fn row_t(&self, row: usize) -> i64 {
        self.meta[self.phys(row)].t
    }

    fn value(&self, row: usize, col: usize) -> f64 {
        self.values[self.phys(row) * self.columns() + col]
    }

    fn is_irregular(&self, m: &RowMeta) -> bool {
        m.filled as usize != self.columns() || m.reset
    }

    /// Rows with a timestamp `<= t` among the first `hi` (rows are in time order). Rows are
    /// about one scrape interval apart, so the answer is guessed from the times of the first
    /// and last row and checked with a row or two (each row's time is a cache miss), with a
    /// binary search where the guess is off.
    fn rows_until(&self, t: i64, hi: usize) -> usize {
        if hi == 0 || self.oldest_t > t {
            return 0;
        }
        let last = if hi == self.len {
            self.newest_t
        } else {
            self.row_t(hi - 1)
        };
        if last <= t {
            return hi;
        }
        // Between row 0 (<= t) and row hi - 1 (> t).
        let guess = Self::guess(t, self.oldest_t, last, hi);
        let (mut lo, mut hi) = if self.row_t(guess) > t {
            if self.row_t(guess - 1) <= t {
                return guess;
            }
            (1, guess - 1)
        } else {
            if self.row_t(guess + 1) > t {
                return guess + 1;
            }
            (guess + 2, hi - 1)
        };
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.row_t(mid) <= t {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Where among `rows` rows from `first` to `last` (times) the first row after `t` is, if
    /// they are evenly spaced; in `1..rows - 1` (`first <= t < last`).
    fn guess(t: i64, first: i64, last: i64, rows: usize) -> usize {
        let span = (i128::from(last) - i128::from(first)).max(1);
        let guess = ((i128::from(t) - i128::from(first)) * (rows - 1) as i128 / span) as usize + 1;
        guess.clamp(1, rows.saturating_sub(1).max(1))
    }

    /// Asks for the memory [`Block::window_bounds`] and [`Block::window_rates`] will read for
    /// the window, found from the rows' first and last times alone (rows are about evenly
    /// spaced), so a refresh can ask for several blocks' rows before it needs them.
    pub fn prefetch_window(&self, at_ms: i64, window_ms: i64) {
        if self.len < 2 || self.newest_t > at_ms {
            return;
        }
        let start = at_ms - window_ms;
        let lo = if start < self.oldest_t || start >= self.newest_t {
            0
        } else {
            Self::guess(start, self.oldest_t, self.newest_t, self.len)
        };
        let n = self.n;
        for row in [lo, self.len - 1] {
            let p = self.phys(row);
            prefetch::line(&self.meta[p]);
            prefetch::slice(&self.values[p * n..(p + 1) * n]);
        }
        prefetch::line(&self.meta[self.phys(lo.saturating_sub(1))]);
    }

    /// Rewrites the ring linearly with room for `cap` rows, the columns `keep` (old index per
    /// new column, `None` for a new one) and an empty row inserted at `insert` if given.
    fn relayout(&mut self, cap: usize, keep: &[Option<usize>], insert: Option<(usize, i64)>) {
        let n_old = self.columns();
        let n = keep.len();
        let rows = self.len + usize::from(insert.is_some());
        let cap = cap.max(rows);
        let mut meta = vec![RowMeta::default(); cap];
        let mut values = vec![f64::from_bits(ABSENT_BITS); cap * n];
        let mut dst = 0;
        for row in 0..=self.len {
            if let Some((at, t)) = insert
                && at == row
            {
                meta[dst] = RowMeta {
                    t,
                    filled: 0,
                    reset: false,
                };
                dst += 1;
            }
            if row == self.len {
                break;
            }
            let p = self.phys(row);
            let mut m = self.meta[p];
            m.filled = 0;
            for (c, old) in keep.iter().enumerate() {
                if let Some(old) = *old {
                    let v = self.values[p * n_old + old];
                    values[dst * n + c] = v;
                    m.filled += u32::from(!absent(v));
                }
            }
            meta[dst] = m;
            dst += 1;
        }
        self.n = n;
        self.last = keep
            .iter()
            .map(|k| k.map_or(f64::NAN, |old| self.last[old]))
            .collect();
        for (c, _) in &mut self.late {
            // A late sample of a dropped series goes with it.
            *c = keep
                .iter()
                .position(|k| *k == Some(*c as usize))
                .map_or(u32::MAX, |c| c as u32);
        }
        self.late.retain(|(c, _)| *c != u32::MAX);
        self.meta = meta;
        self.values = values;
        self.start = 0;
        self.len = rows;
        self.irregular = (0..rows).filter(|&r| self.is_irregular(&self.meta[r])).count();
        self.newest_t = if rows > 0 { self.meta[rows - 1].t } else { i64::MIN };
        self.oldest_t = if rows > 0 { self.meta[0].t } else { i64::MAX };
        self.previous_t = if rows > 1 { self.meta[rows - 2].t } else { i64::MIN };
        self.newest_filled = if rows > 0 {
            self.meta[rows - 1].filled as usize
        } else {
            0
        };
    }

    /// [`Block::relayout`] keeping every column.
    fn resize_ring(&mut self, cap: usize, insert: Option<(usize, i64)>) {
        let keep: Vec<Option<usize>> = (0..self.columns()).map(Some).collect();
        self.relayout(cap, &keep, insert);
    }

    /// Adds a series (absent from every kept row); returns its column.
    pub fn add_column(&mut self) -> usize {
        let n = self.columns();
        let keep: Vec<Option<usize>> = (0..n).map(Some).chain([None]).collect();
        if self.len > 0 {
            self.relayout(self.cap(), &keep, None);
        } else {
            self.values = Vec::new();
            self.meta = Vec::new();
            self.start = 0;
            self.n += 1;
            self.last.push(f64::NAN);
        }
        n
    }

    /// Removes the series for which `drop(column)` is true; returns the old column index of
    /// each series kept, in their new order.
    pub fn retain_columns(&mut self, mut drop: impl FnMut(usize) -> bool) -> Vec<usize> {
        let keep: Vec<usize> = (0..self.columns()).filter(|&c| !drop(c)).collect();
        if keep.len() != self.columns() {
            let map: Vec<Option<usize>> = keep.iter().copied().map(Some).collect();
            self.relayout(self.cap(), &map, None);
        }
        keep
    }

    /// A block whose rows are kept for `retain_ms` (the caller expires them): once the scrape
    /// interval shows, the ring is sized for that many rows at once instead of growing by
    /// steps (each step copies the ring).
    pub fn with_retention(retain_ms: i64) -> Self {
        Self {
            retain_ms,
            ..Self::default()
        }
    }

    /// Rows the retention holds at the scrape interval the rows show (0 while unknown).
    fn retained_rows(&self) -> usize {
        if self.retain_ms <= 0 || self.len < 2 {
            return 0;
        }
        let interval = ((self.newest_t - self.oldest_t) / (self.len as i64 - 1)).max(1);
        (usize::try_from(self.retain_ms / interval).unwrap_or(0) + 2).min(MAX_RESERVED_ROWS)
    }

    /// Appends an empty row at `t`, after the newest.
    fn new_row(&mut self, t: i64) -> usize {
        let row = self.open_row(t);
        let (n, p) = (self.n, self.phys(row));
        self.values[p * n..(p + 1) * n].fill(f64::from_bits(ABSENT_BITS));
        row
    }

    /// [`Block::new_row`] without writing the row's values: the caller writes every one.
    fn open_row(&mut self, t: i64) -> usize {
        if self.len == self.cap() {
            let cap = (self.cap() + self.cap() / 2 + 4).max(self.retained_rows());
            self.resize_ring(cap, None);
        }
        let p = self.phys(self.len);
        self.meta[p] = RowMeta {
            t,
            filled: 0,
            reset: false,
        };
        let n = self.columns();
        self.len += 1;
        self.irregular += usize::from(n > 0);
        self.previous_t = self.newest_t;
        self.newest_t = t;
        self.newest_filled = 0;
        if self.len == 1 {
            self.oldest_t = t;
        }
        self.len - 1
    }

    /// The newest sample time of series `col` (`None` without samples in the kept rows).
    fn newest_time(&self, col: usize) -> Option<i64> {
        (0..self.len)
            .rev()
            .find(|&r| !absent(self.value(r, col)))
            .map(|r| self.row_t(r))
    }

    /// Asks for the memory a sample at a time after the newest row will write (the next row's
    /// slot in the ring and its metadata), ahead of [`Block::push`].
    pub fn prefetch_next_row(&self) {
        if self.len < self.cap() {
            let p = self.phys(self.len);
            prefetch::line(&self.meta[p]);
            prefetch::slice(&self.values[p * self.n..(p + 1) * self.n]);
        }
    }

    /// Asks for the memory [`Block::settle`] will read: the newest row (usually the only one
    /// to settle) and the series' settled values.
    pub fn prefetch_unsettled(&self) {
        if self.len > 0 {
            let p = self.phys(self.len - 1);
            prefetch::line(&self.meta[p]);
            prefetch::slice(&self.values[p * self.n..(p + 1) * self.n]);
        }
        prefetch::slice(&self.last);
    }

    /// The newest row's time (`i64::MIN` without rows).
    pub fn newest_row_time(&self) -> i64 {
        self.newest_t
    }

    /// Stores `v` at `t` for series `col`. What the sample changes (a counter reset, the
    /// increment) is worked out later, per block, by [`Block::settle`]: the per-sample path
    /// only writes the value.
    pub fn push(&mut self, col: usize, t: i64, v: f64) -> Pushed {
        let v = if absent(v) { f64::NAN } else { v };
        let n = self.columns();
        let (row, pushed) = if t > self.newest_t {
            (self.new_row(t), Pushed::NewRow)
        } else if t == self.newest_t {
            if !absent(self.values[self.phys(self.len - 1) * n + col]) {
                return Pushed::Refused;
            }
            (self.len - 1, Pushed::Stored)
        } else {
            // Older than the newest row (another series of the block is ahead): a rare path.
            // Refused like the store: not newer than the series' newest sample; and older than
            // every kept row (the series' newest may have expired; no window reaches there).
            if t < self.oldest_t || self.newest_time(col).is_some_and(|last| last >= t) {
                return Pushed::Refused;
            }
            let at = self.rows_until(t - 1, self.len);
            if self.row_t(at) != t {
                self.resize_ring(self.cap() + 1, Some((at, t)));
            }
            (at, Pushed::NewRow)
        };
        let pushed = if t <= self.settled_t {
            // Into a settled row (the block was settled while its scrape was still arriving,
            // or the series came late). The series has no sample after this one (it would have
            // been refused), so its settled newest value is its previous one.
            let previous = (self.late.iter().rev())
                .find(|&&(c, _)| c as usize == col)
                .map_or(self.last[col], |&(_, v)| v);
            self.late.push((col as u32, v));
            if v < previous {
                self.set_reset(self.phys(row));
            }
            Pushed::Late
        } else {
            pushed
        };
        let p = self.phys(row);
        self.values[p * n + col] = v;
        let m = self.meta[p];
        let was = self.is_irregular(&m);
        let m = RowMeta {
            filled: m.filled + 1,
            ..m
        };
        self.meta[p] = m;
        if row + 1 == self.len {
            self.newest_filled = m.filled as usize;
        }
        self.recount(was, &m);
        pushed
    }

    /// [`Block::push`] of one sample per column from `col` on, all at `t` (a block's series
    /// arrive one after the other, in column order): the row is found or made once for the
    /// run. Returns the outcome that matters most to the caller: [`Pushed::NewRow`] or
    /// [`Pushed::Late`] if any sample had it, else [`Pushed::Stored`] if any was stored.
    pub fn push_run(&mut self, col: usize, t: i64, values: impl ExactSizeIterator<Item = f64>) -> Pushed {
        if t < self.newest_t || t <= self.settled_t || col + values.len() > self.n {
            // Out of order, into a settled row, or not columns of this block: one by one.
            let mut out = Pushed::Refused;
            for (k, v) in values.enumerate() {
                out = match (out, self.push(col + k, t, v)) {
                    (Pushed::NewRow | Pushed::Late, _) => out,
                    (_, Pushed::Refused) => out,
                    (_, now) => now,
                };
            }
            return out;
        }
        let canonical = |v: f64| if absent(v) { f64::NAN } else { v };
        let (n, len) = (self.n, values.len());
        let mut stored = 0;
        let mut pushed = Pushed::Refused;
        if t > self.newest_t {
            // A new row: written once, without reading it first (it is not in cache).
            let row = self.open_row(t);
            let p = self.phys(row);
            let row = &mut self.values[p * n..(p + 1) * n];
            row[..col].fill(f64::from_bits(ABSENT_BITS));
            for (slot, v) in row[col..col + len].iter_mut().zip(values) {
                *slot = canonical(v);
            }
            row[col + len..].fill(f64::from_bits(ABSENT_BITS));
            stored = len as u32;
            pushed = Pushed::NewRow;
        } else {
            let p = self.phys(self.len - 1);
            for (slot, v) in self.values[p * n + col..p * n + col + len].iter_mut().zip(values) {
                // A value already in the row: a duplicate, refused like the store does.
                if absent(*slot) {
                    *slot = canonical(v);
                    stored += 1;
                }
            }
        }
        let p = self.phys(self.len - 1);
        if stored == 0 {
            return pushed;
        }
        if pushed == Pushed::Refused {
            pushed = Pushed::Stored;
        }
        let m = self.meta[p];
        let was = self.is_irregular(&m);
        let m = RowMeta {
            filled: m.filled + stored,
            ..m
        };
        self.meta[p] = m;
        self.newest_filled = m.filled as usize; // The row is the newest.
        self.recount(was, &m);
        pushed
    }

    /// Adjusts the count of irregular rows after a row changed from `was` (irregular) to `m`.
    fn recount(&mut self, was: bool, m: &RowMeta) {
        let is = self.is_irregular(m);
        if was && !is {
            self.irregular -= 1;
        } else if !was && is {
            self.irregular += 1;
        }
    }

    /// Marks a counter reset in physical row `p`.
    fn set_reset(&mut self, p: usize) {
        let m = self.meta[p];
        if !m.reset {
            let was = self.is_irregular(&m);
            self.meta[p].reset = true;
            let m = self.meta[p];
            self.recount(was, &m);
        }
    }

    /// Settles the rows (and late samples) stored since the last call: marks the rows where a
    /// series' value went down (a counter reset, which the windows' fast path must not span)
    /// and calls `increment(column, increment)` for every such sample: the change from the
    /// series' previous value, or the new value after a reset. A series' first sample counts
    /// as an increment from zero when `first_counts(column)`, else as none. Reads the new rows
    /// once per block, one after the other, instead of each series' state per sample.
    pub fn settle(&mut self, first_counts: impl Fn(usize) -> bool, mut increment: impl FnMut(usize, f64)) {
        let delta = |c: usize, v: f64, last: f64| {
            if last.is_nan() {
                if first_counts(c) { v } else { 0.0 }
            } else if v < last {
                v
            } else {
                v - last
            }
        };
        for (c, v) in std::mem::take(&mut self.late) {
            let c = c as usize;
            increment(c, delta(c, v, self.last[c]));
            self.last[c] = v;
        }
        // Usually only the newest row is new.
        let from = if self.newest_t <= self.settled_t {
            self.len
        } else if self.len >= 2 && self.previous_t <= self.settled_t {
            self.len - 1
        } else {
            self.rows_until(self.settled_t, self.len)
        };
        let n = self.n;
        for r in from..self.len {
            let p = self.phys(r);
            let mut reset = false;
            for c in 0..n {
                let v = self.values[p * n + c];
                if absent(v) {
                    continue;
                }
                let last = self.last[c];
                reset |= v < last;
                increment(c, delta(c, v, last));
                self.last[c] = v;
            }
            if reset {
                self.set_reset(p);
            }
        }
        self.settled_t = self.newest_t;
    }

    /// Whether every series has a value in the newest row (then none is without samples).
    pub fn newest_row_full(&self) -> bool {
        self.len > 0 && self.newest_filled == self.columns()
    }

    /// Whether series `col` has a sample in the kept rows.
    pub fn has_samples(&self, col: usize) -> bool {
        self.newest_time(col).is_some()
    }

    /// Forgets rows older than `cutoff`.
    pub fn expire(&mut self, cutoff: i64) {
        while self.len > 0 && self.oldest_t < cutoff {
            let m = self.meta[self.start];
            self.irregular -= usize::from(self.is_irregular(&m));
            self.start = self.phys(1);
            self.len -= 1;
            self.oldest_t = if self.len > 0 { self.row_t(0) } else { i64::MAX };
        }
        if self.len < 2 {
            self.previous_t = i64::MIN;
        }
        if self.len == 0 {
            self.start = 0;
            self.newest_t = i64::MIN;
            self.newest_filled = 0;
        }
        if self.cap() > 4 * self.len.max(8) && self.cap() > 2 * self.retained_rows() {
            self.resize_ring(self.len, None);
        }
    }

    /// Where the window `(at_ms - window_ms, at_ms]` lies in the block's rows.
    pub fn window_bounds(&self, at_ms: i64, window_ms: i64) -> Bounds {
        let hi = self.rows_until(at_ms, self.len);
        let lo = self.rows_until(at_ms - window_ms, hi);
        let regular = self.irregular == 0
            || (lo..hi).all(|r| {
                let m = self.meta[self.phys(r)];
                m.filled as usize == self.columns() && (r == lo || !m.reset)
            });
        Bounds {
            lo,
            hi,
            regular,
            at_ms,
            window_ms,
        }
    }

    /// `rate(…[w])` at the instant of `bounds` ([`Block::window_bounds`]) of every series
    /// into `rates` (one per column; resized), and which series have one:
    /// [`WindowRates::All`], [`WindowRates::None`], or [`WindowRates::Some`] with `present`
    /// (one per column) telling which. `scratch` is reused between calls.
    ///
    /// Where every row of the window is full and no counter went down inside it (the normal
    /// case) the rates come from the window's first and last rows; otherwise each series goes
    /// through the query engine's `rate()` kernel on its own samples.
    pub fn window_rates(
        &self,
        bounds: &Bounds,
        rates: &mut Vec<f64>,
        present: &mut Vec<bool>,
        scratch: &mut Vec<Sample>,
    ) -> WindowRates {
        let n = self.columns();
        let Bounds {
            lo,
            hi,
            regular,
            at_ms,
            window_ms,
        } = *bounds;
        let start = at_ms - window_ms;
        rates.clear();
        if hi == lo {
            return WindowRates::None;
        }
        if regular {
            if hi - lo < 2 {
                return WindowRates::None;
            }
            let (first_t, last_t) = (self.row_t(lo), self.row_t(hi - 1));
            let (pf, pl) = (self.phys(lo) * n, self.phys(hi - 1) * n);
            let first = &self.values[pf..pf + n];
            let last = &self.values[pl..pl + n];
            let shape = Extrapolation::new(first_t, last_t, hi - lo, start, at_ms);
            rates.extend(first.iter().zip(last).map(|(&f, &l)| shape.rate(f, l)));
            return WindowRates::All;
        }
        present.clear();
        let mut any = false;
        for c in 0..n {
            scratch.clear();
            for r in lo..hi {
                let v = self.value(r, c);
                if !absent(v) {
                    scratch.push(Sample {
                        timestamp_ms: self.row_t(r),
                        value: v,
                    });
                }
            }
            let rate = meshfed_query::kernels::counter_rate(scratch, start, at_ms);
            rates.push(rate.unwrap_or(0.0));
            present.push(rate.is_some());
            any |= rate.is_some();
        }
        if any { WindowRates::Some } else { WindowRates::None }
    }
}

/// The rows of one window in one block (see [`Block::window_bounds`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    lo: usize,
    hi: usize,
    /// Every row full, no reset after the first.
    regular: bool,
    at_ms: i64,
    window_ms: i64,
}

/// Prometheus' `extrapolatedRate` for counters (see `meshfed_query::kernels::counter_rate`),
/// split into what depends only on the sample times (shared by every series of a regular
/// window) and the per-series part: the change and the counter's zero point. Applies only
/// without a reset inside the window, where the change is `last - first`.
struct Extrapolation {
    duration_to_start: f64,
    duration_to_end: f64,
    sampled_interval: f64,
    range_secs: f64,
    /// [`Extrapolation::factor`] with `duration_to_start`: that of every series whose
    /// extrapolation does not stop at zero.
    factor: f64,
    /// A series' extrapolation can only stop at zero when `first <= change * zero_bound`
    /// (`duration_to_start / sampled_interval` with a margin far above rounding), so the
    /// exact test and its division run only for those.
    zero_bound: f64,
}

impl Extrapolation {
    fn new(first_t: i64, last_t: i64, samples: usize, range_start: i64, range_end: i64) -> Self {
        let mut duration_to_start = (first_t - range_start) as f64 / 1000.0;
        let mut duration_to_end = (range_end - last_t) as f64 / 1000.0;
        let sampled_interval = (last_t - first_t) as f64 / 1000.0;
        let avg_between = sampled_interval / (samples - 1) as f64;
        let threshold = avg_between * 1.1;
        if duration_to_start >= threshold {
            duration_to_start = avg_between / 2.0;
        }
        if duration_to_end >= threshold {
            duration_to_end = avg_between / 2.0;
        }
        let range_secs = (range_end - range_start) as f64 / 1000.0;
        let factor = Self::factor(sampled_interval, duration_to_start, duration_to_end, range_secs);
        Self {
            duration_to_start,
            duration_to_end,
            sampled_interval,
            range_secs,
            // Opaque to the optimiser: knowing it equals the zero case's formula with
            // `duration_to_start`, it would merge the two cases back into that formula, with
            // its two divisions, for every series.
            factor: std::hint::black_box(factor),
            zero_bound: duration_to_start / sampled_interval * (1.0 + 1e-6),
        }
    }

    /// What the change is multiplied by, in the order Prometheus computes it.
    fn factor(sampled_interval: f64, duration_to_start: f64, duration_to_end: f64, range_secs: f64) -> f64 {
        let extrapolate_to = sampled_interval + duration_to_start + duration_to_end;
        extrapolate_to / sampled_interval / range_secs
    }

    fn rate(&self, first: f64, last: f64) -> f64 {
        let result = last - first;
        if result > 0.0 && first >= 0.0 && first <= result * self.zero_bound {
            // The counter would reach zero inside the extrapolated span: extrapolate only to
            // there (the only per-series factor).
            let duration_to_zero = self.sampled_interval * (first / result);
            if duration_to_zero < self.duration_to_start {
                return result
                    * Self::factor(
                        self.sampled_interval,
                        duration_to_zero,
                        self.duration_to_end,
                        self.range_secs,
                    );
            }
        }
        result * self.factor
    }
}

#[cfg(test)]
mod tests;
