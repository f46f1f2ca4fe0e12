//! Rough parse throughput on the real Istio scrape (the criterion bench is `benches/parse.rs`):
//! `cargo run -p meshfed-model --release --example parse_throughput`.

use std::time::Instant;

use meshfed_model::exposition::{Format, parse};
use meshfed_model::fixtures::fixture_dir;

fn main() {
    let Some(dir) = fixture_dir("istio-sidecar/datadog") else {
        return;
    };
    let path = dir.join("istio-1.5-fixture_istio-merged.txt");
    let body = std::fs::read_to_string(&path).expect("read the Istio fixture");
    let body = format!("{}\n", body.trim_end()).repeat(20);
    let rounds = 20;
    let start = Instant::now();
    let mut samples = 0;
    for _ in 0..rounds {
        let fams = parse(&body, Format::PrometheusText).expect("fixture parses");
        samples += fams.iter().map(|f| f.samples.len()).sum::<usize>();
    }
    let secs = start.elapsed().as_secs_f64();
    let mb = (body.len() * rounds) as f64 / 1e6;
    println!(
        "{mb:.0} MB, {samples} samples in {secs:.2}s: {:.0} MB/s, {:.1} M samples/s",
        mb / secs,
        samples as f64 / secs / 1e6
    );
}
