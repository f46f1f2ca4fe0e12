//! Matcher semantics through `select`: a table of every operator and regex edge case, and a
//! differential property test against evaluating each matcher on each series directly.

#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

use meshfed_model::{Labels, MatchOp, Matcher};
use meshfed_store::{Store, StoreOptions};
use proptest::prelude::*;

const SERIES: [&[(&str, &str)]; 8] = [
    &[("__name__", "up"), ("job", "api"), ("env", "prod")],
    &[("__name__", "up"), ("job", "web")],
    &[("__name__", "up"), ("job", "web-api"), ("env", "dev")],
    &[("__name__", "req"), ("job", "api"), ("code", "200")],
    &[("__name__", "req"), ("code", "500")],
    &[("__name__", "req"), ("job", "xzy")],
    &[("__name__", "req"), ("job", "x.y")],
    &[("__name__", "req"), ("job", "API"), ("path", "/a=b,c}\n")],
];

fn store() -> Store {
    let store = Store::new(StoreOptions::default());
    for (i, pairs) in SERIES.iter().enumerate() {
        let r = store.get_or_create(&Labels::from_pairs(pairs.iter().copied()));
        assert_eq!(r.0, i as u64);
        store.append(r, 1000, 1.0).unwrap();
    }
    store
}

fn m(name: &str, op: &str, value: &str) -> Matcher {
    let op = match op {
        "=" => MatchOp::Equal,
        "!=" => MatchOp::NotEqual,
        "=~" => MatchOp::Regex,
        "!~" => MatchOp::NotRegex,
        _ => unreachable!("operator {op}"),
    };
    Matcher::new(op, name, value).unwrap()
}

fn selected(store: &Store, matchers: &[Matcher]) -> Vec<u64> {
    let mut ids: Vec<u64> = store
        .select(matchers, 0, 2000)
        .iter()
        .map(|h| h.series.0)
        .collect();
    ids.sort_unstable();
    ids
}

/// Evaluates matchers series by series, the definition `select` must agree with.
fn brute_force(series: &[Labels], matchers: &[Matcher]) -> Vec<u64> {
    if matchers.is_empty() {
        return Vec::new();
    }
    (0..series.len() as u64)
        .filter(|&i| {
            matchers
                .iter()
                .all(|m| m.matches(series[i as usize].get(&m.name).unwrap_or("")))
        })
        .collect()
}

