//! The series registry: maps label sets to stable series ids, keeps each series' labels as
//! interned symbol pairs, and owns the postings index.
//!
//! Lookups hash the label strings (with a per-store random key, so crafted label sets cannot
//! force collisions cheaply) and then compare the candidate's labels string by string: two label
//! sets with the same hash are two series, never one.
//!
//! A series can be forgotten ([`Registry::forget`]): its labels, hash entry, postings and symbol
//! uses go; its id is never handed out again, so a stale ref can never reach another series.

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

/// A series' labels as (name, value) symbols in name order.
type Pairs = Box<[(SymbolId, SymbolId)]>;

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
    /// Series id → its labels as (name, value) symbols in name order; `None` once forgotten.
    labels: Vec<Option<Pairs>>,
    /// Ids forgotten so far.
    forgotten: usize,
    pub(crate) postings: Postings,
}

impl Registry {
    fn hash(&self, labels: &Labels) -> u64 {
        self.hash_strs(labels.iter().map(|l| (l.name.as_str(), l.value.as_str())))
    }

    fn hash_strs<'a>(&self, pairs: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
        #[cfg(test)]
        if let Some(h) = self.constant_hash {
            return h;
        }
        let mut h = self.hasher.build_hasher();
        for (name, value) in pairs {
            h.write(name.as_bytes());
            h.write_u8(0xff);
            h.write(value.as_bytes());
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

    /// The id of the series whose labels are exactly `pairs` (name order), if it exists: a lookup
    /// without building a [`Labels`].
    pub(crate) fn get_pairs(&self, pairs: &[(&str, &str)]) -> Option<SeriesId> {
        let hash = self.hash_strs(pairs.iter().copied());
        let inner = self.inner.read();
        inner.find_by(hash, |id| inner.pairs_equal(id, pairs))
    }

    /// The id of the series with exactly `labels`, creating it if new. `on_create` runs under the
    /// write lock with the new id, before any reader can see it, so per-id storage is in place
    /// by the time a select returns the id. `on_found` runs with an existing id under a lock
    /// [`Registry::forget`] waits for, so it can unmark the series before it could be forgotten.
    pub(crate) fn get_or_create(
        &self,
        labels: &Labels,
        on_create: impl FnOnce(SeriesId),
        on_found: impl Fn(SeriesId),
    ) -> SeriesId {
        let hash = self.hash(labels);
        {
            let inner = self.inner.read();
            if let Some(id) = inner.find(hash, labels) {
                on_found(id);
                return id;
            }
        }
        let mut inner = self.inner.write();
        if let Some(id) = inner.find(hash, labels) {
            on_found(id);
            return id;
        }
        let id =
            SeriesId::try_from(inner.labels.len()).unwrap_or_else(|_| panic!("series id space exhausted"));
        let pairs: Pairs = labels
            .iter()
            .map(|l| (inner.symbols.intern(&l.name), inner.symbols.intern(&l.value)))
            .collect();
        for &(n, v) in pairs.iter() {
            inner.postings.add(n, v, id);
        }
        inner.labels.push(Some(pairs));
        if let Some(first) = inner.by_hash.insert(hash, id) {
            // Keep the first series in the map and queue the newcomer behind it.
            inner.by_hash.insert(hash, first);
            inner.collisions.entry(hash).or_default().push(id);
        }
        on_create(id);
        id
    }

    /// Forgets each of `ids` for which `confirm` (run under the write lock) says yes: removes
    /// its hash entry, postings and symbol uses. Returns how many were forgotten.
    pub(crate) fn forget(&self, ids: &[SeriesId], confirm: impl Fn(SeriesId) -> bool) -> usize {
        let mut inner = self.inner.write();
        let mut n = 0;
        // (name, value, id) of every label pair forgotten, removed from the postings per pair.
        let mut removed: Vec<(SymbolId, SymbolId, SeriesId)> = Vec::new();
        for &id in ids {
            if !inner.is_live(id) || !confirm(id) {
                continue;
            }
            let Some(pairs) = inner.labels.get_mut(id as usize).and_then(Option::take) else {
                continue;
            };
            let hash = self.hash_strs(
                pairs
                    .iter()
                    .map(|&(k, v)| (inner.symbols.resolve(k), inner.symbols.resolve(v))),
            );
            inner.unhash(hash, id);
            removed.extend(pairs.iter().map(|&(k, v)| (k, v, id)));
            inner.forgotten += 1;
            n += 1;
        }
        removed.sort_unstable();
        removed.dedup();
        let mut ids_of_pair: Vec<SeriesId> = Vec::new();
        for group in removed.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
            let (k, v) = (group[0].0, group[0].1);
            ids_of_pair.clear();
            ids_of_pair.extend(group.iter().map(|r| r.2));
            inner.postings.remove_many(k, v, &ids_of_pair);
            for _ in group {
                inner.symbols.release(k);
                inner.symbols.release(v);
            }
        }
        n
    }
}

impl RegistryInner {
    /// Removes `id` from the hash lookup, promoting a colliding series if it was first.
    fn unhash(&mut self, hash: u64, id: SeriesId) {
        if self.by_hash.get(&hash) == Some(&id) {
            let next = self
                .collisions
                .get_mut(&hash)
                .and_then(|c| (!c.is_empty()).then(|| c.remove(0)));
            match next {
                Some(next) => {
                    self.by_hash.insert(hash, next);
                }
                None => {
                    self.by_hash.remove(&hash);
                }
            }
        } else if let Some(c) = self.collisions.get_mut(&hash) {
            c.retain(|&x| x != id);
        }
        if self.collisions.get(&hash).is_some_and(Vec::is_empty) {
            self.collisions.remove(&hash);
        }
    }

