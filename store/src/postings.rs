//! The postings index: for every (label name, label value) the sorted ids of the series carrying
//! it, and the set operations matcher evaluation needs.
//!
//! Series ids are handed out in increasing order, so appending an id keeps a list sorted. Most
//! values of high-cardinality labels (pod names, instance addresses) name a single series; those
//! lists are stored inline instead of as a one-element `Vec`.

use std::collections::HashMap;

use crate::symbols::SymbolId;

/// A series' id inside the store (its [`crate::SeriesRef`]).
pub(crate) type SeriesId = u32;

/// The sorted series ids of one label pair.
#[derive(Clone, Debug)]
pub(crate) enum PostingList {
    /// Exactly one series.
    One(SeriesId),
    /// Two or more series, sorted.
    Many(Vec<SeriesId>),
}

impl PostingList {
    /// The ids, sorted.
    pub(crate) fn as_slice(&self) -> &[SeriesId] {
        match self {
            Self::One(id) => std::slice::from_ref(id),
            Self::Many(ids) => ids,
        }
    }

    /// Adds an id greater than every id in the list.
    fn push(&mut self, id: SeriesId) {
        match self {
            Self::One(first) => *self = Self::Many(vec![*first, id]),
            Self::Many(ids) => ids.push(id),
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Self::One(_) => 0,
            Self::Many(ids) => ids.capacity() * size_of::<SeriesId>(),
        }
    }
}

/// Label name → label value → posting list.
#[derive(Debug, Default)]
pub(crate) struct Postings {
    by_name: HashMap<SymbolId, HashMap<SymbolId, PostingList>>,
}

impl Postings {
    /// Records that series `id` (greater than every id added so far) has `name=value`.
    pub(crate) fn add(&mut self, name: SymbolId, value: SymbolId, id: SeriesId) {
        self.by_name
            .entry(name)
            .or_default()
            .entry(value)
            .and_modify(|l| l.push(id))
            .or_insert(PostingList::One(id));
    }

    /// Forgets that series `id` has `name=value`, dropping lists and names left empty.
    pub(crate) fn remove(&mut self, name: SymbolId, value: SymbolId, id: SeriesId) {
        let Some(values) = self.by_name.get_mut(&name) else {
            return;
        };
        let emptied = match values.get_mut(&value) {
            Some(PostingList::One(only)) => *only == id,
            Some(PostingList::Many(ids)) => {
                if let Ok(i) = ids.binary_search(&id) {
                    ids.remove(i);
                }
                if let [only] = ids[..] {
                    values.insert(value, PostingList::One(only));
                }
                false
            }
            None => false,
        };
        if emptied {
            values.remove(&value);
            if values.is_empty() {
                self.by_name.remove(&name);
            }
        }
    }

    /// Forgets that each of `ids` (sorted, distinct) has `name=value`, in one pass over the list
    /// (removing ids one at a time from a list of millions is quadratic when a deploy's worth of
    /// series is forgotten at once).
    pub(crate) fn remove_many(&mut self, name: SymbolId, value: SymbolId, ids: &[SeriesId]) {
        if let [id] = ids {
            return self.remove(name, value, *id);
        }
        let Some(values) = self.by_name.get_mut(&name) else {
            return;
        };
        let emptied = match values.get_mut(&value) {
            Some(PostingList::One(only)) => ids.binary_search(only).is_ok(),
            Some(PostingList::Many(list)) => {
                let mut gone = ids.iter().peekable();
                list.retain(|id| {
                    while gone.next_if(|g| **g < *id).is_some() {}
                    gone.next_if_eq(&id).is_none()
                });
                match list[..] {
                    [] => true,
                    [only] => {
                        values.insert(value, PostingList::One(only));
                        false
                    }
                    _ => false,
                }
            }
            None => false,
        };
        if emptied {
            values.remove(&value);
            if values.is_empty() {
                self.by_name.remove(&name);
            }
        }
    }

    /// The series with `name=value`.
    pub(crate) fn get(&self, name: SymbolId, value: SymbolId) -> &[SeriesId] {
        self.by_name
            .get(&name)
            .and_then(|v| v.get(&value))
            .map_or(&[], PostingList::as_slice)
    }

    /// Every value of `name` with its series.
    pub(crate) fn values(&self, name: SymbolId) -> impl Iterator<Item = (SymbolId, &[SeriesId])> {
        self.by_name
            .get(&name)
            .into_iter()
            .flat_map(|v| v.iter().map(|(k, l)| (*k, l.as_slice())))
    }

    /// Every label name in use.
    pub(crate) fn names(&self) -> impl Iterator<Item = SymbolId> + '_ {
        self.by_name.keys().copied()
    }

    /// Approximate heap bytes of the maps and lists.
    pub(crate) fn heap_bytes(&self) -> usize {
        let outer = size_of::<(SymbolId, HashMap<SymbolId, PostingList>)>() + 1;
        let inner = size_of::<(SymbolId, PostingList)>() + 1;
        self.by_name.capacity() * outer
            + self
                .by_name
                .values()
                .map(|m| m.capacity() * inner + m.values().map(PostingList::heap_bytes).sum::<usize>())
                .sum::<usize>()
    }
}

