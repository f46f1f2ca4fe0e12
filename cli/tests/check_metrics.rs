//! `meshfed check metrics --openmetrics` as the OpenMetrics test suite's driver runs it: the
//! exposition on stdin, exit status 0 exactly for the cases that should parse, and a
//! `line:column: reason` on stderr for the ones that should not.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use std::io::Write;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_meshfed");

fn check(body: &[u8], openmetrics: bool) -> (bool, String) {
    let mut args = vec!["check", "metrics"];
    if openmetrics {
        args.push("--openmetrics");
    }
    let mut child = Command::new(BIN)
        .args(&args)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn openmetrics_suite_through_the_cli() {
    let Some(dir) = meshfed_model::fixtures::fixture_dir("openmetrics-parsers") else {
        return;
    };
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    let mut passed = 0;
    let mut failures = Vec::new();
    for case in &cases {
        let spec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(case.join("test.json")).unwrap()).unwrap();
        let file = spec["file"].as_str().unwrap_or("metrics");
        let body = std::fs::read(case.join(file)).unwrap();
        let should_parse = spec["shouldParse"].as_bool().unwrap();
        let (ok, stderr) = check(&body, true);
        let named_position = stderr
            .lines()
            .all(|l| l.split(':').take(2).all(|n| n.trim().parse::<u32>().is_ok()));
        if ok == should_parse && (ok || (!stderr.is_empty() && named_position)) {
            passed += 1;
        } else {
            failures.push(format!(
                "{}: exit ok={ok}, expected {should_parse}; stderr {stderr:?}",
                case.display()
            ));
        }
    }
    println!(
        "openmetrics suite via `meshfed check metrics --openmetrics`: {passed}/{}",
        cases.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(cases.len(), 211);
}

#[test]
fn text_format_errors_name_line_and_column() {
    let (ok, stderr) = check(b"up 1\nbad{a=\"b\" 1\n", false);
    assert!(!ok);
    assert!(stderr.starts_with("2:"), "{stderr}");
    let (ok, stderr) = check(b"# TYPE up gauge\nup{job=\"a,b=c\"} 1\n", false);
    assert!(ok, "{stderr}");
}
