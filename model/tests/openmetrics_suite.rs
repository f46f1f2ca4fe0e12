//! The OpenMetrics parser test suite (`prometheus/OpenMetrics` `tests/testdata/parsers`): every case
//! marked `shouldParse: true` must parse in OpenMetrics mode with strict validation and every other
//! case must be rejected; `check` must agree, and the lenient scrape mode must accept every good case.

use std::fs;

use meshfed_model::exposition::{Format, Validation, check, parse, parse_with};
use meshfed_model::fixtures::fixture_dir;

/// Cases we knowingly get wrong, with the reason. The test fails if one of them starts passing.
const KNOWN_FAILURES: &[(&str, &str)] = &[];

#[test]
fn openmetrics_parser_suite() {
    let Some(dir) = fixture_dir("openmetrics-parsers") else {
        return;
    };
    let mut cases: Vec<_> = fs::read_dir(&dir)
        .expect("read suite dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    cases.sort();
    let (mut passed, mut unexpected, mut fixed) = (0, Vec::new(), Vec::new());
    for case in &cases {
        let name = case
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let meta = fs::read_to_string(case.join("test.json")).expect("read test.json");
        let should_parse = meta.contains("\"shouldParse\": true");
        let body = fs::read(case.join("metrics")).expect("read metrics");
        // A body that is not UTF-8 is a rejection before parsing.
        let result = String::from_utf8(body).map_err(|e| e.to_string()).and_then(|s| {
            let strict = parse_with(&s, Format::OpenMetrics, Validation::Strict)
                .map(|_| ())
                .map_err(|e| e.to_string());
            assert_eq!(
                strict.is_ok(),
                check(&s, Format::OpenMetrics).is_empty(),
                "{name}: check disagrees"
            );
            if should_parse {
                assert!(
                    parse(&s, Format::OpenMetrics).is_ok(),
                    "{name}: scrape mode rejects a good case"
                );
            }
            strict
        });
        let ok = result.is_ok() == should_parse;
        let known = KNOWN_FAILURES.iter().any(|(n, _)| *n == name);
        match (ok, known) {
            (true, false) => passed += 1,
            (true, true) => fixed.push(name),
            (false, true) => {}
            (false, false) => unexpected.push(format!("{name}: shouldParse={should_parse}, got {result:?}")),
        }
    }
    println!(
        "openmetrics suite: {passed}/{} ({} known failures)",
        cases.len(),
        KNOWN_FAILURES.len()
    );
    assert!(
        cases.len() >= 211,
        "expected the 211 suite cases, found {}",
        cases.len()
    );
    assert!(
        unexpected.is_empty(),
        "unexpected results:\n{}",
        unexpected.join("\n")
    );
    assert!(
        fixed.is_empty(),
        "known failures now pass, remove them from KNOWN_FAILURES: {fixed:?}"
    );
}
