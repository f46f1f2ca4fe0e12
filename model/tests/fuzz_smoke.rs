//! A short, deterministic, stable-toolchain stand-in for the cargo-fuzz target (which needs
//! nightly): the fuzz corpus (when `fuzz/corpus/parse` exists), the real fixture scrapes and
//! seeded random mutations of them through the same invariants
//! ([`meshfed_model::exposition::fuzzing::check_invariants`]).
//!
//! `MESHFED_FUZZ_ITERS` sets the number of mutated inputs (default 3,000; `scripts/test` runs more
//! in release mode), `MESHFED_FUZZ_SEED` the seed, `MESHFED_FUZZ_CORPUS` another corpus directory.
//! See `docs/parsing.md` for real, coverage-guided fuzzing.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use meshfed_model::exposition::fuzzing::check_invariants;
use meshfed_model::fixtures::istio_scrape;

mod common;

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Tokens that steer mutations towards the grammar's edges.
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"\"",
    b"\\",
    b"\n",
    b"#",
    b" ",
    b"\t",
    b"=",
    b",",
    b"NaN",
    b"+Inf",
    b"-Inf",
    b"1e308",
    b"# EOF\n",
    b"# TYPE x counter\n",
    b"# TYPE x histogram\n",
    b"# HELP x a\\nb\n",
    b"# UNIT x s\n",
    b"_total",
    b"_bucket{le=\"+Inf\"}",
    b"_created",
    b" # {trace_id=\"a\"} 1 2",
    b"\xff",
    b"\xc3\xa9",
    b"le=\"1\"",
    b"quantile=\"0.5\"",
    b"\0",
    b"1700000000000",
    b"1.5e9",
];

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = vec![
        b"# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"UF,URX\",y=\"/a=b\"} 1 1700000000000\n"
            .to_vec(),
        b"# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n".to_vec(),
        b"# TYPE c counter\n# UNIT c seconds\nc_total 1 # {trace_id=\"x\"} 1 1.5\nc_created 1.5\n# EOF\n"
            .to_vec(),
        b"# TYPE s stateset\ns{s=\"a\"} 1\ns{s=\"b\"} 0\n# TYPE i info\ni_info{v=\"1\"} 1\n# EOF\n".to_vec(),
        istio_scrape(20_000, true).into_bytes(),
    ];
    for (_, path, _) in common::scrapes() {
        seeds.push(std::fs::read(path).unwrap());
    }
    seeds
}

fn corpus() -> Vec<PathBuf> {
    let dir = std::env::var_os("MESHFED_FUZZ_CORPUS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/parse"),
        PathBuf::from,
    );
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!(
            "no fuzz corpus at {} (cargo fuzz writes it); using seeds only",
            dir.display()
        );
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// One mutated input: a window of a seed with a few random edits, sometimes spliced with another.
fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let seed = &seeds[rng.below(seeds.len())];
    let start = rng.below(seed.len());
    let len = 1 + rng.below(4096);
    let mut data = seed[start..(start + len).min(seed.len())].to_vec();
    if rng.below(4) == 0 {
        // Often start at a line, as real bodies do.
        if let Some(nl) = seed[..start].iter().rposition(|&b| b == b'\n') {
            data = seed[nl + 1..(nl + 1 + len).min(seed.len())].to_vec();
        }
    }
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(data.len() + 1);
        match rng.below(6) {
            0 => data
                .splice(at..at, TOKENS[rng.below(TOKENS.len())].iter().copied())
                .for_each(drop),
            1 if at < data.len() => data[at] = rng.next() as u8,
            2 if at < data.len() => {
                let end = (at + 1 + rng.below(64)).min(data.len());
                data.drain(at..end);
            }
            3 if !data.is_empty() => {
                let from = rng.below(data.len());
                let end = (from + 1 + rng.below(256)).min(data.len());
                let copy = data[from..end].to_vec();
                data.splice(at..at, copy).for_each(drop);
            }
            4 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len());
                let end = (from + rng.below(512)).min(other.len());
                data.splice(at..at, other[from..end].iter().copied())
                    .for_each(drop);
            }
            _ => data.truncate(at),
        }
    }
    data
}

#[test]
fn corpus_seeds_and_mutations_keep_the_parser_invariants() {
    let corpus = corpus();
    for path in &corpus {
        let data = std::fs::read(path).unwrap();
        let result = std::panic::catch_unwind(|| check_invariants(&data));
        assert!(
            result.is_ok(),
            "corpus input {} breaks an invariant",
            path.display()
        );
    }
    let seeds = seeds();
    for seed in &seeds {
        check_invariants(seed);
    }
    let iterations = env_num("MESHFED_FUZZ_ITERS", 3_000);
    let seed = env_num("MESHFED_FUZZ_SEED", 0x5eed_f00d);
    let mut rng = Rng(seed | 1);
    for i in 0..iterations {
        let data = mutate(&mut rng, &seeds);
        let result = std::panic::catch_unwind(|| check_invariants(&data));
        assert!(
            result.is_ok(),
            "mutation {i} (MESHFED_FUZZ_SEED={seed}) breaks an invariant; input:\n{:?}",
            String::from_utf8_lossy(&data)
        );
    }
    println!(
        "fuzz smoke: {} corpus files, {} seeds, {iterations} mutations (seed {seed})",
        corpus.len(),
        seeds.len()
    );
}
