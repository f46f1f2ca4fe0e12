#![allow(clippy::unwrap_used)]

use super::*;

/// xorshift64*: deterministic pseudo-random numbers without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Every series' rate from the block equals the kernel's on that series' own samples, for
/// regular blocks (the fast path) and for blocks with missed scrapes, late joiners, resets,
/// series ahead of others and expired rows (the per-series path).
#[test]
fn rates_equal_the_kernel_on_each_series_samples() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for case in 0..400 {
        let irregular = case % 2 == 1;
        let n_cols = 1 + rng.below(6) as usize;
        let mut block = Block::default();
        let mut truth: Vec<Vec<Sample>> = vec![Vec::new(); n_cols];
        for c in 0..n_cols {
            assert_eq!(block.add_column(), c);
        }
        let mut values: Vec<f64> = (0..n_cols).map(|_| rng.below(1000) as f64).collect();
        let scrapes = 2 + rng.below(40) as i64;
        let t0 = 1_000_000 + rng.below(5_000) as i64;
        for k in 0..scrapes {
            let t = t0 + k * 5_000;
            let mut order: Vec<usize> = (0..n_cols).collect();
            if irregular {
                order.reverse();
            }
            for c in order {
                if irregular && rng.below(5) == 0 {
                    continue; // Missed scrape.
                }
                let shift = if irregular { rng.below(3) as i64 * 700 } else { 0 };
                values[c] = if irregular && rng.below(15) == 0 {
                    rng.below(10) as f64 // Reset.
                } else {
                    values[c] + rng.below(50) as f64
                };
                if block.push(c, t + shift, values[c]) != Pushed::Refused {
                    truth[c].push(Sample {
                        timestamp_ms: t + shift,
                        value: values[c],
                    });
                }
            }
            if irregular && k == scrapes / 2 {
                let c = block.add_column();
                assert_eq!(c, n_cols);
            }
        }
        if irregular && rng.below(2) == 0 {
            let cutoff = t0 + rng.below(scrapes as u64 * 5_000) as i64;
            block.expire(cutoff);
            for s in &mut truth {
                s.retain(|s| s.timestamp_ms >= cutoff);
            }
        }
        let end = t0 + (scrapes - 1) * 5_000 + rng.below(8_000) as i64 - 2_000;
        let windows = [60_000, 300_000, 10_000 + rng.below(100_000) as i64];
        let (mut rates, mut present, mut scratch) = (Vec::new(), Vec::new(), Vec::new());
        block.settle(|_| false, |_, _| {});
        // Per window, per column (one more than the series pushed to, for the late one).
        let got: Vec<Vec<Option<f64>>> = windows
            .iter()
            .map(|&window| {
                let bounds = block.window_bounds(end, window);
                let mut got = match block.window_rates(&bounds, &mut rates, &mut present, &mut scratch) {
                    WindowRates::None => Vec::new(),
                    WindowRates::All => rates.iter().copied().map(Some).collect(),
                    WindowRates::Some => rates
                        .iter()
                        .zip(&present)
                        .map(|(&r, &p)| p.then_some(r))
                        .collect(),
                };
                got.resize(n_cols + 1, None);
                got
            })
            .collect();
        for (w, &window) in windows.iter().enumerate() {
            for c in 0..n_cols {
                let s: Vec<Sample> = truth[c]
                    .iter()
                    .copied()
                    .filter(|s| s.timestamp_ms > end - window && s.timestamp_ms <= end)
                    .collect();
                let want = meshfed_query::kernels::counter_rate(&s, end - window, end);
                assert_eq!(
                    got[w][c].map(f64::to_bits),
                    want.map(f64::to_bits),
                    "case {case} window {window} column {c}: {:?} vs {want:?}",
                    got[w][c]
                );
            }
            assert_eq!(got[w][n_cols], None, "a series without samples has no rate");
        }
    }
}

