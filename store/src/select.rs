//! Matcher evaluation over the postings index with Prometheus semantics, and the label listings
//! behind `/api/v1/labels`, `/api/v1/label/<name>/values` and `/api/v1/series`.
//!
//! A matcher that does not match the empty string selects the union of its label's matching
//! values' postings. One that does match it also selects series lacking the label, so it is
//! applied the other way round: the postings of the values it rejects are subtracted. The result
//! is the intersection of the positive lists (shortest first) — or every series when there are
//! none — minus the negative ones.

use std::collections::HashSet;

use meshfed_model::{MatchOp, Matcher};

use crate::postings::{SeriesId, intersect, subtract, union};
use crate::registry::RegistryInner;
use crate::symbols::SymbolId;

/// What one matcher contributes.
enum Effect<'a> {
    /// Only these series can match.
    Keep(Vec<SeriesId>),
    /// Only this borrowed list can match (an `=` lookup).
    KeepSlice(&'a [SeriesId]),
    /// These series cannot match.
    Drop(Vec<SeriesId>),
    /// No constraint (e.g. `=~".*"`, or `!=` a value no series has).
    Nothing,
}

/// The alternatives of a regex made only of literals and `|` (`GET|POST`), which can be looked
/// up directly instead of tested against every value.
fn literal_alternatives(pattern: &str) -> Option<impl Iterator<Item = &str>> {
    let literal = !pattern.chars().any(|c| "\\.+*?()[]{}^$".contains(c));
    literal.then(|| pattern.split('|'))
}

impl RegistryInner {
    fn lookup(&self, name: SymbolId, value: &str) -> &[SeriesId] {
        self.symbols
            .get(value)
            .map_or(&[], |v| self.postings.get(name, v))
    }

    /// The union of the postings of `name`'s values for which `keep` holds.
    fn values_where(&self, name: SymbolId, keep: impl Fn(&str) -> bool) -> Vec<SeriesId> {
        union(
            self.postings
                .values(name)
                .filter(|(v, _)| keep(self.symbols.resolve(*v)))
                .map(|(_, l)| l),
        )
    }

    fn effect(&self, m: &Matcher) -> Effect<'_> {
        let name = self.symbols.get(&m.name);
        if m.matches_empty() {
            let Some(name) = name else { return Effect::Nothing };
            return match m.op {
                MatchOp::NotEqual => Effect::Drop(self.lookup(name, &m.value).to_vec()),
                MatchOp::Regex if m.value == ".*" => Effect::Nothing,
                // `!~"a|b"` rejects exactly the listed values.
                MatchOp::NotRegex => match literal_alternatives(&m.value) {
                    Some(alts) => Effect::Drop(union(alts.map(|v| self.lookup(name, v)))),
                    None => Effect::Drop(self.values_where(name, |v| !m.matches(v))),
                },
                // `=""` rejects every value; a regex rejects the values it does not match.
                _ => Effect::Drop(self.values_where(name, |v| !m.matches(v))),
            };
        }
        let Some(name) = name else {
            return Effect::Keep(Vec::new());
        };
        match m.op {
            MatchOp::Equal => Effect::KeepSlice(self.lookup(name, &m.value)),
            MatchOp::Regex if m.value == ".+" => Effect::Keep(self.values_where(name, |_| true)),
            MatchOp::Regex => match literal_alternatives(&m.value) {
                Some(alts) => Effect::Keep(union(alts.map(|v| self.lookup(name, v)))),
                None => Effect::Keep(self.values_where(name, |v| m.matches(v))),
            },
            _ => Effect::Keep(self.values_where(name, |v| m.matches(v))),
        }
    }

    /// Sorted ids of the series matching every matcher; none for an empty list.
    pub(crate) fn select(&self, matchers: &[Matcher]) -> Vec<SeriesId> {
        if matchers.is_empty() {
            return Vec::new();
        }
        let mut keep: Vec<std::borrow::Cow<'_, [SeriesId]>> = Vec::new();
        let mut drop = Vec::new();
        for m in matchers {
            match self.effect(m) {
                Effect::Keep(l) if l.is_empty() => return Vec::new(),
                Effect::KeepSlice([]) => return Vec::new(),
                Effect::Keep(l) => keep.push(l.into()),
                Effect::KeepSlice(l) => keep.push(l.into()),
                Effect::Drop(l) => drop.push(l),
                Effect::Nothing => {}
            }
        }
        keep.sort_by_key(|l| l.len());
        let mut ids = match keep.split_first() {
            None => (0..self.len() as SeriesId).collect(),
            Some((first, rest)) => {
                let mut ids = first.to_vec();
                for l in rest {
                    if ids.is_empty() {
                        break;
                    }
                    ids = intersect(&ids, l);
                }
                ids
            }
        };
        for l in &drop {
            if ids.is_empty() {
                break;
            }
            ids = subtract(&ids, l);
        }
        ids
    }

    /// Sorted ids of the series matching any of the matcher sets.
    pub(crate) fn select_any(&self, matcher_sets: &[Vec<Matcher>]) -> Vec<SeriesId> {
        let per_set: Vec<Vec<SeriesId>> = matcher_sets.iter().map(|m| self.select(m)).collect();
        union(per_set.iter().map(Vec::as_slice))
    }

    /// Sorted label names of the series matching any matcher set (all when there is none) for
    /// which `in_range` holds.
    pub(crate) fn label_names(
        &self,
        matcher_sets: &[Vec<Matcher>],
        in_range: impl Fn(SeriesId) -> bool,
    ) -> Vec<String> {
        let names: HashSet<SymbolId> = if matcher_sets.is_empty() {
            self.postings
                .names()
                .filter(|&n| {
                    self.postings
                        .values(n)
                        .any(|(_, ids)| ids.iter().any(|&id| in_range(id)))
                })
                .collect()
        } else {
            self.select_any(matcher_sets)
                .into_iter()
                .filter(|&id| in_range(id))
                .flat_map(|id| self.pairs(id).iter().map(|&(n, _)| n))
                .collect()
        };
        self.sorted_strings(names)
    }

    /// Sorted values of label `name` among the series matching any matcher set (all when there is
    /// none) for which `in_range` holds.
    pub(crate) fn label_values(
        &self,
        name: &str,
        matcher_sets: &[Vec<Matcher>],
        in_range: impl Fn(SeriesId) -> bool,
    ) -> Vec<String> {
        let Some(name) = self.symbols.get(name) else {
            return Vec::new();
        };
        let values: HashSet<SymbolId> = if matcher_sets.is_empty() {
            self.postings
                .values(name)
                .filter(|(_, ids)| ids.iter().any(|&id| in_range(id)))
                .map(|(v, _)| v)
                .collect()
        } else {
            self.select_any(matcher_sets)
                .into_iter()
                .filter(|&id| in_range(id))
                .filter_map(|id| self.pairs(id).iter().find(|&&(n, _)| n == name).map(|&(_, v)| v))
                .collect()
        };
        self.sorted_strings(values)
    }

    fn sorted_strings(&self, ids: HashSet<SymbolId>) -> Vec<String> {
        let mut out: Vec<String> = ids
            .into_iter()
            .map(|id| self.symbols.resolve(id).to_owned())
            .collect();
        out.sort_unstable();
        out
    }
}
