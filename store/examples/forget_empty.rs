//! Times forgetting empty series: `--series N` series of one metric are registered without
//! samples, then two forget rounds run (the first marks them, the second forgets them). Every
//! series shares the `__name__` and `job` posting lists, so this is the case where removing ids
//! one at a time from a list would be quadratic.
//!
//! `cargo run --release -p meshfed-store --example forget_empty -- --series 200000`

use std::time::Instant;

use meshfed_model::Labels;
use meshfed_store::{Store, StoreOptions};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut series = 200_000usize;
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next().and_then(|v| v.parse().ok())) {
            ("--series", Some(n)) => series = n,
            _ => {
                eprintln!("usage: forget_empty [--series N]");
                std::process::exit(2);
            }
        }
    }
    let store = Store::new(StoreOptions::default());
    for i in 0..series {
        let pod = format!("pod-{i}");
        store.get_or_create(&Labels::from_pairs([
            ("__name__", "istio_requests_total"),
            ("job", "envoy-stats"),
            ("pod", pod.as_str()),
        ]));
    }
    let t = Instant::now();
    let marked = store.forget_empty_series();
    let forgotten = store.forget_empty_series();
    println!(
        "{series} series: marked {}, forgotten {} in {:.3} s",
        marked.marked,
        forgotten.forgotten,
        t.elapsed().as_secs_f64()
    );
}
