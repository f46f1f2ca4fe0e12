//! Series texts → cache entries, with the texts kept in one contiguous arena.
//!
//! A steady-state lookup compares the whole text (an Istio series is ~1 KB), so the keys of a
//! 10 MB scrape are read once per scrape. Kept in exposition order in one buffer, they stream from
//! memory like the body does; as individual boxed strings they were scattered between the label
//! sets built on the same misses, and the comparison dominated the scrape.

use std::hash::BuildHasher;

use hashbrown::HashTable;

/// Where a text lives in the arena, plus the caller's value.
pub(super) struct Keyed<V> {
    off: usize,
    len: usize,
    hash: u64,
    pub value: V,
}

pub(super) struct TextMap<V> {
    arena: String,
    live_bytes: usize,
    table: HashTable<Keyed<V>>,
    hasher: foldhash::fast::RandomState,
}

impl<V> TextMap<V> {
    pub fn new() -> Self {
        Self {
            arena: String::new(),
            live_bytes: 0,
            table: HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    pub fn hash(&self, text: &str) -> u64 {
        self.hasher.hash_one(text)
    }

    pub fn get_mut(&mut self, hash: u64, text: &str) -> Option<&mut V> {
        let arena = &self.arena;
        self.table
            .find_mut(hash, |k| k.hash == hash && &arena[k.off..k.off + k.len] == text)
            .map(|k| &mut k.value)
    }

    /// Inserts a text known to be absent.
    pub fn insert_new(&mut self, hash: u64, text: &str, value: V) {
        let off = self.arena.len();
        self.arena.push_str(text);
        self.live_bytes += text.len();
        let k = Keyed {
            off,
            len: text.len(),
            hash,
            value,
        };
        self.table.insert_unique(hash, k, |k| k.hash);
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Keeps the entries `keep` accepts; compacts the arena (keeping the order of the texts) when
    /// more than half of it is dead.
    pub fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        let mut live = self.live_bytes;
        self.table.retain(|k| {
            let kept = keep(&k.value);
            if !kept {
                live -= k.len;
            }
            kept
        });
        self.live_bytes = live;
        if self.arena.len() > 2 * live + (64 << 10) {
            self.compact();
        } else if self.arena.capacity() > self.arena.len() + self.arena.len() / 8 + 4096 {
            // The arena grew by doubling during the first scrapes; steady state adds nothing, so
            // give back the spare room (up to half of the arena) once.
            self.arena.shrink_to_fit();
        }
        if self.table.capacity() > 4 * self.table.len().max(1024) {
            self.table.shrink_to_fit(|k| k.hash);
        }
    }

    fn compact(&mut self) {
        let old = std::mem::take(&mut self.arena);
        let mut entries: Vec<&mut Keyed<V>> = self.table.iter_mut().collect();
        entries.sort_unstable_by_key(|k| k.off);
        let mut arena = String::with_capacity(self.live_bytes);
        for k in entries {
            let text = &old[k.off..k.off + k.len];
            k.off = arena.len();
            arena.push_str(text);
        }
        self.arena = arena;
    }

    pub fn clear(&mut self) {
        self.table.clear();
        self.arena.clear();
        self.live_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_survive_eviction_and_compaction() {
        let mut m = TextMap::new();
        let texts: Vec<String> = (0..5000)
            .map(|i| format!("m{{i=\"{i}\",pad=\"{}\"}}", "x".repeat(40)))
            .collect();
        for (i, t) in texts.iter().enumerate() {
            let h = m.hash(t);
            m.insert_new(h, t, i);
        }
        m.retain(|v| v % 10 == 0);
        assert_eq!(m.len(), 500);
        assert!(m.arena.len() < 500 * 60, "compacted");
        for (i, t) in texts.iter().enumerate() {
            let h = m.hash(t);
            assert_eq!(m.get_mut(h, t).map(|v| *v), (i % 10 == 0).then_some(i), "{t}");
        }
    }
}
