//! The benchmarks of `parse.rs` with mimalloc as the global allocator:
//! `cargo bench -p meshfed-model --bench parse_mimalloc`. `prometheus-parse` runs under the same
//! allocator in the same run.

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Which global allocator this bench runs under, for the group names.
const ALLOCATOR: &str = "mimalloc";

include!("common/parse.rs");
