//! [`Sym`]: a label name or value interned in one process-wide table.
//!
//! Across the series of a mesh the same few strings repeat massively: metric names, `cluster_name`
//! values, and the target labels (`namespace`, `pod`, `instance`, `job`) that every series of a
//! target carries. A [`Sym`] is an 8-byte pointer to a shared, reference-counted copy, so a
//! series' label set holds two pointers per label instead of its own copy of the text.
//!
//! Interning takes a lock, but only when a label set is built (a new series); reading a [`Sym`]
//! does not. The table holds one reference to each string; entries nobody else references are
//! pruned whenever the table has doubled since the last pruning, so pod and label churn cannot
//! make it grow without bound (it stays under about twice the strings in use).

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::{Arc, LazyLock};

use parking_lot::Mutex;

/// An interned string: deduplicated on construction, cheap to clone, compared and hashed by
/// content (like `str`). Two live `Sym`s with equal text are always the same allocation.
#[derive(Clone)]
pub(crate) struct Sym(Arc<Box<str>>);

impl Sym {
    /// The interned copy of `s` (shared with every other live `Sym` of the same text).
    pub fn new(s: &str) -> Self {
        INTERNER.lock().intern(s)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for Sym {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Sym {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq for Sym {
    fn eq(&self, other: &Self) -> bool {
        // Interning makes equal live texts one allocation; the content check covers the rest.
        Arc::ptr_eq(&self.0, &other.0) || *self.0 == *other.0
    }
}

impl Eq for Sym {}

impl PartialOrd for Sym {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Sym {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Sym {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl std::fmt::Debug for Sym {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

static INTERNER: LazyLock<Mutex<Interner>> = LazyLock::new(|| Mutex::new(Interner::default()));

#[derive(Default)]
struct Interner {
    set: HashSet<Sym, foldhash::fast::RandomState>,
    /// Prune when the table reaches this size.
    prune_at: usize,
}

/// Smallest table size at which pruning is considered.
const MIN_PRUNE: usize = 4096;

impl Interner {
    fn intern(&mut self, s: &str) -> Sym {
        if let Some(sym) = self.set.get(s) {
            return sym.clone();
        }
        if self.set.len() >= self.prune_at.max(MIN_PRUNE) {
            self.prune();
        }
        let sym = Sym(Arc::new(Box::from(s)));
        self.set.insert(sym.clone());
        sym
    }

    /// Drops strings only the table references. A count cannot rise from 1 concurrently: the
    /// only other way to get a `Sym` is cloning one, and the table's own copy is cloned only
    /// under the lock held here.
    fn prune(&mut self) {
        self.set.retain(|sym| Arc::strong_count(&sym.0) > 1);
        self.prune_at = 2 * self.set.len();
        if self.set.capacity() > 4 * self.set.len().max(MIN_PRUNE) {
            self.set.shrink_to_fit();
        }
    }

    #[cfg(test)]
    fn contains(&self, s: &str) -> bool {
        self.set.contains(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_share_one_copy() {
        let a = Sym::new("reviews-v1-abc");
        let b = Sym::new(&String::from("reviews-v1-abc"));
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(a, b);
        assert_eq!(&*a, "reviews-v1-abc");
        assert_ne!(Sym::new("x"), Sym::new("y"));
        assert_eq!(std::mem::size_of::<Sym>(), 8);
    }

    #[test]
    fn unreferenced_strings_are_pruned() {
        let mut i = Interner::default();
        let kept = i.intern("kept");
        for n in 0..3 * MIN_PRUNE {
            drop(i.intern(&format!("churn-{n}")));
        }
        assert!(i.set.len() < 2 * MIN_PRUNE + 1, "{}", i.set.len());
        assert!(i.contains("kept"));
        assert!(!i.contains("churn-0"));
        assert!(Arc::ptr_eq(&i.intern("kept").0, &kept.0));
    }
}
