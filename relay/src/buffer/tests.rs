use meshfed_model::Labels;

use super::*;

fn batch(n: usize) -> Vec<OutgoingSample> {
    (0..n)
        .map(|i| OutgoingSample {
            labels: Labels::from_pairs([("__name__", format!("x{}", i % 3))]).into(),
            timestamp_ms: i as i64,
            value: 1.0,
        })
        .collect()
}

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("meshfed-buffer-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    d
}

#[test]
fn survives_reopen_and_replays_only_unacknowledged() {
    let d = dir("reopen");
    let mut b = DiskBuffer::open(&d, 1 << 20).unwrap();
    let epoch = b.epoch();
    for _ in 0..5 {
        b.append(&batch(3)).unwrap();
    }
    b.acknowledge(2).unwrap();
    drop(b);
    let b = DiskBuffer::open(&d, 1 << 20).unwrap();
    assert_eq!(b.epoch(), epoch);
    let left = b.unacknowledged().unwrap();
    let seqs: Vec<u64> = left.iter().map(|x| x.0).collect();
    assert_eq!(seqs, [3, 4, 5]);
    assert_eq!(left[0].1, batch(3), "labels and values come back exactly");
    assert_eq!(b.next_sequence(), 6);
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn torn_tail_is_dropped_and_counted() {
    let d = dir("torn");
    let mut b = DiskBuffer::open(&d, 1 << 20).unwrap();
    b.append(&batch(2)).unwrap();
    b.append(&batch(2)).unwrap();
    drop(b);
    let seg = fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .unwrap();
    let len = fs::metadata(&seg).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let b = DiskBuffer::open(&d, 1 << 20).unwrap();
    assert_eq!(b.stats().corrupt_records, 1);
    let seqs: Vec<u64> = b.unacknowledged().unwrap().iter().map(|x| x.0).collect();
    assert_eq!(seqs, [1]);
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn full_buffer_drops_oldest_and_counts() {
    let d = dir("full");
    let mut b = DiskBuffer::open(&d, 1 << 16).unwrap();
    for _ in 0..400 {
        b.append(&batch(50)).unwrap();
    }
    assert!(b.bytes() <= 1 << 16, "{} bytes", b.bytes());
    assert!(b.stats().dropped_samples > 0);
    let left = b.unacknowledged().unwrap();
    assert_eq!(left.last().unwrap().0, 400, "the newest data is kept");
    assert_eq!(
        left.len() as u64 * 50 + b.stats().dropped_samples,
        400 * 50,
        "every sample is kept or counted"
    );
    fs::remove_dir_all(&d).unwrap();
}
