//! Table tests, cases from Prometheus' `model/relabel/relabel_test.go` and its documentation.

use super::*;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn rule(yaml: &str) -> RelabelRule {
    let c: RelabelConfig = serde_norway::from_str(yaml).expect("rule yaml");
    RelabelRule::new(c).expect("valid rule")
}

/// Name, rules (YAML), input, expected output (`None`: dropped).
type Case<'a> = (
    &'a str,
    &'a [&'a str],
    &'a [(&'a str, &'a str)],
    Option<&'a [(&'a str, &'a str)]>,
);

#[test]
fn prometheus_cases() {
    let abc = [("a", "foo"), ("b", "bar"), ("c", "baz")];
    let cases: &[Case<'_>] = &[
        (
            "replace with groups",
            &["{source_labels: [a], regex: 'f(.*)', target_label: d, replacement: 'ch${1}-ch${1}'}"],
            &[("a", "foo")],
            Some(&[("a", "foo"), ("d", "choo-choo")]),
        ),
        (
            "several sources and separator",
            &["{source_labels: [a, b], regex: 'f(.*);(.*)r', target_label: a, replacement: 'b${1}${2}m'}"],
            &abc,
            Some(&[("a", "boobam"), ("b", "bar"), ("c", "baz")]),
        ),
        (
            "rules run in order",
            &[
                "{source_labels: [a], regex: 'f(.*)', target_label: d, replacement: 'ch${1}-ch${1}'}",
                "{source_labels: [d], regex: '(.*)', target_label: e, replacement: '${1}X'}",
            ],
            &[("a", "foo")],
            Some(&[("a", "foo"), ("d", "choo-choo"), ("e", "choo-chooX")]),
        ),
        (
            "regex is anchored: no match, no change",
            &["{source_labels: [a], regex: 'o', target_label: d}"],
            &[("a", "foo")],
            Some(&[("a", "foo")]),
        ),
        (
            "empty replacement deletes the target",
            &["{source_labels: [a], regex: '.*', target_label: a, replacement: ''}"],
            &abc,
            Some(&[("b", "bar"), ("c", "baz")]),
        ),
        (
            "$1x is the group named 1x (Go semantics): empty, so deleted",
            &["{source_labels: [a], regex: 'f(.*)', target_label: a, replacement: '$1x'}"],
            &abc,
            Some(&[("b", "bar"), ("c", "baz")]),
        ),
        (
            "invalid expanded target name: no change",
            &["{source_labels: [a], regex: '(.*)', target_label: '${1}', replacement: 'x'}"],
            &[("a", "-bad")],
            Some(&[("a", "-bad")]),
        ),
        (
            "target label from a group",
            &["{source_labels: [a], regex: '(.*)', target_label: 'lbl_${1}', replacement: 'x'}"],
            &[("a", "foo")],
            Some(&[("a", "foo"), ("lbl_foo", "x")]),
        ),
        (
            "drop on match",
            &["{source_labels: [a], regex: '.*o.*', action: drop}"],
            &abc,
            None,
        ),
        (
            "drop without match keeps",
            &["{source_labels: [a], regex: 'f', action: drop}"],
            &abc,
            Some(&abc),
        ),
        (
            "keep without match drops",
            &["{source_labels: [a], regex: 'no-match', action: keep}"],
            &abc,
            None,
        ),
        (
            "keep on match",
            &["{source_labels: [a], regex: 'f.*', action: keep}"],
            &abc,
            Some(&abc),
        ),
        (
            "keep on a missing label matches the empty string",
            &["{source_labels: [z], regex: '', action: keep}"],
            &abc,
            Some(&abc),
        ),
        (
            "hashmod",
            &["{source_labels: [c], target_label: d, modulus: 1000, action: hashmod}"],
            &abc,
            Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "976")]),
        ),
        (
            "labelmap",
            &["{regex: '(b.*)', replacement: 'bar_${1}', action: labelmap}"],
            &abc,
            Some(&[("a", "foo"), ("b", "bar"), ("bar_b", "bar"), ("c", "baz")]),
        ),
        (
            "labelmap of __meta-style names",
            &["{regex: '__meta_(.+)', action: labelmap}"],
            &[("__meta_my_bar", "aaa"), ("a", "b")],
            Some(&[("__meta_my_bar", "aaa"), ("a", "b"), ("my_bar", "aaa")]),
        ),
        (
            "labeldrop",
            &["{regex: '(b.*)', action: labeldrop}"],
            &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
            Some(&[("a", "foo")]),
        ),
        (
            "labelkeep",
            &["{regex: '(b.*)', action: labelkeep}"],
            &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
            Some(&[("b1", "bar"), ("b2", "baz")]),
        ),
        (
            "lowercase",
            &["{source_labels: [foo], target_label: foo_lower, action: lowercase}"],
            &[("foo", "AbCdEf")],
            Some(&[("foo", "AbCdEf"), ("foo_lower", "abcdef")]),
        ),
        (
            "uppercase",
            &["{source_labels: [foo], target_label: foo_upper, action: uppercase}"],
            &[("foo", "AbCdEf")],
            Some(&[("foo", "AbCdEf"), ("foo_upper", "ABCDEF")]),
        ),
        (
            "keepequal",
            &["{source_labels: [a], target_label: b, action: keepequal}"],
            &abc,
            None,
        ),
        (
            "dropequal",
            &["{source_labels: [a], target_label: b, action: dropequal}"],
            &abc,
            Some(&abc),
        ),
        (
            "drop envoy_* by name (the operator's use case)",
            &["{source_labels: [__name__], regex: 'envoy_cluster_upstream_cx_.*', action: drop}"],
            &[("__name__", "envoy_cluster_upstream_cx_total"), ("pod", "p")],
            None,
        ),
    ];
    for (name, rules, input, want) in cases {
        let rules: Vec<RelabelRule> = rules.iter().map(|r| rule(r)).collect();
        let got = process(labels(input), &rules);
        assert_eq!(got, want.map(labels), "{name}");
    }
}

#[test]
fn invalid_rules_are_rejected() {
    for yaml in [
        "{regex: '('}",
        "{source_labels: [a], action: replace}",
        "{source_labels: [a], target_label: d, action: hashmod}",
        "{source_labels: [a], regex: x, action: labeldrop}",
    ] {
        let c: RelabelConfig = serde_norway::from_str(yaml).expect("yaml");
        assert!(RelabelRule::new(c).is_err(), "{yaml}");
    }
    assert!(serde_norway::from_str::<RelabelConfig>("{action: bogus}").is_err());
}

#[test]
fn md5_matches_rfc_1321() {
    let hex = |d: [u8; 16]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    assert_eq!(hex(md5_for_test(b"")), "d41d8cd98f00b204e9800998ecf8427e");
    assert_eq!(
        hex(md5_for_test(b"The quick brown fox jumps over the lazy dog")),
        "9e107d9d372bb6826bd81d3542a419d6"
    );
    assert_eq!(hex(md5_for_test(&[b'a'; 200])).len(), 32);
}
