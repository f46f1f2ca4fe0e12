//! The symbol table: every distinct label name and value is stored once and referred to by a `u32`.
//!
//! Istio label sets repeat the same few hundred strings (`reporter`, `destination_service`,
//! `source_workload_namespace`, …) across hundreds of thousands of series; interning them is what
//! keeps a 25-label series near 200 bytes of label data.

use std::collections::HashMap;
use std::sync::Arc;

/// A symbol's id.
pub(crate) type SymbolId = u32;

/// Interned strings. Not synchronised itself; it lives inside the registry's lock.
#[derive(Debug, Default)]
pub(crate) struct SymbolTable {
    ids: HashMap<Arc<str>, SymbolId>,
    strings: Vec<Arc<str>>,
    string_bytes: usize,
}

impl SymbolTable {
    /// The id of `s`, if interned.
    pub(crate) fn get(&self, s: &str) -> Option<SymbolId> {
        self.ids.get(s).copied()
    }

    /// The id of `s`, interning it if new.
    pub(crate) fn intern(&mut self, s: &str) -> SymbolId {
        if let Some(id) = self.ids.get(s) {
            return *id;
        }
        let id = SymbolId::try_from(self.strings.len()).unwrap_or_else(|_| {
            // 4 billion distinct strings would need far more memory than any head has.
            panic!("symbol table overflow")
        });
        let s: Arc<str> = Arc::from(s);
        self.string_bytes += s.len();
        self.strings.push(s.clone());
        self.ids.insert(s, id);
        id
    }

    /// The string of `id`. Ids come only from this table, so a miss is a bug; it reads as "".
    pub(crate) fn resolve(&self, id: SymbolId) -> &str {
        self.strings.get(id as usize).map_or("", |s| s)
    }

    /// Number of symbols.
    pub(crate) fn len(&self) -> usize {
        self.strings.len()
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
}
