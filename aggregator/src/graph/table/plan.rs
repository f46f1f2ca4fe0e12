//! How a block's series add into its edge's figures, worked out once when the block's series
//! change instead of once per series and refresh: each series is mapped to the slots of a flat
//! accumulator (requests, a response class, errors, a latency bucket, …), so summing a window's
//! rates or a scrape's increments is a loop of additions, and only the per-slot sums are turned
//! into [`EdgeStats`] fields, buckets and flags.

use std::collections::HashMap;
use std::sync::Arc;

use crate::graph::istio::{Measure, Name};
use crate::graph::stats::EdgeStats;

use super::SeriesRole;

const REQUESTS: usize = 0;
/// The response classes take `CLASS..CLASS + CodeClass::COUNT`.
const CLASS: usize = 1;
const ERRORS: usize = 7;
const DESTINATION_REQUESTS: usize = 8;
const DESTINATION_MTLS: usize = 9;
const DURATION_SUM: usize = 10;
const REQUEST_BYTES: usize = 11;
const RESPONSE_BYTES: usize = 12;
const TCP_RECEIVED: usize = 13;
const TCP_SENT: usize = 14;
const TCP_OPENED: usize = 15;
/// Latency buckets follow the fixed slots, then response flags.
const FIXED: usize = 16;

/// (column, slot) pairs.
type Entries = Vec<(u32, u32)>;

/// See the module docs.
#[derive(Debug, Default)]
pub(super) struct Plan {
    /// Where every series' rate goes.
    rates: Entries,
    /// Where the increments go: primary series only (health and the derived series count what
    /// the graph counts).
    increments: Entries,
    /// Bucket bounds of the slots from [`FIXED`], ascending.
    les: Vec<f64>,
    /// Flag ids ([`SeriesRole::flags`]) of the slots after the buckets.
    flags: Vec<u32>,
}

/// Plans shared by the blocks whose series have the same roles (the proxies of a mesh report
/// the same histogram and response codes, so a few plans serve every block, and they stay in
/// cache while a refresh walks the blocks).
#[derive(Default)]
pub(super) struct Plans {
    by_roles: HashMap<Vec<RoleKey>, Arc<Plan>>,
}

/// What of a [`SeriesRole`] a plan depends on, hashable.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct RoleKey {
    /// The measure's discriminant, with the bucket bound's bits.
    measure: (u8, u64),
    primary: bool,
    mtls: Option<bool>,
    flags: u32,
}

impl RoleKey {
    fn of(role: &SeriesRole) -> Self {
        let measure = match role.measure {
            Measure::Requests { class, error } => (0, ((class as u64) << 1) | u64::from(error)),
            Measure::DurationBucket { le } => (1, le.to_bits()),
            Measure::DurationSum => (2, 0),
            Measure::RequestBytes => (3, 0),
            Measure::ResponseBytes => (4, 0),
            Measure::TcpReceived => (5, 0),
            Measure::TcpSent => (6, 0),
            Measure::TcpOpened => (7, 0),
        };
        Self {
            measure,
            primary: role.primary,
            mtls: role.mtls,
            flags: role.flags,
        }
    }
}

impl Plans {
    /// The plan for series with `roles`, built on first use.
    pub fn get(&mut self, roles: &[SeriesRole]) -> Arc<Plan> {
        if self.by_roles.len() >= 4096 {
            self.prune(); // Plans of blocks that have since grown or gone.
        }
        let key: Vec<RoleKey> = roles.iter().map(RoleKey::of).collect();
        Arc::clone(
            self.by_roles
                .entry(key)
                .or_insert_with(|| Arc::new(Plan::build(roles))),
        )
    }

    /// Forgets the plans no block uses.
    pub fn prune(&mut self) {
        self.by_roles.retain(|_, plan| Arc::strong_count(plan) > 1);
    }
}

/// Scratch space for [`Plan::add_rates`] and [`Plan::add_increments`], reused between blocks.
#[derive(Default)]
pub(super) struct Sums {
    acc: Vec<f64>,
    seen: Vec<bool>,
}

impl Plan {
    /// The plan for a block whose columns have `roles`.
    pub fn build(roles: &[SeriesRole]) -> Self {
        let mut les: Vec<f64> = roles
            .iter()
            .filter(|r| r.primary)
            .filter_map(|r| match r.measure {
                Measure::DurationBucket { le } => Some(le),
                _ => None,
            })
            .collect();
        les.sort_by(f64::total_cmp);
        les.dedup_by(|a, b| a.total_cmp(b).is_eq());
        let mut flags: Vec<u32> = roles
            .iter()
            .filter(|r| r.primary && r.flags > 0)
            .map(|r| r.flags)
            .collect();
        flags.sort_unstable();
        flags.dedup();
        let mut plan = Self {
            les,
            flags,
            ..Self::default()
        };
        let mut slots = Vec::new();
        for (c, role) in roles.iter().enumerate() {
            slots.clear();
            plan.slots_of(role, &mut slots);
            let c = c as u32;
            plan.rates.extend(slots.iter().map(|&s| (c, s as u32)));
            if role.primary {
                plan.increments.extend(slots.iter().map(|&s| (c, s as u32)));
            }
        }
        plan
    }

