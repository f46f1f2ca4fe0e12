//! Label sets: a series' identity, kept sorted by label name so equal sets compare equal.
//!
//! Names and values are [`CompactString`]s rather than `String`s: a string of up to 24 bytes is
//! stored inline, so most labels of a parsed sample cost no allocation (with `String`, a 25-label
//! Istio sample was 50 allocations and as many frees, about half of a full parse), and the long
//! label names of Istio's standard metrics are shared `&'static str`s (see [`known_name`]).

use std::fmt;

pub use compact_str::CompactString;

/// The reserved label holding the metric name.
pub const METRIC_NAME: &str = "__name__";

/// One label pair.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    /// Label name, e.g. `destination_service`.
    pub name: CompactString,
    /// Label value; never empty inside a [`Labels`] (an empty value means "absent", as in Prometheus).
    pub value: CompactString,
}

impl Label {
    /// A label pair; the name is shared with [`known_name`]'s table when it is one of its names.
    pub fn new(name: &str, value: impl Into<CompactString>) -> Self {
        Self {
            name: known_name(name),
            value: value.into(),
        }
    }
}

/// Label names longer than the 24 bytes a [`CompactString`] holds inline that the mesh writes on
/// every series: Istio's standard metric labels. [`known_name`] returns these as references to
/// the static text, so they are neither allocated nor freed per sample.
const KNOWN_LONG_NAMES: [&str; 7] = [
    "connection_security_policy",
    "destination_canonical_revision",
    "destination_canonical_service",
    "destination_service_namespace",
    "destination_workload_namespace",
    "source_canonical_revision",
    "source_workload_namespace",
];

/// `name` as a [`CompactString`] that does not allocate when the name is short (inline) or one of
/// the long names in [`KNOWN_LONG_NAMES`] (a `&'static str`); only other long names allocate.
pub fn known_name(name: &str) -> CompactString {
    if name.len() > 24 {
        for known in KNOWN_LONG_NAMES {
            if known == name {
                return CompactString::const_new(known);
            }
        }
    }
    CompactString::new(name)
}

/// A sorted, duplicate-free label set identifying one series.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Vec<Label>);

impl Labels {
    /// An empty label set.
    pub fn empty() -> Self {
        Self(Vec::new())
    }

    /// Builds a label set from pairs: sorts by name, keeps the last value of a repeated name, and
    /// drops empty values (Prometheus treats `a=""` as the label being absent).
    pub fn from_pairs<N: AsRef<str>, V: Into<CompactString>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        let mut b = LabelsBuilder::new();
        for (n, v) in pairs {
            b.set(n, v);
        }
        b.build()
    }

    /// Wraps labels already sorted by name, duplicate-free and without empty values (the parsers
    /// guarantee this, so they skip [`LabelsBuilder`]'s extra passes).
    pub(crate) fn from_sorted_unique(labels: Vec<Label>) -> Self {
        debug_assert!(labels.windows(2).all(|w| w[0].name < w[1].name));
        Self(labels)
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_str())
    }

    /// The metric name (`__name__`), if present.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// Iterates the labels in name order.
    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The labels as a slice, sorted by name.
    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }

    /// A builder starting from this set.
    pub fn to_builder(&self) -> LabelsBuilder {
        LabelsBuilder {
            labels: self.0.clone(),
        }
    }

    /// A copy without `__name__`.
    pub fn without_metric_name(&self) -> Labels {
        Labels(self.0.iter().filter(|l| l.name != METRIC_NAME).cloned().collect())
    }

    /// A copy keeping only the named labels (`by (...)`).
    pub fn keep(&self, names: &[impl AsRef<str>]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|l| names.iter().any(|n| n.as_ref() == l.name))
                .cloned()
                .collect(),
        )
    }

    /// A copy dropping the named labels (`without (...)`).
    pub fn drop_names(&self, names: &[impl AsRef<str>]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|l| !names.iter().any(|n| n.as_ref() == l.name))
                .cloned()
                .collect(),
        )
    }
}

impl fmt::Display for Labels {
    /// Renders as `name{a="b", c="d"}` like Prometheus does in error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = self.metric_name() {
            f.write_str(n)?;
        }
        f.write_str("{")?;
        let mut first = true;
        for l in self.0.iter().filter(|l| l.name != METRIC_NAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{}={:?}", l.name, l.value)?;
        }
        f.write_str("}")
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Mutable label set that sorts and de-duplicates once, on [`LabelsBuilder::build`].
#[derive(Clone, Debug, Default)]
pub struct LabelsBuilder {
    labels: Vec<Label>,
}

impl LabelsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty builder with room for `n` labels.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            labels: Vec::with_capacity(n),
        }
    }

    /// Sets `name` to `value`, replacing an earlier value; an empty value removes the label.
    pub fn set(&mut self, name: impl AsRef<str>, value: impl Into<CompactString>) -> &mut Self {
        let name = known_name(name.as_ref());
        let value = value.into();
        self.labels.retain(|l| l.name != name);
        if !value.is_empty() {
            self.labels.push(Label { name, value });
        }
        self
    }

    /// Removes `name`.
    pub fn del(&mut self, name: &str) -> &mut Self {
        self.labels.retain(|l| l.name != name);
        self
    }

    /// The current value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.value.as_str())
    }

    /// Finishes the set, sorted by name.
    pub fn build(mut self) -> Labels {
        self.labels.sort_by(|a, b| a.name.cmp(&b.name));
        Labels(self.labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_deduplicated_and_empty_values_dropped() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("b", "3"), ("c", "")]);
        let names: Vec<_> = l.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(l.get("b"), Some("3"));
        assert_eq!(l.get("c"), None);
    }

    #[test]
    fn display_matches_prometheus() {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "a\"b")]);
        assert_eq!(l.to_string(), r#"up{job="a\"b"}"#);
    }
}
