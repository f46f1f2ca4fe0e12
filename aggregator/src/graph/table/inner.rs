//! The table's mutations under its lock: ids for edges, flags and services, inserting series into
//! blocks, applying a batch, expiring rows and folding the blocks' increments.

use super::*;

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

    pub(super) fn insert_series(&mut self, info: SeriesInfo, role: SeriesRole, service: u32, key: BlockKey) {
        let edge = key.0;
        if let Some(Some(e)) = self.edges.get_mut(edge as usize) {
            e.tracks += 1;
        }
        let series_ref = info.series_ref;
        let b = match self.block_ids.get(&key) {
            Some(&b) => b,
            None => {
                let entry = BlockEntry {
                    edge,
                    service,
                    buckets: 0,
                    key: key.clone(),
                    roles: Vec::new(),
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
        let Some(entry) = self.blocks[b as usize].as_mut() else {
            return;
        };
        entry.buckets += usize::from(is_bucket(&role));
        let c = entry.block.add_column(info);
        entry.roles.push(role);
        self.set_loc(series_ref, Loc::Column(b, c as u32));
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
    /// the block and edge when nothing is left). Returns how many series were dropped.
    pub(super) fn expire_block(&mut self, b: usize, cutoff: i64) -> usize {
        let Some(entry) = self.blocks[b].as_mut() else {
            return 0;
        };
        entry.block.expire(cutoff);
        let gone = |c: &Column<SeriesInfo>| c.last_t < cutoff && c.role.born_ms < cutoff;
        if entry.block.newest_row_full() || !entry.block.cols.iter().any(gone) {
            return 0;
        }
        let mut removed = Vec::new();
        let kept = entry.block.retain_columns(|c| {
            let drop = gone(c);
            if drop {
                removed.push(c.role.series_ref);
            }
            drop
        });
        entry.roles = kept.iter().map(|&c| entry.roles[c]).collect();
        entry.buckets = entry.roles.iter().filter(|r| is_bucket(r)).count();
        let edge = entry.edge;
        let moved: Vec<u64> = entry.block.cols.iter().map(|c| c.role.series_ref).collect();
        let empty = moved.is_empty();
        if empty {
            let key = entry.key.clone();
            self.block_ids.remove(&key);
            self.blocks[b] = None;
            self.free_blocks.push(b as u32);
        }
        for (c, r) in moved.into_iter().enumerate() {
            self.by_ref[r as usize] = Loc::Column(b as u32, c as u32);
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
                self.free_edges.push(edge);
                if let Some(inc) = self.edge_increments.get_mut(edge as usize) {
                    *inc = None; // The id may be reused by another edge.
                }
            }
        }
    }

    pub(super) fn apply(&mut self, samples: &[(u64, i64, f64)]) {
        for &(series_ref, t, v) in samples {
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
            let Pushed::Stored(previous) = entry.block.push(c, t, v) else {
                continue; // The store refused it too: a duplicate or out of order.
            };
            self.newest_ms = self.newest_ms.max(t);
            let info = &mut entry.block.cols[c].role;
            if !info.primary {
                continue;
            }
            // A reset restarts the counter from zero: the increment is the new value.
            let inc = if previous.is_nan() {
                if info.first_counts { v } else { 0.0 }
            } else if v < previous {
                v
            } else {
                v - previous
            };
            // Only into the column: the block's columns are folded into the service's and the
            // edge's increments once per take (the series of a block share their scrapes).
            info.pending += inc;
            info.touched = true;
            entry.newest_t = entry.newest_t.max(t);
            if !entry.dirty {
                entry.dirty = true;
                self.dirty_blocks.push(b as u32);
                self.services[entry.service as usize].known = true;
            }
        }
    }

    /// Adds the increments the dirty blocks' columns collected into their services' (health)
    /// and edges' (derived series) increments.
    pub(super) fn fold(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty_blocks);
        for &b in &dirty {
            let Some(entry) = self.blocks[b as usize].as_mut() else {
                continue;
            };
            entry.dirty = false;
            let e = entry.edge as usize;
            if self.edge_increments.len() <= e {
                self.edge_increments.resize(e + 1, None);
            }
            if self.edge_increments[e].is_none() {
                self.dirty_edges.push(entry.edge);
            }
            let buckets = entry.buckets;
            let edge_inc = self.edge_increments[e].get_or_insert_with(|| EdgeStats::with_buckets(buckets));
            let slot = &mut self.services[entry.service as usize];
            if slot.pending.is_none() {
                self.dirty_services.push(entry.service);
            }
            let service_inc = slot.pending.get_or_insert_with(|| ServiceIncrements {
                stats: EdgeStats::with_buckets(buckets),
                ..ServiceIncrements::default()
            });
            for (col, role) in entry.block.cols.iter_mut().zip(&entry.roles) {
                let info = &mut col.role;
                if !std::mem::take(&mut info.touched) {
                    continue;
                }
                let inc = std::mem::take(&mut info.pending);
                service_inc.add(role.measure, inc, entry.newest_t);
                add_rate(edge_inc, role, &self.flag_names, inc);
            }
        }
        dirty.clear();
        self.dirty_blocks = dirty;
    }
}
