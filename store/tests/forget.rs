//! Forgetting series whose data retention deleted: two rounds, unmarked by use, gone from
//! lookups, postings, label values and (after the next checkpoint) restarts; stale refs refused,
//! never reused.

#![allow(clippy::unwrap_used, missing_docs)] // Tests: a panic is the failure report.

use meshfed_model::{Labels, MatchOp, Matcher};
use meshfed_store::{AppendError, ForgetReport, Store, StoreOptions};

fn pod(name: &str) -> Labels {
    Labels::from_pairs([("__name__", "requests_total"), ("pod", name)])
}

fn options() -> StoreOptions {
    StoreOptions {
        retention_ms: Some(2_000),
        samples_per_chunk: 10,
        ..StoreOptions::default()
    }
}

fn all() -> Vec<Matcher> {
    vec![Matcher::new(MatchOp::Equal, "__name__", "requests_total").unwrap()]
}

#[test]
fn series_whose_blocks_retention_deleted_are_forgotten_after_two_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    let (gone, kept) = (
        store.get_or_create(&pod("gone")),
        store.get_or_create(&pod("kept")),
    );
    for t in (0..10_000).step_by(100) {
        if t < 1_000 {
            store.append(gone, t, t as f64).unwrap();
        }
        store.append(kept, t, t as f64).unwrap();
    }
    store.cut_head(5_000).unwrap().unwrap();
    // While its block exists the series has data: no round marks it.
    assert_eq!(store.forget_empty_series(), ForgetReport::default());
    assert_eq!(store.apply_retention().unwrap(), 1);
    assert_eq!(
        store.forget_empty_series(),
        ForgetReport {
            marked: 1,
            forgotten: 0
        }
    );
    // Marked, not forgotten: still fully there.
    assert_eq!(store.get(&pod("gone")), Some(gone));
    assert_eq!(
        store.forget_empty_series(),
        ForgetReport {
            marked: 0,
            forgotten: 1
        }
    );
    assert_eq!(store.get(&pod("gone")), None);
    assert_eq!(store.labels(gone), None);
    assert_eq!(store.stats().series, 1);
    assert_eq!(store.stats().forgotten, 1);
    assert_eq!(
        store.label_values("pod", &[], i64::MIN, i64::MAX),
        ["kept"],
        "postings and symbols let go of it"
    );
    assert_eq!(store.memory().symbols, 4);
    assert_eq!(
        store.append(gone, 20_000, 1.0),
        Err(AppendError::UnknownSeries(gone))
    );
    assert_eq!(store.append_batch(&[(gone, 20_001, 1.0)]).unknown_series, 1);
    // The kept series is untouched and readable across the (deleted) block and the head.
    let mut buf = Vec::new();
    store.read_samples(kept, i64::MIN, i64::MAX, &mut buf);
    assert_eq!(buf.first().map(|s| s.timestamp_ms), Some(5_000));
    assert_eq!(buf.len(), 50);
    // The labels come back as a new series with a new ref; the old ref stays dead.
    let again = store.get_or_create(&pod("gone"));
    assert_ne!(again, gone);
    store.append(again, 20_000, 2.0).unwrap();
    assert_eq!(store.select(&all(), i64::MIN, i64::MAX).len(), 2);
    assert!(store.append(gone, 20_100, 1.0).is_err());
}

#[test]
fn a_lookup_or_an_append_between_rounds_keeps_the_series() {
    let store = Store::new(StoreOptions::default());
    let (a, b, c) = (
        store.get_or_create(&pod("a")),
        store.get_or_create(&pod("b")),
        store.get_or_create(&pod("c")),
    );
    assert_eq!(store.forget_empty_series().marked, 3);
    assert_eq!(store.get_or_create(&pod("a")), a); // A lookup unmarks a.
    store.append(b, 1, 1.0).unwrap(); // Data unmarks b for good.
    let round = store.forget_empty_series();
    assert_eq!(
        round,
        ForgetReport {
            marked: 1,
            forgotten: 1
        },
        "a re-marked, c forgotten"
    );
    assert_eq!(store.labels(a), Some(pod("a")));
    assert_eq!(store.labels(c), None);
    store.append(a, 1, 1.0).unwrap();
    store.append(b, 2, 2.0).unwrap();
    assert_eq!(store.forget_empty_series(), ForgetReport::default());
    assert_eq!(store.stats().series, 2);
}

#[test]
fn forgotten_series_do_not_come_back_after_the_next_checkpoint_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), options()).unwrap();
        let gone = store.get_or_create(&pod("gone"));
        let kept = store.get_or_create(&pod("kept"));
        store.append(gone, 0, 1.0).unwrap();
        for t in (0..10_000).step_by(100) {
            store.append(kept, t, 1.0).unwrap();
        }
        store.cut_head(5_000).unwrap();
        store.apply_retention().unwrap();
        store.forget_empty_series();
        assert_eq!(store.forget_empty_series().forgotten, 1);
        // Forgotten after the cut's checkpoint: a restart now would replay it as an empty series
        // (and forget it again). The next checkpoint omits it.
        store.cut_head(6_000).unwrap().unwrap();
    }
    let store = Store::open(dir.path(), options()).unwrap();
    assert_eq!(store.get(&pod("gone")), None);
    assert_eq!(store.stats().series, 1);
    let mut buf = Vec::new();
    store.read_samples(store.get(&pod("kept")).unwrap(), i64::MIN, i64::MAX, &mut buf);
    assert_eq!(buf.len(), 50);
}

#[test]
fn an_append_racing_a_round_either_lands_and_keeps_the_series_or_is_refused() {
    let store = std::sync::Arc::new(Store::new(StoreOptions::default()));
    let refs: Vec<_> = (0..2000)
        .map(|i| store.get_or_create(&pod(&i.to_string())))
        .collect();
    let writer = {
        let (store, refs) = (store.clone(), refs.clone());
        std::thread::spawn(move || {
            refs.iter()
                .map(|&r| {
                    std::thread::yield_now();
                    store.append(r, 1, 1.0).is_ok()
                })
                .collect::<Vec<bool>>()
        })
    };
    while !writer.is_finished() {
        store.forget_empty_series();
    }
    let landed = writer.join().unwrap();
    let mut buf = Vec::new();
    for (&r, &ok) in refs.iter().zip(&landed) {
        store.read_samples(r, i64::MIN, i64::MAX, &mut buf);
        if ok {
            assert!(
                store.labels(r).is_some(),
                "{r:?} forgotten after an accepted append"
            );
            assert_eq!(buf.len(), 1);
        } else {
            assert_eq!(store.labels(r), None, "{r:?} refused while live");
        }
    }
    let kept = landed.iter().filter(|&&ok| ok).count() as u64;
    eprintln!("{kept} of {} appends landed; the rest raced a forget", refs.len());
    assert_eq!((store.stats().series, store.stats().samples), (kept, kept));
    // Nothing with data is ever forgotten, however many rounds run.
    for _ in 0..3 {
        store.forget_empty_series();
    }
    assert_eq!(store.stats().series, kept);
}
