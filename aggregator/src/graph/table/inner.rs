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
                    *inc = None; // The id may be reused by another edge.
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
        // A block's samples come one after the other. `FAR` samples ahead the block's entry is
        // asked for; `NEAR` ahead (the entry is in cache by then), the row the samples will
        // write.
        const FAR: usize = 64;
        const NEAR: usize = 24;
        let (mut far_block, mut near_block) = (usize::MAX, usize::MAX);
        for (i, &(series_ref, t, v)) in samples.iter().enumerate() {
            if let Some(&(ahead, _, _)) = samples.get(i + FAR)
                && let Some(b) = self.block_of(ahead)
                && b != far_block
            {
                far_block = b;
                if let Some(entry) = &self.blocks[b] {
                    prefetch::value(entry);
                }
            }
            if let Some(&(ahead, _, _)) = samples.get(i + NEAR)
                && let Some(b) = self.block_of(ahead)
                && b != near_block
            {
                near_block = b;
                if let Some(entry) = &self.blocks[b] {
                    entry.block.prefetch_next_row();
                }
            }
            let Some(&loc) = self.by_ref.get(series_ref as usize) else {
                continue;
            };
            if is_stale_nan(v) {
                continue;
            }
            let (b, c) = match loc {
                Loc::None => continue,
                Loc::Gauge(g) => {
                    // Gauges need only their newest value.
                    let Some(track) = self.gauges[g as usize].as_mut() else {
                        continue;
                    };
                    if track.last.is_some_and(|s| s.timestamp_ms >= t) {
                        continue; // The store refused it too: a duplicate or out of order.
                    }
                    self.newest_ms = self.newest_ms.max(t);
                    track.last = Some(Sample {
                        timestamp_ms: t,
                        value: v,
                    });
                    continue;
                }
                Loc::Column(b, c) => (b as usize, c as usize),
            };
            let Some(entry) = self.blocks[b].as_mut() else {
                continue;
            };
            match entry.block.push(c, t, v) {
                Pushed::Refused => continue, // The store refused it too: a duplicate or out of order.
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

    /// Settles the blocks that received samples ([`Block::settle`]) and adds the increments
    /// of their primary series into their services' (health) and edges' (derived series)
    /// increments, through each block's [`Plan`].
    pub(super) fn fold(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty_blocks);
        for (i, &b) in dirty.iter().enumerate() {
            // The entries of blocks further down the list are asked for early, then the rows
            // they will settle.
            if let Some(&a) = dirty.get(i + 8)
                && let Some(entry) = &self.blocks[a as usize]
            {
                prefetch::value(entry);
            }
            if let Some(&a) = dirty.get(i + 4)
                && let Some(entry) = &self.blocks[a as usize]
            {
                entry.block.prefetch_unsettled();
            }
            let Some(entry) = self.blocks[b as usize].as_mut() else {
                continue;
            };
            entry.dirty = false;
            let increments = &mut self.increments;
            increments.clear();
            increments.resize(entry.block.columns(), 0.0);
            let roles = &entry.roles;
            entry
                .block
                .settle(|c| roles[c].first_counts, |c, inc| increments[c] += inc);
            if !entry.has_primary {
                continue;
            }
            let buckets = entry.plan(&mut self.plans).buckets();
            let edge_inc = if self.no_edge_increments {
                None
            } else {
                let e = entry.edge as usize;
                if self.edge_increments.len() <= e {
                    self.edge_increments.resize(e + 1, None);
                }
                if self.edge_increments[e].is_none() {
                    self.dirty_edges.push(entry.edge);
                }
                Some(self.edge_increments[e].get_or_insert_with(|| EdgeStats::with_buckets(buckets)))
            };
            let slot = &mut self.services[entry.service as usize];
            if slot.pending.is_none() {
                self.dirty_services.push(entry.service);
            }
            let service_inc = slot.pending.get_or_insert_with(|| ServiceIncrements {
                stats: EdgeStats::with_buckets(buckets),
                ..ServiceIncrements::default()
            });
            service_inc.newest_ms = service_inc.newest_ms.max(entry.block.newest_row_time());
            let Some(plan) = &entry.plan else { continue };
            let into = edge_inc.into_iter().chain([&mut service_inc.stats]);
            plan.add_increments(|c| increments[c], &mut self.sums, into, &self.flag_names);
        }
        dirty.clear();
        self.dirty_blocks = dirty;
    }
}
