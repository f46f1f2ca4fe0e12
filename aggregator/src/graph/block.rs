//! A block: the recent samples of the series scraped together (one edge as one proxy reports
//! it), kept as a columnar ring of rows. A row is one scrape: its timestamp, then one value per
//! series of the block, side by side; an absent value is a reserved NaN.
//!
//! Series scraped together share their timestamps, so a window's bounds are found once per
//! block instead of once per series, and the rates of all its series are read from two rows
//! lying next to each other in memory ([`Block::rates`]). Where a window is not that regular (a
//! series missed a scrape, joined late, or a counter reset inside the window) the block's
//! series are evaluated one by one with Prometheus' own `rate()` kernel, so the result is always
//! what `rate(…[w])` returns for each series.

use meshfed_model::Sample;

/// Marks "no sample of this series in this row" (a NaN no parser or store produces: a value
/// with these bits is stored as the canonical NaN instead).
const ABSENT_BITS: u64 = 0x7ff8_6d65_7368_0001;

fn absent(v: f64) -> bool {
    v.to_bits() == ABSENT_BITS
}

/// What a row knows besides its values.
#[derive(Clone, Copy, Debug, Default)]
struct RowMeta {
    t: i64,
    /// Series with a value in this row.
    filled: u32,
    /// Some series' value is below its previous one (a counter reset).
    reset: bool,
}

/// One series of a block: its newest sample (for increments and ordering) and what it is.
#[derive(Debug)]
pub(crate) struct Column<R> {
    /// What the caller keeps about the series.
    pub role: R,
    /// Newest sample's time (`i64::MIN` before the first).
    pub last_t: i64,
    /// Newest sample's value (NaN before the first).
    pub last_v: f64,
}

/// See the module docs. `R` is what the caller keeps per series.
#[derive(Debug)]
pub(crate) struct Block<R> {
    pub cols: Vec<Column<R>>,
    /// Ring of row metadata and of row values (`cols.len()` per row), `cap` rows each.
    meta: Vec<RowMeta>,
    values: Vec<f64>,
    start: usize,
    len: usize,
}

impl<R> Default for Block<R> {
    fn default() -> Self {
        Self {
            cols: Vec::new(),
            meta: Vec::new(),
            values: Vec::new(),
            start: 0,
            len: 0,
        }
    }
}

/// Outcome of [`Block::push`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Pushed {
    /// Stored; the series' previous value (NaN for its first sample).
    Stored(f64),
    /// Not newer than the series' newest sample (the store refuses it too).
    Refused,
}

