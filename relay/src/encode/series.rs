//! [`SeriesLabels`]: a series' label set as interned names and values in one shared allocation.
//!
//! A collector keeps one label set per cached series for as long as the target exposes it, and
//! hands it to the relay with every sample. As a [`Labels`] that is a vector of 48-byte pairs plus
//! two heap strings per label. Packing the text into one buffer (the previous layout) still cost
//! ~400 B for a 7-label Envoy series, although nearly all of it repeats across series: the metric
//! name, `cluster_name`, and the target labels every series of a pod carries. Now each name and
//! value is a [`Sym`], an 8-byte pointer into a process-wide interner, so the same series costs
//! the `Arc` header plus 16 B per label (~130 B), and each distinct string is stored once.

use std::fmt;
use std::sync::Arc;

use meshfed_model::{CompactString, Labels, LabelsBuilder, METRIC_NAME};

use super::intern::Sym;

/// A label set (sorted by name, no empty values, `__name__` included) of interned strings in one
/// buffer, cheap to clone (an `Arc`) and compared and hashed by content. Built from a [`Labels`];
/// [`to_labels`] turns it back.
///
/// [`to_labels`]: SeriesLabels::to_labels
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesLabels(Arc<[Sym]>);

impl SeriesLabels {
    /// Interns and packs `labels` (takes the interner's lock once per string).
    pub fn new(labels: &Labels) -> Self {
        let syms: Vec<Sym> = labels
            .iter()
            .flat_map(|l| [Sym::new(&l.name), Sym::new(&l.value)])
            .collect();
        Self(Arc::from(syms))
    }

    /// Builds from pairs in any order, as [`Labels::from_pairs`] does (sorted, last value of a
    /// repeated name wins, empty values dropped).
    pub fn from_pairs<N: AsRef<str>, V: Into<CompactString>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        Self::new(&Labels::from_pairs(pairs))
    }

    /// The labels as `(name, value)` pairs, in name order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            pairs: self.0.chunks_exact(2),
        }
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The metric name (`__name__`), if present.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len() / 2
    }

    /// True when there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The label set as a [`Labels`] (allocates one string per name and value).
    pub fn to_labels(&self) -> Labels {
        let mut b = LabelsBuilder::with_capacity(self.len());
        for (n, v) in self.iter() {
            b.set(n, v);
        }
        b.build()
    }

    /// Bytes of the packed buffer: the interned pointers, not the (shared) text (memory
    /// accounting).
    pub fn packed_len(&self) -> usize {
        std::mem::size_of_val::<[Sym]>(&self.0)
    }

    /// Whether both share one buffer (clones of the same packing).
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }

    /// The buffer's address: identifies one packing for as long as a clone of it is alive.
    pub(crate) fn addr(&self) -> usize {
        Arc::as_ptr(&self.0).cast::<u8>() as usize
    }

    /// Whether this is the only clone of its packing (nobody else keeps the series).
    pub(crate) fn is_unique(&self) -> bool {
        Arc::strong_count(&self.0) == 1
    }
}

impl From<Labels> for SeriesLabels {
    fn from(labels: Labels) -> Self {
        Self::new(&labels)
    }
}

impl From<&Labels> for SeriesLabels {
    fn from(labels: &Labels) -> Self {
        Self::new(labels)
    }
}

impl fmt::Debug for SeriesLabels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl fmt::Display for SeriesLabels {
    /// Renders as `name{a="b", c="d"}`, like [`Labels`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_labels(), f)
    }
}

impl<'a> IntoIterator for &'a SeriesLabels {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Iterator over a [`SeriesLabels`]' `(name, value)` pairs.
#[derive(Clone, Debug)]
pub struct Iter<'a> {
    pairs: std::slice::ChunksExact<'a, Sym>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        match self.pairs.next()? {
            [name, value] => Some((name.as_str(), value.as_str())),
            _ => None,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.pairs.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_any_lengths_and_text() {
        let long = "v".repeat(70_000);
        let labels = Labels::from_pairs([
            ("__name__", "istio_requests_total"),
            ("response_flags", "UF,URX"),
            ("path", "/a=b\"c\\d\n{}é\u{0}"),
            ("long", long.as_str()),
            ("x", "1"),
            ("gone", ""),
        ]);
        let packed = SeriesLabels::new(&labels);
        assert_eq!(packed.to_labels(), labels);
        assert_eq!(packed.len(), 5);
        assert_eq!(packed.get("long").map(str::len), Some(70_000));
        assert_eq!(packed.metric_name(), Some("istio_requests_total"));
        assert_eq!(packed.get("gone"), None);
        assert_eq!(packed.to_string(), labels.to_string());
        let names: Vec<_> = packed.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["__name__", "long", "path", "response_flags", "x"]);
    }

    #[test]
    fn equal_sets_pack_equal_and_empty_is_empty() {
        let a = SeriesLabels::from_pairs([("b", "2"), ("a", "1")]);
        let b = SeriesLabels::from_pairs([("a", "1"), ("b", "2")]);
        assert_eq!(a, b);
        assert!(!SeriesLabels::ptr_eq(&a, &b));
        assert!(SeriesLabels::ptr_eq(&a, &a.clone()));
        let e = SeriesLabels::new(&Labels::empty());
        assert!(e.is_empty() && e.iter().next().is_none());
    }

    #[test]
    fn strings_are_shared_across_label_sets() {
        let a = SeriesLabels::from_pairs([("__name__", "m1"), ("pod", "reviews-v1-abc")]);
        let b = SeriesLabels::from_pairs([("__name__", "m2"), ("pod", "reviews-v1-abc")]);
        assert!(std::ptr::eq(a.0[3].as_str(), b.0[3].as_str()));
        assert_eq!(a.packed_len(), 4 * std::mem::size_of::<Sym>());
        fn send_sync<T: Send + Sync>() {}
        send_sync::<SeriesLabels>();
    }
}