#[test]
fn removing_columns_keeps_the_others_values() {
    let mut block = Block::default();
    for _ in 0..3 {
        block.add_column();
    }
    for k in 0..4 {
        for c in 0..3 {
            block.push(c, k * 5_000, (k * 10 + c as i64) as f64);
        }
    }
    assert_eq!(block.retain_columns(|c| c == 1), vec![0, 2]);
    assert_eq!(block.columns(), 2);
    let mut rates = Vec::new();
    let bounds = block.window_bounds(15_000, 60_000);
    let got = block.window_rates(&bounds, &mut rates, &mut Vec::new(), &mut Vec::new());
    assert_eq!(got, WindowRates::All);
    let kernel = |c: i64| {
        let s: Vec<Sample> = (0..4)
            .map(|k| Sample {
                timestamp_ms: k * 5_000,
                value: (k * 10 + c) as f64,
            })
            .collect();
        meshfed_query::kernels::counter_rate(&s, 15_000 - 60_000, 15_000).unwrap()
    };
    assert_eq!(rates, vec![kernel(0), kernel(2)]);
    assert_eq!(block.push(0, 15_000, 1.0), Pushed::Refused);
    assert_eq!(
        block.push(1, 10_000, 1.0),
        Pushed::Refused,
        "not newer than its newest"
    );
}

/// Rows that are not full or hold a reset are counted as the ring changes, so a block known
/// to be regular skips the per-row check.
#[test]
fn irregular_rows_are_counted_through_pushes_expiry_and_relayout() {
    let mut block = Block::default();
    block.add_column();
    block.add_column();
    let count = |b: &Block| {
        let newest = b
            .len
            .checked_sub(1)
            .map_or(0, |r| b.meta[b.phys(r)].filled as usize);
        assert_eq!(
            b.newest_filled, newest,
            "the newest row's count kept in the block"
        );
        (0..b.len).filter(|&r| b.is_irregular(&b.meta[b.phys(r)])).count()
    };
    for k in 0..6 {
        block.push(0, k * 5_000, (10 * k) as f64);
        assert_eq!(block.irregular, count(&block));
        if k != 2 {
            let v = if k == 4 { 0.0 } else { (10 * k) as f64 };
            block.push(1, k * 5_000, v);
        }
        block.settle(|_| false, |_, _| {});
        assert_eq!(block.irregular, count(&block));
    }
    assert_eq!(block.irregular, 2, "the hole at 10 s and the reset at 20 s");
    block.add_column();
    assert_eq!(block.irregular, count(&block));
    block.expire(12_000);
    assert_eq!(block.irregular, count(&block));
    block.retain_columns(|c| c == 2);
    assert_eq!(block.irregular, count(&block));
    assert_eq!(block.irregular, 1, "the reset");
}

/// The guessed row search agrees with a scan for evenly and unevenly spaced rows.
#[test]
fn rows_until_agrees_with_a_scan() {
    let mut rng = Rng(0x5151_7a7a_1234_8765);
    for case in 0..300 {
        let mut block = Block::default();
        block.add_column();
        let mut t = rng.below(10_000) as i64;
        for _ in 0..1 + rng.below(60) {
            t += if case % 3 == 0 {
                1 + rng.below(60_000) as i64
            } else {
                5_000
            };
            block.push(0, t, 1.0);
        }
        if case % 4 == 0 {
            block.expire(t - rng.below(200_000) as i64);
        }
        for _ in 0..50 {
            let probe = rng.below(t as u64 + 20_000) as i64 - 10_000;
            let hi = rng.below(block.len as u64 + 1) as usize;
            let scan = (0..hi).filter(|&r| block.row_t(r) <= probe).count();
            assert_eq!(block.rows_until(probe, hi), scan, "case {case} t {probe} hi {hi}");
        }
        assert_eq!(block.rows_until(i64::MAX, block.len), block.len);
        assert_eq!(block.rows_until(i64::MIN, block.len), 0);
    }
}

/// Settling hands out each sample's increment exactly once: the change from the series'
/// previous value, the new value after a reset, the first value when asked; late samples
/// into settled rows included.
#[test]
fn settling_hands_out_every_increment_once() {
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    for case in 0..200 {
        let n_cols = 1 + rng.below(4) as usize;
        let mut block = Block::default();
        for _ in 0..n_cols {
            block.add_column();
        }
        let mut want = vec![0.0; n_cols];
        let mut got = vec![0.0; n_cols];
        let mut last = vec![f64::NAN; n_cols];
        for k in 0..30_i64 {
            let t = 1_000 + k * 5_000;
            for c in 0..n_cols {
                if rng.below(4) == 0 {
                    continue; // Missed this scrape; may come late below.
                }
                let v = if rng.below(10) == 0 {
                    rng.below(5) as f64
                } else {
                    last[c].max(0.0) + rng.below(9) as f64
                };
                if block.push(c, t, v) != Pushed::Refused {
                    // First sample, or a reset: the value; else the change.
                    want[c] += if last[c].is_nan() || v < last[c] {
                        v
                    } else {
                        v - last[c]
                    };
                    last[c] = v;
                }
            }
            if rng.below(3) == 0 {
                block.settle(|_| true, |c, inc| got[c] += inc);
            }
            // A late sample for a series that missed the previous row.
            let c = rng.below(n_cols as u64) as usize;
            let v = last[c].max(0.0) + 1.0;
            if k > 0 && block.push(c, t - 5_000, v) != Pushed::Refused {
                want[c] += if last[c].is_nan() { v } else { v - last[c] };
                last[c] = v;
            }
        }
        block.settle(|_| true, |c, inc| got[c] += inc);
        for c in 0..n_cols {
            assert!(
                (got[c] - want[c]).abs() < 1e-9,
                "case {case} column {c}: {} vs {}",
                got[c],
                want[c]
            );
        }
    }
}

