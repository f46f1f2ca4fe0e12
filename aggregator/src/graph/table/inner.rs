//! The table's mutations under its lock: ids for edges, flags and services, inserting series into
//! blocks, applying a batch, expiring rows and folding the blocks' increments.

use super::*;
use crate::graph::prefetch;

impl Inner {
    pub(super) fn edge_id(&mut self, key: &FineEdge) -> u32 {
        if let Some(&id) = self.edge_ids.get(key) {
            return id;
        }
        let entry = EdgeEntry {
            key: Arc::new(key.clone()),
            tracks: 0,
        };
        let id = match self.free_edges.pop() {
            Some(id) => {
                self.edges[id as usize] = Some(entry);
                id
            }
            None => {
                self.edges.push(Some(entry));
                (self.edges.len() - 1) as u32
            }
        };
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
                    states: Vec::new(),
                    plan: None,
                    has_primary: false,
                    dirty: false,
                    newest_t: i64::MIN,
                    block: Block::default(),
                };
                let b = match self.free_blocks.pop() {
                    Some(b) => {
                        self.blocks[b as usize] = Some(entry);
                        b
                    }
                    None => {
                        self.blocks.push(Some(entry));
                        (self.blocks.len() - 1) as u32
                    }
                };
                self.block_ids.insert(key, b);
                b
            }
        };
        let born = self.newest_ms;
        let Some(entry) = self.blocks[b as usize].as_mut() else {
            return;
        };
        let c = entry.block.add_column();
        let state = SeriesState {
            block: b,
            col: c as u32,
            last: f64::NAN,
            pending: 0.0,
        };
        let s = match self.free_states.pop() {
            Some(s) => {
                self.states[s as usize] = state;
                s
            }
            None => {
                self.states.push(state);
                (self.states.len() - 1) as u32
            }
        };
        entry.roles.push(role);
        entry.refs.push(series_ref);
        entry.born.push(born);
        entry.states.push(s);
        entry.plan = None;
        entry.has_primary |= role.primary;
        self.set_loc(series_ref, Loc::Series(s));
    }

    pub(super) fn insert_gauge(&mut self, track: GaugeTrack) {
        let series_ref = track.series_ref;
        let g = match self.free_gauges.pop() {
            Some(g) => {
                self.gauges[g as usize] = Some(track);
                g
            }
            None => {
                self.gauges.push(Some(track));
                (self.gauges.len() - 1) as u32
            }
        };
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
        let removed: Vec<(u64, u32)> = (0..drop.len())
            .filter(|&c| drop[c])
            .map(|c| (entry.refs[c], entry.states[c]))
            .collect();
        entry.roles = kept.iter().map(|&c| entry.roles[c]).collect();
        entry.refs = kept.iter().map(|&c| entry.refs[c]).collect();
        entry.born = kept.iter().map(|&c| entry.born[c]).collect();
        entry.states = kept.iter().map(|&c| entry.states[c]).collect();
        entry.plan = None;
        entry.has_primary = entry.roles.iter().any(|r| r.primary);
        for (c, &s) in entry.states.iter().enumerate() {
            self.states[s as usize].col = c as u32;
        }
        let edge = entry.edge;
        if entry.states.is_empty() {
            let key = entry.key.clone();
            self.block_ids.remove(&key);
            self.blocks[b] = None;
            self.free_blocks.push(b as u32);
        }
        for &(r, s) in &removed {
            self.by_ref[r as usize] = Loc::None;
            self.free_states.push(s);
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

    /// The block of a sample of `series_ref`, if it goes to one.
    fn block_of(&self, series_ref: u64) -> Option<usize> {
        match self.by_ref.get(series_ref as usize) {
            Some(&Loc::Series(s)) => Some(self.states[s as usize].block as usize),
            _ => None,
        }
    }

    pub(super) fn apply(&mut self, samples: &[(u64, i64, f64)]) {
        // A block's samples come one after the other. Samples `FAR` ahead have their block's
        // entry asked for; `NEAR` ahead (the entry is in cache by then) the row they will write.
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
            let s = match loc {
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
                Loc::Series(s) => s as usize,
            };
            let state = &mut self.states[s];
            let (b, c) = (state.block as usize, state.col as usize);
            let Some(entry) = self.blocks[b].as_mut() else {
                continue;
            };
            let Pushed::Stored(previous) = entry.block.push(c, t, v, &mut state.last) else {
                continue; // The store refused it too: a duplicate or out of order.
            };
            self.newest_ms = self.newest_ms.max(t);
            // A reset restarts the counter from zero: the increment is the new value. Kept for
            // every series; only the primary ones are folded.
            let inc = if previous.is_nan() {
                if entry.roles[c].first_counts { v } else { 0.0 }
            } else if v < previous {
                v
            } else {
                v - previous
            };
            state.pending += inc;
            if !entry.has_primary {
                continue;
            }
            entry.newest_t = entry.newest_t.max(t);
            if !entry.dirty {
                entry.dirty = true;
                self.dirty_blocks.push(b as u32);
                self.services[entry.service as usize].known = true;
            }
        }
    }

    /// Adds the increments the dirty blocks' primary series collected into their services'
    /// (health) and edges' (derived series) increments, through each block's [`Plan`]: the
    /// per-sample path only adds into its column.
    pub(super) fn fold(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty_blocks);
        for (i, &b) in dirty.iter().enumerate() {
            // Blocks further down the list are asked for in steps: the entry, then its list of
            // series, then their states (each step needs the one before in cache).
            for (ahead, step) in [(12, 0), (8, 1), (4, 2)] {
                if let Some(&a) = dirty.get(i + ahead)
                    && let Some(entry) = &self.blocks[a as usize]
                {
                    match step {
                        0 => prefetch::value(entry),
                        1 => prefetch::slice(&entry.states),
                        _ => entry.states.iter().for_each(|&s| prefetch::line(&self.states[s as usize])),
                    }
                }
            }
            let Some(entry) = self.blocks[b as usize].as_mut() else {
                continue;
            };
            entry.dirty = false;
            let buckets = entry.plan(&mut self.plans).buckets();
            let mut spare_edge = EdgeStats::default();
            let edge_inc = if self.no_edge_increments {
                &mut spare_edge // Summed and dropped: the increments are summed once for both.
            } else {
                let e = entry.edge as usize;
                if self.edge_increments.len() <= e {
                    self.edge_increments.resize(e + 1, None);
                }
                if self.edge_increments[e].is_none() {
                    self.dirty_edges.push(entry.edge);
                }
                self.edge_increments[e].get_or_insert_with(|| EdgeStats::with_buckets(buckets))
            };
            let slot = &mut self.services[entry.service as usize];
            if slot.pending.is_none() {
                self.dirty_services.push(entry.service);
            }
            let service_inc = slot.pending.get_or_insert_with(|| ServiceIncrements {
                stats: EdgeStats::with_buckets(buckets),
                ..ServiceIncrements::default()
            });
            service_inc.newest_ms = service_inc.newest_ms.max(entry.newest_t);
            let Some(plan) = &entry.plan else { continue };
            let into = [edge_inc, &mut service_inc.stats];
            let states = &mut self.states;
            plan.add_increments(|c| states[entry.states[c] as usize].pending, &mut self.sums, into, &self.flag_names);
            for &s in &entry.states {
                states[s as usize].pending = 0.0;
            }
        }
        dirty.clear();
        self.dirty_blocks = dirty;
    }
}
