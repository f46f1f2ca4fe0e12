//! The table's mutations under its lock: ids for edges, flags and services, inserting series into
//! blocks, applying a batch, expiring rows and folding the blocks' increments.

use super::*;
use crate::graph::prefetch;

/// Puts `item` into a free slot of `slots` (one listed in `free`) or a new one; returns its index.
fn put<T>(slots: &mut Vec<Option<T>>, free: &mut Vec<u32>, item: T) -> u32 {
    match free.pop() {
        Some(i) => {
            slots[i as usize] = Some(item);
            i
        }
        None => {
            slots.push(Some(item));
            (slots.len() - 1) as u32
        }
    }
}

impl Inner {
    pub(super) fn edge_id(&mut self, key: &FineEdge) -> u32 {
        if let Some(&id) = self.edge_ids.get(key) {
            return id;
        }
        let entry = EdgeEntry {
            key: Arc::new(key.clone()),
            tracks: 0,
        };
        let id = put(&mut self.edges, &mut self.free_edges, entry);
        self.edge_ids.insert(key.clone(), id);
        self.keys = None;
        id
    }

    pub(super) fn flag_id(&mut self, flag: Name) -> u32 {
        if let Some(&id) = self.flag_ids.get(&flag) {
            return id;
        }
        self.flag_names.push(flag.clone());
        let id = self.flag_names.len() as u32;
        self.flag_ids.insert(flag, id);
        id
    }

    pub(super) fn service_id(&mut self, key: ServiceKey) -> u32 {
        if let Some(&id) = self.service_ids.get(&key) {
            return id;
        }
        let id = self.services.len() as u32;
        self.service_ids.insert(key.clone(), id);
        self.services.push(ServiceSlot {
            key,
            known: false,
            pending: None,
        });
        id
    }

    pub(super) fn set_loc(&mut self, series_ref: u64, loc: Loc) {
        let idx = series_ref as usize;
        if self.by_ref.len() <= idx {
            self.by_ref.resize(idx + 1, Loc::None);
        }
        self.by_ref[idx] = loc;
    }

    pub(super) fn insert_series(&mut self, series_ref: u64, role: SeriesRole, service: u32, key: BlockKey) {
        let edge = key.0;
        if let Some(Some(e)) = self.edges.get_mut(edge as usize) {
            e.tracks += 1;
        }
        let b = match self.block_ids.get(&key) {
            Some(&b) => b,
            None => {
                let entry = BlockEntry {
                    edge,
                    service,
                    key: key.clone(),
                    roles: Vec::new(),
                    refs: Vec::new(),
                    born: Vec::new(),
                    plan: None,
                    has_primary: false,
                    dirty: false,
                    block: Block::with_retention(self.retain_ms),
                };
                let b = put(&mut self.blocks, &mut self.free_blocks, entry);
                self.block_ids.insert(key, b);
                b
            }
        };
        let born = self.newest_ms;
        let Some(entry) = self.blocks[b as usize].as_mut() else {
            return;
        };
        let c = entry.block.add_column();
        entry.roles.push(role);
        entry.refs.push(series_ref);
        entry.born.push(born);
        entry.plan = None;
        entry.has_primary |= role.primary;
        self.set_loc(series_ref, Loc::Column(b, c as u32));
    }

    pub(super) fn insert_gauge(&mut self, track: GaugeTrack) {
        let series_ref = track.series_ref;
        let g = put(&mut self.gauges, &mut self.free_gauges, track);
        self.set_loc(series_ref, Loc::Gauge(g));
    }

    /// Forgets the block's rows older than `cutoff` and its series left without samples (and
    /// the block and edge when nothing is left). Returns how many series were dropped. Folds
    /// pending increments first (the caller does), so none is lost with its series.
    pub(super) fn expire_block(&mut self, b: usize, cutoff: i64) -> usize {
        let Some(entry) = self.blocks[b].as_mut() else {
            return 0;
        };
        entry.block.expire(cutoff);
        if entry.block.newest_row_full() {
            return 0;
        }
        let gone = |e: &BlockEntry, c: usize| e.born[c] < cutoff && !e.block.has_samples(c);
        if !(0..entry.block.columns()).any(|c| gone(entry, c)) {
            return 0;
        }
        let drop: Vec<bool> = (0..entry.block.columns()).map(|c| gone(entry, c)).collect();
        let kept = entry.block.retain_columns(|c| drop[c]);
        let removed: Vec<u64> = (0..drop.len())
            .filter(|&c| drop[c])
            .map(|c| entry.refs[c])
            .collect();
        entry.roles = kept.iter().map(|&c| entry.roles[c]).collect();
        entry.refs = kept.iter().map(|&c| entry.refs[c]).collect();
        entry.born = kept.iter().map(|&c| entry.born[c]).collect();
        entry.plan = None;
        entry.has_primary = entry.roles.iter().any(|r| r.primary);
        let edge = entry.edge;
        let moved = std::mem::take(&mut entry.refs);
        if moved.is_empty() {
            let key = entry.key.clone();
            self.block_ids.remove(&key);
            self.blocks[b] = None;
            self.free_blocks.push(b as u32);
        }
        for (c, &r) in moved.iter().enumerate() {
            self.by_ref[r as usize] = Loc::Column(b as u32, c as u32);
        }
        if let Some(entry) = self.blocks[b].as_mut() {
            entry.refs = moved;
        }
        for &r in &removed {
            self.by_ref[r as usize] = Loc::None;
            self.release_edge(edge);
        }
        removed.len()
    }

