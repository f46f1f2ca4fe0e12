//! The directory lock: one open store per data directory.
//!
//! [`Store::open`](crate::Store::open) takes an exclusive, non-blocking `flock` on `dir/LOCK`
//! before reading anything and keeps the file open for the store's life. The kernel drops the
//! lock when the file is closed or the process dies (including `kill -9`), so a crash never
//! leaves a stale lock behind; the file itself stays and is reused. The holder writes its pid
//! into the file so a refused opener can name it. `flock` locks belong to the open file, so a
//! second `Store::open` of the same directory inside one process is refused too.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::error::{Result, StoreError, io};

/// The lock file's name inside the store directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// A held directory lock; released when dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock of `dir` (which must exist), or says who holds it.
    pub(crate) fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io("open", &path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let text = text.trim();
                let holder = if text.is_empty() || text.len() > 64 {
                    "another open store".to_owned()
                } else {
                    text.to_owned()
                };
                return Err(StoreError::Locked {
                    dir: dir.to_owned(),
                    holder,
                });
            }
            Err(TryLockError::Error(e)) => return Err(io("lock", &path)(e)),
        }
        // Only the holder writes, so a reader sees the previous holder's pid or ours.
        file.set_len(0).map_err(io("truncate", &path))?;
        file.seek(SeekFrom::Start(0)).map_err(io("seek", &path))?;
        file.write_all(format!("pid {}\n", std::process::id()).as_bytes())
            .map_err(io("write", &path))?;
        Ok(Self { _file: file })
    }
}
