//! The invariants the parsers must keep on arbitrary input, shared by the cargo-fuzz target
//! (`fuzz/fuzz_targets/parse.rs`, nightly) and the stable smoke test (`tests/fuzz_smoke.rs`), so
//! both check exactly the same properties.

use super::{Format, Validation, check, for_each_sample, parse, parse_with};

/// Runs `data` through both parsers and panics if an invariant breaks: no panic inside the
/// parsers; [`check`] reports nothing exactly when the strict parse succeeds; the streaming path
/// accepts exactly what [`parse`] accepts, with the same number of samples.
pub fn check_invariants(data: &[u8]) {
    // Non-UTF-8 bodies are rejected before parsing; map them to text so they still exercise it.
    let body = String::from_utf8_lossy(data);
    for format in [Format::PrometheusText, Format::OpenMetrics] {
        let strict = parse_with(&body, format, Validation::Strict);
        let problems = check(&body, format);
        assert_eq!(
            problems.is_empty(),
            strict.is_ok(),
            "{format:?}: check found {problems:?}, strict parse gave {:?}",
            strict.as_ref().err()
        );

        let scrape = parse(&body, format);
        let (mut streamed, mut bad_labels) = (0usize, false);
        let stream = for_each_sample(&body, format, |raw| {
            streamed += 1;
            bad_labels |= raw.labels().is_err();
        });
        match &scrape {
            Ok(families) => {
                assert!(
                    stream.is_ok() && !bad_labels,
                    "{format:?}: streaming rejects what parse accepts"
                );
                let samples: usize = families.iter().map(|f| f.samples.len()).sum();
                assert_eq!(samples, streamed, "{format:?}: sample counts differ");
            }
            Err(_) => assert!(
                stream.is_err() || bad_labels,
                "{format:?}: streaming accepts what parse rejects"
            ),
        }
    }
}
