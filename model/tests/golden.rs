//! Golden snapshots of the families parsed from every real scrape under the shared fixtures.
//!
//! One file per scrape under `tests/golden/`, one line per family: type, name, sample count, HELP
//! and UNIT presence and a hash of the samples (full names, label pairs, value bits, timestamps,
//! exemplars), so a change in grouping, typing or any parsed value shows up as a changed line
//! without copying the fixtures into the repository. Regenerate after an intended change with
//! `UPDATE_GOLDEN=1 cargo test -p meshfed-model --test golden` and review the diff.

#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;

use meshfed_model::Labels;
use meshfed_model::exposition::{Format, MetricFamily, parse};
use meshfed_model::fixtures::fixtures_root;

mod common;

/// FNV-1a, 64-bit: stable across Rust versions and platforms, unlike `DefaultHasher`.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= u64::from(x);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A separator, so ("ab","c") and ("a","bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
    }

    fn labels(&mut self, labels: &Labels) {
        for l in labels {
            self.bytes(l.name.as_bytes());
            self.bytes(l.value.as_bytes());
        }
        self.bytes(b"}");
    }

    fn value(&mut self, v: f64) {
        // Every NaN hashes alike except the staleness marker, which has its own bits.
        let bits = if v.is_nan() && !meshfed_model::is_stale_nan(v) {
            f64::NAN.to_bits()
        } else {
            v.to_bits()
        };
        self.bytes(&bits.to_le_bytes());
    }

    fn timestamp(&mut self, ts: Option<i64>) {
        match ts {
            Some(t) => self.bytes(&t.to_le_bytes()),
            None => self.bytes(b"-"),
        }
    }
}

/// The snapshot of one parsed scrape.
fn snapshot(fams: &[MetricFamily], format: Format) -> String {
    let mut out = String::new();
    for f in fams {
        let mut h = Fnv::new();
        for s in &f.samples {
            h.labels(&s.labels);
            h.value(s.value);
            h.timestamp(s.timestamp_ms);
            if let Some(e) = &s.exemplar {
                h.labels(&e.labels);
                h.value(e.value);
                h.timestamp(e.timestamp_ms);
            }
        }
        let mut meta = Fnv::new();
        meta.bytes(f.help.as_deref().unwrap_or("").as_bytes());
        writeln!(
            out,
            "{} {} samples={} help={} unit={} hash={:016x}",
            f.metric_type.type_word(format),
            f.name,
            f.samples.len(),
            match &f.help {
                Some(_) => format!("{:08x}", meta.0 as u32),
                None => "-".to_owned(),
            },
            f.unit.as_deref().unwrap_or("-"),
            h.0
        )
        .unwrap();
    }
    out
}

fn golden_path(sub: &str, path: &std::path::Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap();
    let file = format!("{}__{name}.golden", sub.replace('/', "__"));
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(file)
}

#[test]
fn parsed_real_scrapes_match_their_golden_snapshots() {
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let scrapes = common::scrapes();
    if scrapes.is_empty() {
        eprintln!("skipping: no fixtures under {}", fixtures_root().display());
        return;
    }
    let mut failures = Vec::new();
    for (sub, path, format) in &scrapes {
        let fams = parse(&common::read(path), *format).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let got = snapshot(&fams, *format);
        let golden = golden_path(sub, path);
        if update {
            fs::write(&golden, &got).unwrap();
            continue;
        }
        let want = fs::read_to_string(&golden).unwrap_or_default();
        if got != want {
            let first = got
                .lines()
                .zip(want.lines().chain(std::iter::repeat("<missing>")))
                .find(|(g, w)| g != w)
                .map(|(g, w)| format!("\n  want {w}\n  got  {g}"))
                .unwrap_or_else(|| "\n  (lines missing at the end)".to_owned());
            failures.push(format!("{}:{first}", golden.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} snapshots differ (UPDATE_GOLDEN=1 rewrites them; review the diff):\n{}",
        failures.len(),
        scrapes.len(),
        failures.join("\n")
    );
    println!("golden snapshots: {} scrapes checked", scrapes.len());
}

#[test]
fn snapshot_lines_show_type_count_and_a_sample_hash() {
    let body = "# HELP a A.\n# TYPE a counter\na_total{x=\"1\"} 1\na_total{x=\"2\"} 2\nb 3\n";
    let fams = parse(body, Format::PrometheusText).unwrap();
    let snap = snapshot(&fams, Format::PrometheusText);
    let lines: Vec<_> = snap.lines().collect();
    assert_eq!(lines.len(), 2, "{snap}");
    assert!(lines[0].starts_with("counter a samples=2 help="), "{snap}");
    assert!(
        lines[1].starts_with("untyped b samples=1 help=- unit=- hash="),
        "{snap}"
    );
    // Any value change changes the hash.
    let changed = parse(&body.replace("} 2", "} 2.5"), Format::PrometheusText).unwrap();
    assert_ne!(snapshot(&changed, Format::PrometheusText), snap);
}
