//! The symbol table: every distinct label name and value is stored once and referred to by a `u32`.
//!
//! Istio label sets repeat the same few hundred strings (`reporter`, `destination_service`,
//! `source_workload_namespace`, …) across hundreds of thousands of series; interning them is what
//! keeps a 25-label series near 200 bytes of label data.
//!
//! Each symbol counts the label pairs using it; when a forgotten series releases the last use,
//! the string is freed and its id reused by the next new string.

use std::collections::HashMap;
use std::sync::Arc;

/// A symbol's id.
pub(crate) type SymbolId = u32;

/// Interned strings. Not synchronised itself; it lives inside the registry's lock.
#[derive(Debug, Default)]
pub(crate) struct SymbolTable {
    ids: HashMap<Arc<str>, SymbolId>,
    strings: Vec<Arc<str>>,
    /// Uses of each symbol (0 for a freed id).
    uses: Vec<u32>,
    /// Freed ids, reused before new ones.
    free: Vec<SymbolId>,
    string_bytes: usize,
}

impl SymbolTable {
    /// The id of `s`, if interned.
    pub(crate) fn get(&self, s: &str) -> Option<SymbolId> {
        self.ids.get(s).copied()
    }

    /// The id of `s`, interning it if new, and counts one more use of it.
    pub(crate) fn intern(&mut self, s: &str) -> SymbolId {
        if let Some(&id) = self.ids.get(s) {
            self.uses[id as usize] += 1;
            return id;
        }
        let s: Arc<str> = Arc::from(s);
        self.string_bytes += s.len();
        let id = match self.free.pop() {
            Some(id) => {
                self.strings[id as usize] = s.clone();
                self.uses[id as usize] = 1;
                id
            }
            None => {
                let id = SymbolId::try_from(self.strings.len()).unwrap_or_else(|_| {
                    // 4 billion distinct strings would need far more memory than any head has.
                    panic!("symbol table overflow")
                });
                self.strings.push(s.clone());
                self.uses.push(1);
                id
            }
        };
        self.ids.insert(s, id);
        id
    }

    /// Counts one use of `id` less, freeing the string at the last.
    pub(crate) fn release(&mut self, id: SymbolId) {
        let Some(uses) = self.uses.get_mut(id as usize).filter(|u| **u > 0) else {
            return;
        };
        *uses -= 1;
        if *uses == 0 {
            let s = std::mem::replace(&mut self.strings[id as usize], Arc::from(""));
            self.ids.remove(&s);
            self.string_bytes -= s.len();
            self.free.push(id);
        }
    }

    /// The string of `id`. Ids come only from this table, so a miss is a bug; it reads as "".
    pub(crate) fn resolve(&self, id: SymbolId) -> &str {
        self.strings.get(id as usize).map_or("", |s| s)
    }

    /// Number of symbols in use.
    pub(crate) fn len(&self) -> usize {
        self.strings.len() - self.free.len()
    }

    /// Approximate heap bytes: the strings, their `Arc` headers, the id map and the id → string
    /// vector.
    pub(crate) fn heap_bytes(&self) -> usize {
        let arc_header = 2 * size_of::<usize>();
        let map_entry = size_of::<(Arc<str>, SymbolId)>() + 1;
        self.string_bytes
            + self.strings.len() * arc_header
            + self.ids.capacity() * map_entry
            + self.strings.capacity() * size_of::<Arc<str>>()
            + (self.uses.capacity() + self.free.capacity()) * size_of::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_idempotent_and_resolvable() {
        let mut t = SymbolTable::default();
        let a = t.intern("reporter");
        let b = t.intern("destination");
        assert_ne!(a, b);
        assert_eq!(t.intern("reporter"), a);
        assert_eq!(t.get("destination"), Some(b));
        assert_eq!(t.get("source"), None);
        assert_eq!(t.resolve(a), "reporter");
        assert_eq!(t.resolve(b), "destination");
        assert_eq!(t.len(), 2);
        assert!(t.heap_bytes() >= "reporterdestination".len());
    }

    #[test]
    fn a_symbol_is_freed_at_its_last_release_and_its_id_reused() {
        let mut t = SymbolTable::default();
        let a = t.intern("pod-a");
        assert_eq!(t.intern("pod-a"), a);
        let b = t.intern("pod-b");
        t.release(a);
        assert_eq!(t.get("pod-a"), Some(a), "one use left");
        t.release(a);
        assert_eq!((t.get("pod-a"), t.len()), (None, 1));
        t.release(a); // Already free: ignored.
        let c = t.intern("pod-c");
        assert_eq!(c, a, "freed id reused");
        assert_eq!((t.resolve(c), t.resolve(b)), ("pod-c", "pod-b"));
        assert_eq!(t.len(), 2);
    }
}