    /// The slots a series adds into: a request counter into the requests, its class, errors and
    /// its flag when primary, and into the mTLS base when destination-reported; anything else
    /// only when primary.
    fn slots_of(&self, role: &SeriesRole, out: &mut Vec<usize>) {
        if let Measure::Requests { class, error } = role.measure {
            if let Some(mtls) = role.mtls {
                out.push(DESTINATION_REQUESTS);
                if mtls {
                    out.push(DESTINATION_MTLS);
                }
            }
            if role.primary {
                out.extend([REQUESTS, CLASS + class as usize]);
                if error {
                    out.push(ERRORS);
                }
                if let Ok(i) = self.flags.binary_search(&role.flags) {
                    out.push(FIXED + self.les.len() + i);
                }
            }
            return;
        }
        if !role.primary {
            return;
        }
        out.push(match role.measure {
            Measure::Requests { .. } => return,
            Measure::DurationBucket { le } => match self.les.binary_search_by(|b| b.total_cmp(&le)) {
                Ok(i) => FIXED + i,
                Err(_) => return,
            },
            Measure::DurationSum => DURATION_SUM,
            Measure::RequestBytes => REQUEST_BYTES,
            Measure::ResponseBytes => RESPONSE_BYTES,
            Measure::TcpReceived => TCP_RECEIVED,
            Measure::TcpSent => TCP_SENT,
            Measure::TcpOpened => TCP_OPENED,
        });
    }

    fn slots(&self) -> usize {
        FIXED + self.les.len() + self.flags.len()
    }

    /// Latency buckets the block adds (capacity to reserve in an edge's stats).
    pub fn buckets(&self) -> usize {
        self.les.len()
    }

    /// Adds a window's rates of the block's series (one per column; `present` tells which
    /// have one, `None`: all) into `stats`; `flag_names` names the flag ids.
    pub fn add_rates(
        &self,
        rates: &[f64],
        present: Option<&[bool]>,
        sums: &mut Sums,
        stats: &mut EdgeStats,
        flag_names: &[Name],
    ) {
        self.sum(&self.rates, |c| rates[c], present, sums);
        self.add_sums(sums, stats, flag_names);
    }

    /// Adds the primary series' increments (`increment(column)`) into each of `into`.
    pub fn add_increments<'s>(
        &self,
        increment: impl Fn(usize) -> f64,
        sums: &mut Sums,
        into: impl IntoIterator<Item = &'s mut EdgeStats>,
        flag_names: &[Name],
    ) {
        self.sum(&self.increments, increment, None, sums);
        for stats in into {
            self.add_sums(sums, stats, flag_names);
        }
    }

    /// Sums `value(column)` over `entries` into `sums`, per slot; only the columns `present`
    /// says have one (`None`: all) count, and mark their slots seen.
    fn sum(
        &self,
        entries: &Entries,
        value: impl Fn(usize) -> f64,
        present: Option<&[bool]>,
        sums: &mut Sums,
    ) {
        let Sums { acc, seen } = sums;
        acc.clear();
        acc.resize(self.slots(), 0.0);
        seen.clear();
        seen.resize(self.slots(), present.is_none());
        match present {
            None => {
                for &(c, s) in entries {
                    acc[s as usize] += value(c as usize);
                }
            }
            Some(present) => {
                for &(c, s) in entries {
                    if present[c as usize] {
                        acc[s as usize] += value(c as usize);
                        seen[s as usize] = true;
                    }
                }
            }
        }
    }

    fn add_sums(&self, sums: &Sums, stats: &mut EdgeStats, flag_names: &[Name]) {
        let Sums { acc, seen } = sums;
        stats.requests += acc[REQUESTS];
        for (i, class) in stats.by_class.iter_mut().enumerate() {
            *class += acc[CLASS + i];
        }
        stats.errors += acc[ERRORS];
        stats.destination_requests += acc[DESTINATION_REQUESTS];
        stats.destination_mtls += acc[DESTINATION_MTLS];
        stats.duration_sum_ms += acc[DURATION_SUM];
        stats.request_bytes += acc[REQUEST_BYTES];
        stats.response_bytes += acc[RESPONSE_BYTES];
        stats.tcp_received_bytes += acc[TCP_RECEIVED];
        stats.tcp_sent_bytes += acc[TCP_SENT];
        stats.tcp_opened += acc[TCP_OPENED];
        let base = FIXED + self.les.len();
        stats.add_buckets(&self.les, &acc[FIXED..base], &seen[FIXED..base]);
        for (i, &id) in self.flags.iter().enumerate() {
            if seen[base + i]
                && let Some(name) = (id as usize).checked_sub(1).and_then(|i| flag_names.get(i))
            {
                stats.add_flag(name, acc[base + i]);
            }
        }
    }
}