    /// One series of `edge` is gone; forgets the edge with its last series.
    pub(super) fn release_edge(&mut self, edge: u32) {
        if let Some(slot) = self.edges.get_mut(edge as usize)
            && let Some(e) = slot
        {
            e.tracks -= 1;
            if e.tracks == 0 {
                self.edge_ids.remove(&e.key);
                *slot = None;
                self.keys = None;
                self.free_edges.push(edge);
                if let Some(inc) = self.edge_increments.get_mut(edge as usize) {
                    inc.0 = false; // The id may be reused by another edge.
                }
            }
        }
    }

    /// The block a sample of `series_ref` goes to, if any.
    fn block_of(&self, series_ref: u64) -> Option<usize> {
        match self.by_ref.get(series_ref as usize) {
            Some(&Loc::Column(b, _)) => Some(b as usize),
            _ => None,
        }
    }

    pub(super) fn apply(&mut self, samples: &[(u64, i64, f64)]) {
        // A block's samples come one after the other, in column order: each such run is
        // stored at once. When a run starts, the entry of the block `FAR` samples ahead is
        // asked for, and the row of the one `NEAR` ahead (its entry is in cache by then).
        const FAR: usize = 64;
        const NEAR: usize = 24;
        let mut i = 0;
        while i < samples.len() {
            let (series_ref, t, v) = samples[i];
            i += 1;
            // Most of a proxy's series are not the graph's: they cost this lookup alone.
            let loc = match self.by_ref.get(series_ref as usize) {
                None | Some(Loc::None) => continue,
                Some(&loc) => loc,
            };
            if is_stale_nan(v) {
                continue;
            }
            let (b, c) = match loc {
                Loc::None => continue,
                Loc::Gauge(g) => {
                    self.apply_gauge(g, t, v);
                    continue;
                }
                Loc::Column(b, c) => (b as usize, c as usize),
            };
            if let Some(&(ahead, _, _)) = samples.get(i - 1 + FAR)
                && let Some(b) = self.block_of(ahead)
                && let Some(entry) = &self.blocks[b]
            {
                prefetch::value(entry);
            }
            if let Some(&(ahead, _, _)) = samples.get(i - 1 + NEAR)
                && let Some(b) = self.block_of(ahead)
                && let Some(entry) = &self.blocks[b]
            {
                entry.block.prefetch_next_row();
            }
            // The run: the next samples of the same block's next columns at the same time.
            let from = i - 1;
            while let Some(&(r, tn, vn)) = samples.get(i)
                && tn == t
                && !is_stale_nan(vn)
                && self.by_ref.get(r as usize) == Some(&Loc::Column(b as u32, (c + i - from) as u32))
            {
                i += 1;
            }
            let Some(entry) = self.blocks[b].as_mut() else {
                continue;
            };
            let run = samples[from..i].iter().map(|s| s.2);
            match entry.block.push_run(c, t, run) {
                Pushed::Refused => continue, // The store refused them too: duplicates or out of order.
                Pushed::Stored => {}
                Pushed::NewRow | Pushed::Late => {
                    // The increments and resets are worked out when the block is settled.
                    if !entry.dirty {
                        entry.dirty = true;
                        self.dirty_blocks.push(b as u32);
                        if entry.has_primary {
                            self.services[entry.service as usize].known = true;
                        }
                    }
                }
            }
            self.newest_ms = self.newest_ms.max(t);
        }
    }

