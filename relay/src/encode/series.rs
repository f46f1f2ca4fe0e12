//! [`SeriesLabels`]: a series' label set packed into one shared allocation.
//!
//! A collector keeps one label set per cached series for as long as the target exposes it, and
//! hands it to the relay with every sample. As a [`Labels`] that is a vector of 48-byte pairs plus
//! two heap strings per label (~2.7 KB for a 28-label Istio series, most of it allocator and
//! `String` overhead); packed, it is the label text plus a byte or two of length per string
//! (~0.85 KB), in one allocation.
//!
//! Layout: for each label in name order, `len(name) name len(value) value`. A length is written in
//! 6-bit digits, least significant first, one byte each; the last digit has bit 6 set. Every length
//! byte is below 0x80, so the whole buffer stays valid UTF-8 and is kept as a `str`, sliced without
//! re-validation.

use std::fmt;
use std::sync::Arc;

use meshfed_model::{Labels, LabelsBuilder, METRIC_NAME};

/// A label set (sorted by name, no empty values, `__name__` included) packed into one buffer,
/// cheap to clone (an `Arc`) and compared by content. Built from a [`Labels`]; [`to_labels`]
/// turns it back.
///
/// [`to_labels`]: SeriesLabels::to_labels
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesLabels(Arc<str>);

impl SeriesLabels {
    /// Packs `labels`.
    pub fn new(labels: &Labels) -> Self {
        let text: usize = labels.iter().map(|l| l.name.len() + l.value.len() + 2).sum();
        let mut buf = String::with_capacity(text);
        for l in labels {
            push_str(&mut buf, &l.name);
            push_str(&mut buf, &l.value);
        }
        Self(Arc::from(buf))
    }

    /// Builds from pairs in any order, as [`Labels::from_pairs`] does (sorted, last value of a
    /// repeated name wins, empty values dropped).
    pub fn from_pairs<N: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (N, V)>) -> Self {
        Self::new(&Labels::from_pairs(pairs))
    }

    /// The labels as `(name, value)` pairs, in name order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            text: &self.0,
            pos: 0,
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
        self.iter().count()
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

    /// Bytes of the packed buffer (memory accounting).
    pub fn packed_len(&self) -> usize {
        self.0.len()
    }

    /// Whether both share one buffer (clones of the same packing).
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }

    /// The buffer's address: identifies one packing for as long as a clone of it is alive.
    pub(crate) fn addr(&self) -> usize {
        Arc::as_ptr(&self.0).cast::<u8>() as usize
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
    text: &'a str,
    pos: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let name = self.next_str()?;
        let value = self.next_str()?;
        Some((name, value))
    }
}

impl<'a> Iter<'a> {
    fn next_str(&mut self) -> Option<&'a str> {
        let bytes = self.text.as_bytes();
        let mut len = 0usize;
        let mut shift = 0u32;
        loop {
            let b = *bytes.get(self.pos)?;
            self.pos += 1;
            len |= usize::from(b & 0x3f) << shift;
            if b & 0x40 != 0 {
                break;
            }
            shift += 6;
            if shift >= usize::BITS {
                return None;
            }
        }
        let s = self.text.get(self.pos..self.pos + len)?;
        self.pos += len;
        Some(s)
    }
}

fn push_str(buf: &mut String, s: &str) {
    let mut n = s.len();
    loop {
        let digit = (n & 0x3f) as u8;
        n >>= 6;
        if n == 0 {
            buf.push(char::from(0x40 | digit));
            break;
        }
        buf.push(char::from(digit));
    }
    buf.push_str(s);
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
}