/// A matcher as (name, operator, value).
type Spec = (&'static str, &'static str, &'static str);

#[test]
fn matcher_table() {
    let store = store();
    let all: Vec<Labels> = SERIES
        .iter()
        .map(|p| Labels::from_pairs(p.iter().copied()))
        .collect();
    #[rustfmt::skip]
    let table: &[(&[Spec], &[u64])] = &[
        (&[], &[]),
        (&[("job", "=", "api")], &[0, 3]),
        (&[("job", "=", "API")], &[7]),
        (&[("job", "=", "nope")], &[]),
        (&[("nolabel", "=", "x")], &[]),
        (&[("job", "!=", "api")], &[1, 2, 4, 5, 6, 7]),
        (&[("job", "!=", "nope")], &[0, 1, 2, 3, 4, 5, 6, 7]),
        (&[("job", "=", "")], &[4]),
        (&[("job", "!=", "")], &[0, 1, 2, 3, 5, 6, 7]),
        (&[("env", "=", "")], &[1, 3, 4, 5, 6, 7]),
        (&[("nolabel", "=", "")], &[0, 1, 2, 3, 4, 5, 6, 7]),
        (&[("nolabel", "!=", "")], &[]),
        // Regexes are anchored at both ends.
        (&[("job", "=~", "api")], &[0, 3]),
        (&[("job", "=~", "web")], &[1]),
        (&[("job", "=~", "web.*")], &[1, 2]),
        (&[("job", "=~", ".*api")], &[0, 2, 3]),
        (&[("job", "=~", "(?i)api")], &[0, 3, 7]),
        (&[("job", "=~", "x.y")], &[5, 6]),
        (&[("job", "=~", "x\\.y")], &[6]),
        (&[("job", "=~", "")], &[4]),
        (&[("job", "=~", ".*")], &[0, 1, 2, 3, 4, 5, 6, 7]),
        (&[("job", "=~", ".+")], &[0, 1, 2, 3, 5, 6, 7]),
        (&[("nolabel", "=~", ".*")], &[0, 1, 2, 3, 4, 5, 6, 7]),
        (&[("nolabel", "=~", ".+")], &[]),
        (&[("job", "=~", "api|web")], &[0, 1, 3]),
        (&[("job", "=~", "api|web|")], &[0, 1, 3, 4]),
        (&[("job", "=~", "api|nope")], &[0, 3]),
        (&[("job", "=~", "a|b")], &[]),
        (&[("job", "=~", "ap")], &[]),
        (&[("job", "!~", "api")], &[1, 2, 4, 5, 6, 7]),
        (&[("job", "!~", "api|web")], &[2, 4, 5, 6, 7]),
        (&[("job", "!~", ".*")], &[]),
        (&[("job", "!~", ".+")], &[4]),
        (&[("job", "!~", "")], &[0, 1, 2, 3, 5, 6, 7]),
        (&[("job", "!~", "w.*")], &[0, 3, 4, 5, 6, 7]),
        (&[("path", "=~", "/a=b,c}\n")], &[7]),
        (&[("path", "=~", "/a.*")], &[7]),
        (&[("code", "=~", "5..")], &[4]),
        (&[("code", "!~", "2..")], &[0, 1, 2, 4, 5, 6, 7]),
        // Several matchers intersect; negatives subtract from positives.
        (&[("__name__", "=", "up"), ("job", "=~", ".*api")], &[0, 2]),
        (&[("__name__", "=", "up"), ("env", "!=", "prod")], &[1, 2]),
        (&[("__name__", "=", "req"), ("job", "=", "")], &[4]),
        (&[("__name__", "=", "req"), ("job", "!~", "x.y|api")], &[4, 7]),
        (&[("__name__", "=~", "up|req"), ("job", "=~", "api"), ("code", "=", "200")], &[3]),
        (&[("__name__", "=", "up"), ("code", "=", "200")], &[]),
        (&[("job", "!=", "api"), ("env", "=", "")], &[4, 5, 6, 7, 1]),
        (&[("job", "=~", ".*"), ("env", "=~", ".*")], &[0, 1, 2, 3, 4, 5, 6, 7]),
    ];
    for (matchers, want) in table {
        let matchers: Vec<Matcher> = matchers.iter().map(|(n, op, v)| m(n, op, v)).collect();
        let mut want = want.to_vec();
        want.sort_unstable();
        assert_eq!(brute_force(&all, &matchers), want, "table entry {matchers:?}");
        assert_eq!(selected(&store, &matchers), want, "select {matchers:?}");
    }
}

#[test]
fn results_are_sorted_by_labels_and_carry_them() {
    let store = store();
    let got = store.select(&[m("__name__", "=~", ".+")], 0, 2000);
    let labels: Vec<Labels> = got.iter().map(|h| h.labels.clone()).collect();
    let mut sorted = labels.clone();
    sorted.sort();
    assert_eq!(labels, sorted);
    assert_eq!(labels.len(), SERIES.len());
    for h in got {
        assert_eq!(
            h.labels,
            Labels::from_pairs(SERIES[h.series.0 as usize].iter().copied())
        );
    }
}

fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_owned()),
        Just("b".to_owned()),
        Just("ab".to_owned()),
        Just("".to_owned()),
        "[a-c.]{1,3}"
    ]
}

fn matcher() -> impl Strategy<Value = Matcher> {
    let pattern = prop_oneof![
        label_value(),
        Just(".*".to_owned()),
        Just(".+".to_owned()),
        Just("a|b".to_owned()),
        Just("a|".to_owned()),
        Just("a.".to_owned()),
        Just("[ab]+".to_owned()),
    ];
    (0usize..4, 0u8..4, pattern).prop_map(|(name, op, value)| {
        let op = [
            MatchOp::Equal,
            MatchOp::NotEqual,
            MatchOp::Regex,
            MatchOp::NotRegex,
        ][op as usize];
        Matcher::new(op, ["x", "y", "z", "none"][name], value).unwrap()
    })
}

proptest! {
    #[test]
    fn select_agrees_with_brute_force(
        series in prop::collection::vec(prop::collection::vec((0usize..3, label_value()), 0..3), 1..20),
        matchers in prop::collection::vec(matcher(), 0..4),
    ) {
        let store = Store::new(StoreOptions::default());
        let mut all: Vec<Labels> = Vec::new();
        for pairs in series {
            let labels = Labels::from_pairs(pairs.into_iter().map(|(n, v)| (["x", "y", "z"][n], v)));
            let r = store.get_or_create(&labels);
            if r.0 as usize == all.len() {
                all.push(labels);
                store.append(r, 5, 0.0).unwrap();
            }
        }
        prop_assert_eq!(selected(&store, &matchers), brute_force(&all, &matchers));
    }
}
