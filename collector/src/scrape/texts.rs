//! Series texts → cache entries, keyed by a 128-bit hash of the text instead of the text itself.
//!
//! Keeping the texts (an Istio series is ~1 KB as exposed) cost about as much memory as the final
//! label sets, and a lookup had to compare the whole text anyway. Now a text is hashed once with
//! seeded XXH3-128 and only the hash is kept (16 bytes per series).
//!
//! Collisions: with a good 128-bit hash, the chance that any two of n distinct texts of one target
//! collide is about n²/2¹²⁹ — below 10⁻²⁷ for a million series, far below the rate of undetected
//! memory errors. XXH3 is not a cryptographic hash, so a target could in principle craft two texts
//! that collide; but the cache is per target, so the most a crafted collision can do is give one
//! of that target's samples the labels of another series of the same target — values the target
//! controls anyway. Target labels, relabelling and limits still apply to what it exposes.

use hashbrown::HashTable;

/// The hash key and the caller's value.
struct Keyed<V> {
    key: u128,
    value: V,
}

pub(super) struct TextMap<V> {
    table: HashTable<Keyed<V>>,
    seed: u64,
}

impl<V> TextMap<V> {
    pub fn new() -> Self {
        Self {
            table: HashTable::new(),
            seed: rand::random(),
        }
    }

    /// The key of `text` in this map.
    pub fn key(&self, text: &str) -> u128 {
        twox_hash::XxHash3_128::oneshot_with_seed(self.seed, text.as_bytes())
    }

    pub fn get_mut(&mut self, key: u128) -> Option<&mut V> {
        self.table
            .find_mut(key as u64, |k| k.key == key)
            .map(|k| &mut k.value)
    }

    /// Inserts a key known to be absent.
    pub fn insert_new(&mut self, key: u128, value: V) {
        self.table
            .insert_unique(key as u64, Keyed { key, value }, |k| k.key as u64);
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Keeps the entries `keep` accepts; gives back room left by a much larger past scrape.
    pub fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        self.table.retain(|k| keep(&k.value));
        if self.table.capacity() > 4 * self.table.len().max(1024) {
            self.table.shrink_to_fit(|k| k.key as u64);
        }
    }

    pub fn clear(&mut self) {
        self.table.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_survive_eviction() {
        let mut m = TextMap::new();
        let texts: Vec<String> = (0..5000)
            .map(|i| format!("m{{i=\"{i}\",pad=\"{}\"}}", "x".repeat(40)))
            .collect();
        for (i, t) in texts.iter().enumerate() {
            let k = m.key(t);
            m.insert_new(k, i);
        }
        m.retain(|v| v % 10 == 0);
        assert_eq!(m.len(), 500);
        for (i, t) in texts.iter().enumerate() {
            let k = m.key(t);
            assert_eq!(m.get_mut(k).map(|v| *v), (i % 10 == 0).then_some(i), "{t}");
        }
        // Keys depend on the map's seed but are stable within it.
        assert_eq!(m.key("a{b=\"c\"}"), m.key("a{b=\"c\"}"));
        assert_ne!(m.key("a{b=\"c\"}"), m.key("a{b=\"d\"}"));
    }
}
