//! The list of real scrape bodies under the shared fixtures, for the integration tests that run
//! over all of them (`real_scrapes`, `golden`).

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use meshfed_model::exposition::Format;
use meshfed_model::fixtures::fixture_dir;

/// Reads a fixture file.
pub fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The files in `dir` whose name `keep` accepts, sorted.
pub fn files(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.file_name().and_then(|n| n.to_str()).is_some_and(&keep))
        .collect();
    v.sort();
    v
}

fn format_of(path: &Path) -> Format {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if name.ends_with(".om.txt") || name == "omtestdata.txt" {
        Format::OpenMetrics
    } else {
        Format::PrometheusText
    }
}

/// Every real scrape body, with the fixture sub-directory it is in and the format it is written
/// in. Directories that are absent are skipped (with a message), or fail the test under
/// `MESHFED_REQUIRE_FIXTURES=1`.
pub fn scrapes() -> Vec<(String, PathBuf, Format)> {
    let mut out = Vec::new();
    let mut add = |sub: &str, keep: &dyn Fn(&str) -> bool| {
        if let Some(dir) = fixture_dir(sub) {
            out.extend(
                files(&dir, keep)
                    .into_iter()
                    .map(|p| (sub.to_owned(), p.clone(), format_of(&p))),
            );
        }
    };
    add("istio-sidecar/datadog", &|_| true);
    add("istio-control-plane/datadog", &|_| true);
    add("envoy-stats/kuma-dp-metrics", &|n| n.ends_with(".in"));
    add("envoy-stats/kuma-dp-metrics/otel", &|n| n.ends_with(".in"));
    add("envoy-stats/kuma-dp-metrics/profiles", &|n| n.ends_with(".in"));
    add("prometheus-textparse", &|_| true);
    add("prometheus-textparse/legacy-2024-10", &|_| true);
    add("prometheus-common-expfmt/testdata", &|n| n == "text");
    add("prometheus-promtool-prom", &|n| n == "metrics-test.prom");
    add("otlp", &|n| n.ends_with(".prom"));
    out
}
