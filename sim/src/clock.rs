//! Injectable clocks: simulated time is "milliseconds since the simulator started".
//!
//! The real clock is used by `meshfed demo` and whenever a real Prometheus scrapes the simulator;
//! the manual clock lets tests pin time exactly so counters are known in advance.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of simulated time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Milliseconds of simulated time since the simulator started.
    fn now_ms(&self) -> u64;
    /// Unix time in milliseconds matching [`Clock::now_ms`] (what a scraper would stamp samples with).
    fn unix_ms(&self) -> i64;
}

fn system_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Wall time since construction.
#[derive(Debug)]
pub struct RealClock {
    start: Instant,
    start_unix_ms: i64,
}

impl RealClock {
    /// A clock whose zero is now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            start_unix_ms: system_unix_ms(),
        }
    }
}

impl Default for RealClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for RealClock {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn unix_ms(&self) -> i64 {
        self.start_unix_ms + self.now_ms() as i64
    }
}

/// A clock that only moves when told to; starts at 0.
#[derive(Debug)]
pub struct ManualClock {
    now_ms: AtomicU64,
    base_unix_ms: i64,
}

impl ManualClock {
    /// Unix time that simulated time 0 maps to by default (2023-11-14T22:13:20Z).
    pub const DEFAULT_BASE_UNIX_MS: i64 = 1_700_000_000_000;

    /// A manual clock at 0, mapped to [`ManualClock::DEFAULT_BASE_UNIX_MS`].
    pub fn new() -> Self {
        Self::with_base_unix_ms(Self::DEFAULT_BASE_UNIX_MS)
    }

    /// A manual clock at 0 whose Unix time is `base_unix_ms`.
    pub fn with_base_unix_ms(base_unix_ms: i64) -> Self {
        Self {
            now_ms: AtomicU64::new(0),
            base_unix_ms,
        }
    }

    /// Moves time forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.now_ms.fetch_add(d.as_millis() as u64, Ordering::SeqCst);
    }

    /// Sets time to `ms` since start; going backwards is ignored (simulated time is monotonic).
    pub fn set_ms(&self, ms: u64) {
        self.now_ms.fetch_max(ms, Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }

    fn unix_ms(&self) -> i64 {
        self.base_unix_ms + self.now_ms() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_forward() {
        let c = ManualClock::new();
        c.advance(Duration::from_secs(2));
        c.set_ms(1000);
        assert_eq!(c.now_ms(), 2000);
        assert_eq!(c.unix_ms(), ManualClock::DEFAULT_BASE_UNIX_MS + 2000);
    }
}