impl<R> Block<R> {
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
        self.values[self.phys(row) * self.cols.len() + col]
    }

    /// Rows with a timestamp `<= t` (rows are in time order).
    fn rows_until(&self, t: i64, hi: usize) -> usize {
        let (mut lo, mut hi) = (0, hi);
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

    /// Rewrites the ring linearly with room for `cap` rows, the columns `keep` (old index per
    /// new column, `None` for a new one) and an empty row inserted at `insert` if given.
    fn relayout(&mut self, cap: usize, keep: &[Option<usize>], insert: Option<(usize, i64)>) {
        let n_old = self.cols.len();
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
        self.meta = meta;
        self.values = values;
        self.start = 0;
        self.len = rows;
    }

    /// Adds a series (absent from every kept row); returns its column.
    pub fn add_column(&mut self, role: R) -> usize {
        let keep: Vec<Option<usize>> = (0..self.cols.len()).map(Some).chain([None]).collect();
        if self.len > 0 {
            self.relayout(self.cap(), &keep, None);
        } else {
            self.values = Vec::new();
            self.meta = Vec::new();
            self.start = 0;
        }
        self.cols.push(Column {
            role,
            last_t: i64::MIN,
            last_v: f64::NAN,
        });
        self.cols.len() - 1
    }

    /// Removes the series for which `drop` is true; returns the old column index of each series
    /// kept, in their new order.
    pub fn retain_columns(&mut self, mut drop: impl FnMut(&Column<R>) -> bool) -> Vec<usize> {
        let keep: Vec<usize> = (0..self.cols.len()).filter(|&c| !drop(&self.cols[c])).collect();
        if keep.len() == self.cols.len() {
            return keep;
        }
        let map: Vec<Option<usize>> = keep.iter().copied().map(Some).collect();
        self.relayout(self.cap(), &map, None);
        let mut c = 0;
        self.cols.retain(|_| {
            c += 1;
            keep.binary_search(&(c - 1)).is_ok()
        });
        keep
    }

    /// Stores `v` at `t` for series `col`.
    pub fn push(&mut self, col: usize, t: i64, v: f64) -> Pushed {
        if t <= self.cols[col].last_t {
            return Pushed::Refused;
        }
        let v = if absent(v) { f64::NAN } else { v };
        let row = if self.len > 0 && self.row_t(self.len - 1) == t {
            self.len - 1
        } else if self.len == 0 || self.row_t(self.len - 1) < t {
            if self.len == self.cap() {
                let cap = self.cap() + self.cap() / 2 + 4;
                let keep: Vec<Option<usize>> = (0..self.cols.len()).map(Some).collect();
                self.relayout(cap, &keep, None);
            }
            let p = self.phys(self.len);
            self.meta[p] = RowMeta {
                t,
                filled: 0,
                reset: false,
            };
            let n = self.cols.len();
            self.values[p * n..(p + 1) * n].fill(f64::from_bits(ABSENT_BITS));
            self.len += 1;
            self.len - 1
        } else {
            // Older than the newest row (another series of the block is ahead): a rare path.
            let at = self.rows_until(t - 1, self.len);
            if self.row_t(at) != t {
                let keep: Vec<Option<usize>> = (0..self.cols.len()).map(Some).collect();
                self.relayout(self.cap() + 1, &keep, Some((at, t)));
            }
            at
        };
        let n = self.cols.len();
        let p = self.phys(row);
        let column = &mut self.cols[col];
        let previous = column.last_v;
        column.last_t = t;
        column.last_v = v;
        self.values[p * n + col] = v;
        let m = &mut self.meta[p];
        m.filled += 1;
        m.reset |= v < previous;
        Pushed::Stored(previous)
    }

    /// Whether every series has a value in the newest row (then none is without samples).
    pub fn newest_row_full(&self) -> bool {
        self.len > 0 && self.meta[self.phys(self.len - 1)].filled as usize == self.cols.len()
    }

    /// Forgets rows older than `cutoff`.
    pub fn expire(&mut self, cutoff: i64) {
        while self.len > 0 && self.row_t(0) < cutoff {
            self.start = self.phys(1);
            self.len -= 1;
        }
        if self.len == 0 {
            self.start = 0;
        }
        if self.cap() > 4 * self.len.max(8) {
            let keep: Vec<Option<usize>> = (0..self.cols.len()).map(Some).collect();
            self.relayout(self.len, &keep, None);
        }
    }

    /// Calls `out(window index, column index, rate)` with `rate(…[w])` at `at_ms` of every
    /// series that has one, for each window `w` in `windows_ms`. `scratch` is reused between
    /// calls. The columns' roles are not read, so a caller can keep what the rates need in a
    /// compact array of its own.
    pub fn rates(
        &self,
        at_ms: i64,
        windows_ms: &[i64],
        scratch: &mut Vec<Sample>,
        mut out: impl FnMut(usize, usize, f64),
    ) {
        let hi = self.rows_until(at_ms, self.len);
        let n = self.cols.len();
        for (w, &window_ms) in windows_ms.iter().enumerate() {
            let start = at_ms - window_ms;
            let lo = self.rows_until(start, hi);
            if hi == lo {
                continue;
            }
            let regular = (lo..hi).all(|r| {
                let m = self.meta[self.phys(r)];
                m.filled as usize == n && (r == lo || !m.reset)
            });
            if regular {
                if hi - lo < 2 {
                    continue;
                }
                let (first_t, last_t) = (self.row_t(lo), self.row_t(hi - 1));
                let (pf, pl) = (self.phys(lo) * n, self.phys(hi - 1) * n);
                let first = &self.values[pf..pf + n];
                let last = &self.values[pl..pl + n];
                let shape = Extrapolation::new(first_t, last_t, hi - lo, start, at_ms);
                for (c, (&f, &l)) in first.iter().zip(last).enumerate() {
                    out(w, c, shape.rate(f, l));
                }
                continue;
            }
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
                if let Some(rate) = meshfed_query::kernels::counter_rate(scratch, start, at_ms) {
                    out(w, c, rate);
                }
            }
        }
    }
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
        Self {
            duration_to_start,
            duration_to_end,
            sampled_interval,
            range_secs: (range_end - range_start) as f64 / 1000.0,
        }
    }

    fn rate(&self, first: f64, last: f64) -> f64 {
        let result = last - first;
        let mut duration_to_start = self.duration_to_start;
        if result > 0.0 && first >= 0.0 {
            let duration_to_zero = self.sampled_interval * (first / result);
            if duration_to_zero < duration_to_start {
                duration_to_start = duration_to_zero;
            }
        }
        let extrapolate_to = self.sampled_interval + duration_to_start + self.duration_to_end;
        result * (extrapolate_to / self.sampled_interval / self.range_secs)
    }
}

#[cfg(test)]
mod tests;
