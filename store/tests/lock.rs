//! The directory lock: a second open of one directory is refused with an error naming the
//! directory and the holder, from this process and from a real second process; the lock goes
//! away with its holder, even a `kill -9`ed one.

#![allow(clippy::unwrap_used, missing_docs)] // Tests: a panic is the failure report.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use meshfed_model::Labels;
use meshfed_store::{Store, StoreError, StoreOptions};

const DIR_ENV: &str = "MESHFED_LOCK_DIR";

fn up() -> Labels {
    Labels::from_pairs([("__name__", "up")])
}

#[test]
fn second_open_in_one_process_is_refused_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let first = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let r = first.get_or_create(&up());
    first.append(r, 1, 1.0).unwrap();
    let err = Store::open(dir.path(), StoreOptions::default()).err().unwrap();
    let StoreError::Locked { dir: named, holder } = &err else {
        panic!("expected Locked, got {err}");
    };
    assert_eq!(named, dir.path());
    assert_eq!(holder, &format!("pid {}", std::process::id()));
    let text = err.to_string();
    assert!(
        text.contains(&dir.path().display().to_string()) && text.contains("LOCK"),
        "{text}"
    );
    // The refused open changed nothing: the first store still works and its data survives.
    first.append(r, 2, 2.0).unwrap();
    drop(first);
    let again = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let mut buf = Vec::new();
    again.read_samples(again.get(&up()).unwrap(), i64::MIN, i64::MAX, &mut buf);
    assert_eq!(buf.len(), 2);
}

/// Helper process: opens the store, says so, and waits to be killed.
#[test]
#[ignore = "helper process for lock_held_by_another_process"]
fn lock_holder_child() {
    let Ok(dir) = std::env::var(DIR_ENV) else { return };
    let _store = Store::open(Path::new(&dir), StoreOptions::default()).unwrap();
    println!("HOLDING");
    std::thread::sleep(std::time::Duration::from_secs(60));
}

#[test]
fn lock_held_by_another_process_names_it_and_dies_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["lock_holder_child", "--exact", "--nocapture", "--include-ignored"])
        .env(DIR_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    while !line.contains("HOLDING") {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "child exited before holding the lock"
        );
    }
    match Store::open(dir.path(), StoreOptions::default()) {
        Err(StoreError::Locked { holder, .. }) => assert_eq!(holder, format!("pid {}", child.id())),
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("two stores opened one directory"),
    }
    child.kill().unwrap(); // SIGKILL: no destructor runs, the kernel releases the lock.
    child.wait().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(store.stats().series, 0);
}
