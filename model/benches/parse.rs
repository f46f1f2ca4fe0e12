//! Exposition parsing throughput, with `prometheus-parse` 0.2 measured in the same run as the
//! baseline: `cargo bench -p meshfed-model --bench parse` (system allocator, glibc malloc) and
//! `--bench parse_mimalloc` (the same under mimalloc: the full parse is allocation-bound, so the
//! allocator a binary links decides most of its speed).
//!
//! Inputs: (a) a ~10 MB synthetic Istio sidecar scrape (`fixtures::istio_scrape`) in two variants, with real
//! `response_flags="UF,URX"` values and without commas (the only one the baseline reads correctly);
//! (b) the real Istio 1.5 merged sidecar scrape from `shared/fixtures` (skipped when absent).
//! `prometheus-parse` runs only on inputs where its sample count equals ours (checked below).
//!
//! Allocations per sample are counted by `tests/allocations.rs`, not here: a counting global
//! allocator would slow down exactly the allocation-heavy paths being compared.

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

/// Which global allocator this bench runs under, for the group names.
const ALLOCATOR: &str = "glibc";

include!("common/parse.rs");
