//! Arbitrary bytes through both exposition parsers: no panic, `check` reports nothing exactly when
//! the strict parse succeeds, and the streaming path accepts exactly what the scrape parse accepts,
//! with the same samples count (`meshfed_model::exposition::fuzzing`, which the stable smoke test
//! `model/tests/fuzz_smoke.rs` runs too).
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshfed_model::exposition::fuzzing::check_invariants;

fuzz_target!(|data: &[u8]| check_invariants(data));