/// The ids in both sorted lists.
pub(crate) fn intersect(a: &[SeriesId], b: &[SeriesId]) -> Vec<SeriesId> {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let mut out = Vec::with_capacity(small.len());
    if small.len() * 16 < large.len() {
        // Galloping would be tighter; a binary search per id of the short list is close enough.
        let mut rest = large;
        for &id in small {
            match rest.binary_search(&id) {
                Ok(i) => {
                    out.push(id);
                    rest = &rest[i + 1..];
                }
                Err(i) => rest = &rest[i..],
            }
        }
        return out;
    }
    let (mut i, mut j) = (0, 0);
    while i < small.len() && j < large.len() {
        match small[i].cmp(&large[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(small[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// The ids of `a` not in `b` (both sorted).
pub(crate) fn subtract(a: &[SeriesId], b: &[SeriesId]) -> Vec<SeriesId> {
    let mut out = Vec::with_capacity(a.len());
    let mut j = 0;
    for &id in a {
        while j < b.len() && b[j] < id {
            j += 1;
        }
        if j >= b.len() || b[j] != id {
            out.push(id);
        }
    }
    out
}

/// The sorted, de-duplicated union of sorted lists.
pub(crate) fn union<'a>(lists: impl IntoIterator<Item = &'a [SeriesId]>) -> Vec<SeriesId> {
    let mut out = Vec::new();
    let mut sorted = true;
    for list in lists {
        // Appending lists that follow each other keeps the result sorted without a sort.
        if let (Some(last), Some(first)) = (out.last(), list.first()) {
            sorted &= last < first;
        }
        out.extend_from_slice(list);
    }
    if !sorted {
        out.sort_unstable();
        out.dedup();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removing_many_at_once_matches_removing_one_by_one() {
        let ids: Vec<SeriesId> = (0..200).collect();
        let gone: Vec<SeriesId> = ids.iter().copied().filter(|i| i % 3 == 0 || *i > 150).collect();
        let (mut one, mut many) = (Postings::default(), Postings::default());
        for &id in &ids {
            one.add(1, 2, id);
            many.add(1, 2, id);
        }
        for &id in &gone {
            one.remove(1, 2, id);
        }
        many.remove_many(1, 2, &gone);
        assert_eq!(one.get(1, 2), many.get(1, 2));
        // Down to one id (stored inline), then to none (the pair and the name go).
        let rest: Vec<SeriesId> = many.get(1, 2)[1..].to_vec();
        many.remove_many(1, 2, &rest);
        assert_eq!(many.get(1, 2), &[1]);
        many.remove_many(1, 2, &[0, 1, 5]);
        assert_eq!(many.get(1, 2), &[] as &[SeriesId]);
        assert_eq!(many.names().count(), 0);
    }

    #[test]
    fn set_operations() {
        let a = [1, 3, 5, 7, 9];
        let b = [3, 4, 5, 10];
        assert_eq!(intersect(&a, &b), [3, 5]);
        assert_eq!(intersect(&a, &[]), Vec::<u32>::new());
        let long: Vec<u32> = (0..1000).collect();
        assert_eq!(intersect(&[5, 500, 2000], &long), [5, 500]);
        assert_eq!(subtract(&a, &b), [1, 7, 9]);
        assert_eq!(subtract(&a, &[]), a);
        assert_eq!(union([&a[..], &b[..]]), [1, 3, 4, 5, 7, 9, 10]);
        assert_eq!(union([&[1u32, 2][..], &[3u32][..]]), [1, 2, 3]);
        assert_eq!(union(std::iter::empty()), Vec::<u32>::new());
    }

    #[test]
    fn lists_stay_sorted_and_single_ids_inline() {
        let mut p = Postings::default();
        p.add(0, 1, 0);
        p.add(0, 1, 4);
        p.add(0, 2, 5);
        assert_eq!(p.get(0, 1), [0, 4]);
        assert_eq!(p.get(0, 2), [5]);
        assert_eq!(p.get(0, 3), [] as [u32; 0]);
        assert_eq!(p.get(9, 1), [] as [u32; 0]);
        assert_eq!(p.values(0).count(), 2);
        assert_eq!(p.names().collect::<Vec<_>>(), [0]);
        p.remove(0, 1, 4);
        assert!(matches!(p.get(0, 1), [0]));
        p.remove(0, 1, 0);
        p.remove(0, 1, 0);
        assert_eq!(p.values(0).count(), 1);
        p.remove(0, 2, 5);
        assert_eq!(p.names().count(), 0);
    }
}