    /// A sample of an endpoint gauge: only its newest value is kept.
    fn apply_gauge(&mut self, g: u32, t: i64, v: f64) {
        let Some(track) = self.gauges[g as usize].as_mut() else {
            return;
        };
        if track.last.is_some_and(|s| s.timestamp_ms >= t) {
            return; // The store refused it too: a duplicate or out of order.
        }
        self.newest_ms = self.newest_ms.max(t);
        track.last = Some(Sample {
            timestamp_ms: t,
            value: v,
        });
    }

    /// Settles the blocks that received samples ([`Settling::settle`]).
    pub(super) fn fold(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty_blocks);
        let (blocks, mut settling) = self.split();
        for (i, &b) in dirty.iter().enumerate() {
            // The entries of blocks further down the list are asked for early, then the rows
            // they will settle.
            if let Some(&a) = dirty.get(i + 8)
                && let Some(entry) = &blocks[a as usize]
            {
                prefetch::value(entry);
            }
            if let Some(&a) = dirty.get(i + 4)
                && let Some(entry) = &blocks[a as usize]
            {
                entry.block.prefetch_unsettled();
            }
            if let Some(entry) = blocks[b as usize].as_mut() {
                settling.settle(entry);
            }
        }
        dirty.clear();
        self.dirty_blocks = dirty;
    }

    /// The blocks, and what settling them writes to.
    pub(super) fn split(&mut self) -> (&mut Vec<Option<BlockEntry>>, Settling<'_>) {
        let edge_increments = if self.no_edge_increments {
            None
        } else {
            Some((&mut self.edge_increments, &mut self.dirty_edges))
        };
        let settling = Settling {
            increments: &mut self.increments,
            sums: &mut self.sums,
            plans: &mut self.plans,
            services: &mut self.services,
            dirty_services: &mut self.dirty_services,
            edge_increments,
            flag_names: &self.flag_names,
        };
        (&mut self.blocks, settling)
    }
}

/// An edge's increments not yet drained (`true`) and their values (see
/// [`Inner::edge_increments`]).
pub(super) type PendingIncrements = (bool, EdgeStats);

/// What settling a block writes to: its service's (health) and edge's (derived series)
/// increments, with the scratch space it uses.
pub(super) struct Settling<'a> {
    increments: &'a mut Vec<f64>,
    sums: &'a mut Sums,
    plans: &'a mut Plans,
    services: &'a mut [ServiceSlot],
    dirty_services: &'a mut Vec<u32>,
    /// `None` when nobody takes the edges' increments.
    edge_increments: Option<(&'a mut Vec<PendingIncrements>, &'a mut Vec<u32>)>,
    pub(super) flag_names: &'a [Name],
}

impl Settling<'_> {
    /// Makes sure the entry has its plan (after its series changed).
    pub(super) fn plan(&mut self, entry: &mut BlockEntry) {
        entry.plan(self.plans);
    }

    /// Settles a block that received samples ([`Block::settle`]) and adds the increments of its
    /// primary series into its service's and edge's increments, through its [`Plan`]. The
    /// caller takes the block off [`Inner::dirty_blocks`].
    pub(super) fn settle(&mut self, entry: &mut BlockEntry) {
        entry.dirty = false;
        let increments = &mut *self.increments;
        increments.clear();
        increments.resize(entry.block.columns(), 0.0);
        let roles = &entry.roles;
        entry
            .block
            .settle(|c| roles[c].first_counts, |c, inc| increments[c] += inc);
        if !entry.has_primary {
            return;
        }
        let buckets = entry.plan(self.plans).buckets();
        let edge_inc = self
            .edge_increments
            .as_mut()
            .map(|(edge_increments, dirty_edges)| {
                let e = entry.edge as usize;
                if edge_increments.len() <= e {
                    edge_increments.resize_with(e + 1, Default::default);
                }
                let (pending, stats) = &mut edge_increments[e];
                if !*pending {
                    *pending = true;
                    dirty_edges.push(entry.edge);
                    stats.clear();
                    stats.duration_buckets.reserve(buckets);
                }
                stats
            });
        let slot = &mut self.services[entry.service as usize];
        if slot.pending.is_none() {
            self.dirty_services.push(entry.service);
        }
        let service_inc = slot.pending.get_or_insert_with(|| ServiceIncrements {
            stats: EdgeStats::with_buckets(buckets),
            ..ServiceIncrements::default()
        });
        service_inc.newest_ms = service_inc.newest_ms.max(entry.block.newest_row_time());
        let Some(plan) = &entry.plan else { return };
        let into = edge_inc.into_iter().chain([&mut service_inc.stats]);
        plan.add_increments(|c| increments[c], self.sums, into, self.flag_names);
    }
}
