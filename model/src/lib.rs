//! Core data model shared by every meshfed crate: label sets, samples, label matchers and the
//! Prometheus text / OpenMetrics exposition formats.
//!
//! This crate knows nothing of tokio, HTTP or storage, so it builds in seconds and is easy to fuzz.

pub mod exposition;
pub mod fixtures;
pub mod labels;
pub mod matcher;
pub mod sample;

pub use labels::{CompactString, Label, Labels, LabelsBuilder, METRIC_NAME, known_name};
pub use matcher::{MatchOp, Matcher, MatcherError};
pub use sample::{STALE_NAN_BITS, Sample, is_stale_nan, stale_nan};
