//! `label_names`, `label_values` and `series` with matcher sets and time ranges, as
//! `/api/v1/labels`, `/api/v1/label/<name>/values` and `/api/v1/series` use them.

#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

use meshfed_model::{Labels, MatchOp, Matcher};
use meshfed_store::{Store, StoreOptions};

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn a() -> Labels {
    labels(&[("__name__", "up"), ("job", "api"), ("pod", "a")])
}
fn b() -> Labels {
    labels(&[("__name__", "up"), ("job", "web"), ("pod", "b")])
}
fn c() -> Labels {
    labels(&[("__name__", "req"), ("job", "api"), ("code", "200")])
}

/// A: samples at 1s and 2s; B: at 5s; C: at 1s, 4s, 7s, 10s; D: no samples at all.
fn store() -> Store {
    // Two samples per chunk, so C's range spans chunks.
    let store = Store::new(StoreOptions {
        samples_per_chunk: 2,
        ..StoreOptions::default()
    });
    let ra = store.get_or_create(&a());
    let rb = store.get_or_create(&b());
    let rc = store.get_or_create(&c());
    store.get_or_create(&labels(&[("__name__", "up"), ("job", "idle"), ("only_d", "x")]));
    let mut batch = vec![(ra, 1000, 1.0), (ra, 2000, 1.0), (rb, 5000, 1.0)];
    batch.extend([1000, 4000, 7000, 10_000].map(|t| (rc, t, 2.0)));
    assert_eq!(store.append_batch(&batch).appended, 7);
    store
}

fn eq(name: &str, value: &str) -> Matcher {
    Matcher::equal(name, value)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn label_names_by_time_and_matchers() {
    let s = store();
    assert_eq!(
        s.label_names(&[], 0, 20_000),
        strings(&["__name__", "code", "job", "pod"])
    );
    // C's bounds overlap [4.5s, 5.5s] but it has no sample there.
    assert_eq!(
        s.label_names(&[], 4500, 5500),
        strings(&["__name__", "job", "pod"])
    );
    assert_eq!(
        s.label_names(&[], 7000, 7000),
        strings(&["__name__", "code", "job"])
    );
    assert_eq!(s.label_names(&[], 11_000, 20_000), Vec::<String>::new());
    assert_eq!(s.label_names(&[], 5000, 4000), Vec::<String>::new());
    assert_eq!(
        s.label_names(&[vec![eq("__name__", "req")]], 0, 20_000),
        strings(&["__name__", "code", "job"])
    );
    assert_eq!(
        s.label_names(&[vec![eq("__name__", "req")], vec![eq("pod", "b")]], 0, 20_000),
        strings(&["__name__", "code", "job", "pod"])
    );
    assert_eq!(
        s.label_names(&[vec![eq("job", "idle")]], i64::MIN, i64::MAX),
        Vec::<String>::new()
    );
    assert_eq!(s.label_names(&[vec![]], 0, 20_000), Vec::<String>::new());
}

#[test]
fn label_values_by_time_and_matchers() {
    let s = store();
    assert_eq!(s.label_values("job", &[], 0, 20_000), strings(&["api", "web"]));
    assert_eq!(s.label_values("job", &[], 4500, 5500), strings(&["web"]));
    assert_eq!(
        s.label_values("__name__", &[], i64::MIN, i64::MAX),
        strings(&["req", "up"])
    );
    assert_eq!(
        s.label_values("job", &[vec![eq("__name__", "up")]], 0, 1500),
        strings(&["api"])
    );
    assert_eq!(
        s.label_values("pod", &[vec![eq("__name__", "req")]], 0, 20_000),
        Vec::<String>::new()
    );
    assert_eq!(s.label_values("nope", &[], 0, 20_000), Vec::<String>::new());
    assert_eq!(
        s.label_values("only_d", &[], i64::MIN, i64::MAX),
        Vec::<String>::new()
    );
    assert_eq!(
        s.label_values("job", &[vec![eq("pod", "b")], vec![eq("code", "200")]], 0, 20_000),
        strings(&["api", "web"])
    );
    let not_api = Matcher::new(MatchOp::NotRegex, "job", "api").unwrap();
    assert_eq!(
        s.label_values("pod", &[vec![not_api]], 0, 20_000),
        strings(&["b"])
    );
}

#[test]
fn series_by_time_and_matchers() {
    let s = store();
    let any_job = vec![Matcher::new(MatchOp::Regex, "job", ".+").unwrap()];
    assert_eq!(s.series(&[], 0, 20_000), Vec::<Labels>::new());
    assert_eq!(
        s.series(std::slice::from_ref(&any_job), 0, 20_000),
        [c(), a(), b()]
    );
    assert_eq!(s.series(std::slice::from_ref(&any_job), 2000, 4000), [c(), a()]);
    assert_eq!(
        s.series(std::slice::from_ref(&any_job), 2001, 3999),
        Vec::<Labels>::new()
    );
    // Overlapping sets do not repeat a series.
    assert_eq!(
        s.series(&[any_job, vec![eq("job", "api")]], 0, 20_000),
        [c(), a(), b()]
    );
    let handles = s.select(&[eq("job", "api")], 0, 20_000);
    assert_eq!(
        handles.iter().map(|h| h.labels.clone()).collect::<Vec<_>>(),
        [c(), a()]
    );
}

#[test]
fn stats_and_memory_estimate() {
    let s = store();
    let st = s.stats();
    assert_eq!((st.series, st.samples), (4, 7));
    let m = s.memory();
    assert_eq!(m.series, 4);
    assert!(m.symbols >= 10);
    assert!(m.total_bytes() > 0 && m.bytes_per_series() == m.total_bytes() / 4);
}