    fn find(&self, hash: u64, labels: &Labels) -> Option<SeriesId> {
        self.find_by(hash, |id| self.labels_equal(id, labels))
    }

    fn find_by(&self, hash: u64, equal: impl Fn(SeriesId) -> bool) -> Option<SeriesId> {
        let first = *self.by_hash.get(&hash)?;
        std::iter::once(first)
            .chain(self.collisions.get(&hash).into_iter().flatten().copied())
            .find(|&id| equal(id))
    }

    fn pairs_equal(&self, id: SeriesId, want: &[(&str, &str)]) -> bool {
        let pairs = self.pairs(id);
        pairs.len() == want.len()
            && pairs.iter().zip(want).all(|(&(n, v), &(name, value))| {
                self.symbols.resolve(n) == name && self.symbols.resolve(v) == value
            })
    }

    fn labels_equal(&self, id: SeriesId, labels: &Labels) -> bool {
        let pairs = self.pairs(id);
        pairs.len() == labels.len()
            && pairs
                .iter()
                .zip(labels)
                .all(|(&(n, v), l)| self.symbols.resolve(n) == l.name && self.symbols.resolve(v) == l.value)
    }

    /// Number of ids handed out (the next id), forgotten ones included.
    pub(crate) fn len(&self) -> usize {
        self.labels.len()
    }

    /// Number of series not forgotten.
    pub(crate) fn live(&self) -> usize {
        self.labels.len() - self.forgotten
    }

    /// Number of series forgotten.
    pub(crate) fn forgotten(&self) -> usize {
        self.forgotten
    }

    /// Whether `id` names a series that is not forgotten.
    pub(crate) fn is_live(&self, id: SeriesId) -> bool {
        self.labels.get(id as usize).is_some_and(Option::is_some)
    }

    /// The (name, value) symbols of `id`, in name order (none once forgotten).
    pub(crate) fn pairs(&self, id: SeriesId) -> &[(SymbolId, SymbolId)] {
        self.labels
            .get(id as usize)
            .and_then(Option::as_deref)
            .unwrap_or(&[])
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
        let labels = self.labels.capacity() * size_of::<Option<Pairs>>()
            + self
                .labels
                .iter()
                .map(|p| p.as_ref().map_or(0, |p| p.len()) * size_of::<(SymbolId, SymbolId)>())
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
            .map(|l| reg.get_or_create(l, |id| created.push(id), |_| {}))
            .collect();
        assert_eq!(ids, [0, 1, 2, 3, 4]);
        assert_eq!(created, ids);
        for (l, id) in sets.iter().zip(&ids) {
            assert_eq!(reg.get_or_create(l, |_| panic!("must exist"), |_| {}), *id);
            assert_eq!(&reg.read().labels(*id), l);
        }
        assert_eq!(reg.read().collisions.get(&42).map(Vec::len), Some(4));
    }

    #[test]
    fn empty_and_prefix_label_sets_are_distinct() {
        let reg = Registry::default();
        let a = reg.get_or_create(&Labels::empty(), |_| {}, |_| {});
        let b = reg.get_or_create(&Labels::from_pairs([("a", "b")]), |_| {}, |_| {});
        let c = reg.get_or_create(&Labels::from_pairs([("a", "b"), ("c", "d")]), |_| {}, |_| {});
        let d = reg.get_or_create(&Labels::from_pairs([("ab", "")]), |_| {}, |_| {});
        assert_eq!([a, b, c, d], [0, 1, 2, 0]);
        assert_eq!(reg.read().symbols.len(), 4);
    }

    #[test]
    fn forgetting_removes_lookup_postings_and_symbols_and_never_reuses_ids() {
        for constant_hash in [None, Some(7)] {
            let reg = Registry {
                constant_hash,
                ..Registry::default()
            };
            let sets: Vec<Labels> = (0..4)
                .map(|i| Labels::from_pairs([("__name__", "up"), ("pod", &*format!("p{i}"))]))
                .collect();
            let ids: Vec<SeriesId> = sets
                .iter()
                .map(|l| reg.get_or_create(l, |_| {}, |_| {}))
                .collect();
            assert_eq!(reg.forget(&[1], |_| false), 0, "not confirmed");
            assert_eq!(reg.forget(&[0, 2, 2], |_| true), 2);
            let inner = reg.read();
            assert!(!inner.is_live(0) && inner.is_live(1) && !inner.is_live(2));
            assert_eq!((inner.len(), inner.live(), inner.forgotten()), (4, 2, 2));
            assert!(inner.symbols.get("p0").is_none() && inner.symbols.get("p1").is_some());
            let name = inner.symbols.get("__name__").unwrap();
            let up = inner.symbols.get("up").unwrap();
            assert_eq!(inner.postings.get(name, up), [1, 3]);
            assert_eq!(inner.labels(0), Labels::empty());
            drop(inner);
            assert_eq!(reg.get(&sets[0]), None);
            assert_eq!(reg.get(&sets[1]), Some(ids[1]));
            assert_eq!(
                reg.get(&sets[3]),
                Some(ids[3]),
                "a colliding survivor is still found"
            );
            // The same labels again: a new id, never the forgotten one.
            assert_eq!(reg.get_or_create(&sets[0], |_| {}, |_| {}), 4);
            assert_eq!(reg.read().labels(4), sets[0]);
        }
    }
}
