//! The series registry: maps label sets to stable series ids, keeps each series' labels as
//! interned symbol pairs, and owns the postings index.
//!
//! Lookups hash the label strings (with a per-store random key, so crafted label sets cannot
//! force collisions cheaply) and then compare the candidate's labels string by string: two label
//! sets with the same hash are two series, never one.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

use meshfed_model::Labels;
use parking_lot::{RwLock, RwLockReadGuard};

use crate::postings::{Postings, SeriesId};
use crate::symbols::{SymbolId, SymbolTable};

/// Passes an already computed hash through unchanged.
#[derive(Default)]
pub(crate) struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// The registry. Creation takes the write lock; everything else reads.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    hasher: RandomState,
    /// Tests set this to make every label set hash alike.
    #[cfg(test)]
    pub(crate) constant_hash: Option<u64>,
    inner: RwLock<RegistryInner>,
}

/// The registry's contents, read under its lock.
#[derive(Debug, Default)]
pub(crate) struct RegistryInner {
    pub(crate) symbols: SymbolTable,
    /// Label hash → the first series with it.
    by_hash: HashMap<u64, SeriesId, BuildHasherDefault<IdentityHasher>>,
    /// Label hash → further series sharing it (a real collision; practically always empty).
    collisions: HashMap<u64, Vec<SeriesId>>,
    /// Series id → its labels as (name, value) symbols in name order.
    labels: Vec<Box<[(SymbolId, SymbolId)]>>,
    pub(crate) postings: Postings,
}

impl Registry {
    fn hash(&self, labels: &Labels) -> u64 {
        #[cfg(test)]
        if let Some(h) = self.constant_hash {
            return h;
        }
        let mut h = self.hasher.build_hasher();
        for l in labels {
            h.write(l.name.as_bytes());
            h.write_u8(0xff);
            h.write(l.value.as_bytes());
            h.write_u8(0xff);
        }
        h.finish()
    }

    /// Read access for lookups and matcher evaluation.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, RegistryInner> {
        self.inner.read()
    }

    /// The id of the series with exactly `labels`, if it exists.
    pub(crate) fn get(&self, labels: &Labels) -> Option<SeriesId> {
        self.inner.read().find(self.hash(labels), labels)
    }

    /// The id of the series with exactly `labels`, creating it if new. `on_create` runs under the
    /// write lock with the new id, before any reader can see it, so per-id storage is in place
    /// by the time a select returns the id.
    pub(crate) fn get_or_create(&self, labels: &Labels, on_create: impl FnOnce(SeriesId)) -> SeriesId {
        let hash = self.hash(labels);
        if let Some(id) = self.inner.read().find(hash, labels) {
            return id;
        }
        let mut inner = self.inner.write();
        if let Some(id) = inner.find(hash, labels) {
            return id;
        }
        let id =
            SeriesId::try_from(inner.labels.len()).unwrap_or_else(|_| panic!("series id space exhausted"));
        let pairs: Box<[(SymbolId, SymbolId)]> = labels
            .iter()
            .map(|l| (inner.symbols.intern(&l.name), inner.symbols.intern(&l.value)))
            .collect();
        for &(n, v) in pairs.iter() {
            inner.postings.add(n, v, id);
        }
        inner.labels.push(pairs);
        if let Some(first) = inner.by_hash.insert(hash, id) {
            // Keep the first series in the map and queue the newcomer behind it.
            inner.by_hash.insert(hash, first);
            inner.collisions.entry(hash).or_default().push(id);
        }
        on_create(id);
        id
    }
}

impl RegistryInner {
    fn find(&self, hash: u64, labels: &Labels) -> Option<SeriesId> {
        let first = *self.by_hash.get(&hash)?;
        std::iter::once(first)
            .chain(self.collisions.get(&hash).into_iter().flatten().copied())
            .find(|&id| self.labels_equal(id, labels))
    }

    fn labels_equal(&self, id: SeriesId, labels: &Labels) -> bool {
        let pairs = self.pairs(id);
        pairs.len() == labels.len()
            && pairs
                .iter()
                .zip(labels)
                .all(|(&(n, v), l)| self.symbols.resolve(n) == l.name && self.symbols.resolve(v) == l.value)
    }

    /// Number of series.
    pub(crate) fn len(&self) -> usize {
        self.labels.len()
    }

    /// The (name, value) symbols of `id`, in name order.
    pub(crate) fn pairs(&self, id: SeriesId) -> &[(SymbolId, SymbolId)] {
        self.labels.get(id as usize).map_or(&[], |p| p)
    }

    /// The labels of `id`.
    pub(crate) fn labels(&self, id: SeriesId) -> Labels {
        Labels::from_pairs(
            self.pairs(id)
                .iter()
                .map(|&(n, v)| (self.symbols.resolve(n), self.symbols.resolve(v))),
        )
    }

    /// Approximate heap bytes of the registry, split into (symbols, label pairs and hash maps,
    /// postings).
    pub(crate) fn heap_bytes(&self) -> (usize, usize, usize) {
        let labels = self.labels.capacity() * size_of::<Box<[(SymbolId, SymbolId)]>>()
            + self
                .labels
                .iter()
                .map(|p| p.len() * size_of::<(SymbolId, SymbolId)>())
                .sum::<usize>()
            + self.by_hash.capacity() * (size_of::<(u64, SeriesId)>() + 1)
            + self
                .collisions
                .values()
                .map(|v| v.capacity() * 4 + 40)
                .sum::<usize>();
        (self.symbols.heap_bytes(), labels, self.postings.heap_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colliding_hashes_never_merge_series() {
        let reg = Registry {
            constant_hash: Some(42),
            ..Registry::default()
        };
        let sets: Vec<Labels> = (0..5)
            .map(|i| Labels::from_pairs([("__name__", "up"), ("pod", &*format!("p{i}"))]))
            .collect();
        let mut created = Vec::new();
        let ids: Vec<SeriesId> = sets
            .iter()
            .map(|l| reg.get_or_create(l, |id| created.push(id)))
            .collect();
        assert_eq!(ids, [0, 1, 2, 3, 4]);
        assert_eq!(created, ids);
        for (l, id) in sets.iter().zip(&ids) {
            assert_eq!(reg.get_or_create(l, |_| panic!("must exist")), *id);
            assert_eq!(&reg.read().labels(*id), l);
        }
        assert_eq!(reg.read().collisions.get(&42).map(Vec::len), Some(4));
    }

    #[test]
    fn empty_and_prefix_label_sets_are_distinct() {
        let reg = Registry::default();
        let a = reg.get_or_create(&Labels::empty(), |_| {});
        let b = reg.get_or_create(&Labels::from_pairs([("a", "b")]), |_| {});
        let c = reg.get_or_create(&Labels::from_pairs([("a", "b"), ("c", "d")]), |_| {});
        let d = reg.get_or_create(&Labels::from_pairs([("ab", "")]), |_| {});
        assert_eq!([a, b, c, d], [0, 1, 2, 0]);
        assert_eq!(reg.read().symbols.len(), 4);
    }
}
