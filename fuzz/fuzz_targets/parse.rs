//! Arbitrary bytes through both exposition parsers: no panic, `check` reports nothing exactly when
//! the strict parse succeeds, and the streaming path accepts exactly what the scrape parse accepts,
//! with the same samples count.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshfed_model::exposition::{Format, Validation, check, for_each_sample, parse, parse_with};

fuzz_target!(|data: &[u8]| {
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
                assert!(stream.is_ok() && !bad_labels, "{format:?}: streaming rejects what parse accepts");
                let samples: usize = families.iter().map(|f| f.samples.len()).sum();
                assert_eq!(samples, streamed, "{format:?}: sample counts differ");
            }
            Err(_) => assert!(stream.is_err() || bad_labels, "{format:?}: streaming accepts what parse rejects"),
        }
    }
});