/// [`Block::push_run`] leaves the block as pushing the run's samples one by one does, with the
/// same outcome for the caller: new rows, runs into the newest row (some duplicates), runs
/// older than the newest row and into settled rows.
#[test]
fn a_run_is_stored_as_its_samples_one_by_one() {
    let mut rng = Rng(0x5851_f42d_4c95_7f2d);
    let state = |b: &Block| {
        let bits: Vec<u64> = b.values.iter().map(|v| v.to_bits()).collect();
        format!("{b:?} {bits:?}")
    };
    for case in 0..300 {
        let n_cols = 1 + rng.below(8) as usize;
        let (mut by_run, mut one_by_one) = (Block::with_retention(60_000), Block::with_retention(60_000));
        for _ in 0..n_cols {
            by_run.add_column();
            one_by_one.add_column();
        }
        let mut t = 10_000;
        for step in 0..60 {
            if rng.below(3) > 0 {
                t += 5_000;
            }
            let at = t - 5_000 * rng.below(3) as i64;
            let col = rng.below(n_cols as u64) as usize;
            let len = 1 + rng.below((n_cols - col) as u64) as usize;
            let values: Vec<f64> = (0..len)
                .map(|k| (step * 10 + k) as f64 - rng.below(4) as f64)
                .collect();
            let want = values.iter().enumerate().fold(Pushed::Refused, |out, (k, &v)| {
                match (out, one_by_one.push(col + k, at, v)) {
                    (Pushed::NewRow | Pushed::Late, _) | (_, Pushed::Refused) => out,
                    (_, now) => now,
                }
            });
            let got = by_run.push_run(col, at, values.iter().copied());
            assert_eq!(got, want, "case {case} step {step}");
            assert_eq!(state(&by_run), state(&one_by_one), "case {case} step {step}");
            if rng.below(4) == 0 {
                by_run.settle(|_| true, |_, _| {});
                one_by_one.settle(|_| true, |_, _| {});
            }
        }
    }
}

/// Counters whose extrapolation stops at zero (a first value small against the window's
/// change) take their own factor; the others share the block's. Both equal the kernel bit for
/// bit.
#[test]
fn extrapolation_stopping_at_zero_equals_the_kernel() {
    let mut block = Block::default();
    let starts = [0.0, 1.0, 7.0, 14.0, 15.0, 1000.0];
    for _ in starts {
        block.add_column();
    }
    let mut truth: Vec<Vec<Sample>> = vec![Vec::new(); starts.len()];
    for k in 0..4_i64 {
        let t = 100_000 + k * 5_000;
        for (c, start) in starts.iter().enumerate() {
            let v = start + 10.0 * k as f64;
            assert_ne!(block.push(c, t, v), Pushed::Refused);
            truth[c].push(Sample {
                timestamp_ms: t,
                value: v,
            });
        }
    }
    block.settle(|_| false, |_, _| {});
    let (mut rates, end, window) = (Vec::new(), 120_000, 60_000);
    let bounds = block.window_bounds(end, window);
    let got = block.window_rates(&bounds, &mut rates, &mut Vec::new(), &mut Vec::new());
    assert_eq!(got, WindowRates::All);
    for (c, samples) in truth.iter().enumerate() {
        let want = meshfed_query::kernels::counter_rate(samples, end - window, end).unwrap();
        assert_eq!(
            rates[c].to_bits(),
            want.to_bits(),
            "column {c}: {} vs {want}",
            rates[c]
        );
    }
}
