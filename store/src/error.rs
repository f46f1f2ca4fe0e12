//! The store's error type. Every variant that touches a file names it, and the ones about
//! content name the offset, so an operator can find the bad bytes.

use std::path::PathBuf;

/// Errors of the persistent store (the in-memory head's refusals are [`crate::AppendError`]).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`open`, `write`, `fsync`, …).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file's content is not what the store wrote.
    #[error("corrupt {path} at offset {offset}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset of the bad record or section.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A WAL write failed earlier; nothing appended since can be made durable. Reopen the store.
    #[error("WAL segment {segment} failed earlier and is closed: {reason}")]
    WalFailed {
        /// The segment that failed.
        segment: u64,
        /// The original error.
        reason: String,
    },
    /// Another store (in this or another process) holds the directory's lock file.
    #[error("store directory {dir} is in use: {holder} holds {lock}", lock = .dir.join(crate::lock::LOCK_FILE).display(), dir = .dir.display())]
    Locked {
        /// The store directory.
        dir: PathBuf,
        /// Who holds the lock, as its lock file says (`pid N`), or `another open store`.
        holder: String,
    },
    /// The operation needs a store opened with [`crate::Store::open`].
    #[error("the store is in-memory; {0} needs a directory")]
    InMemory(&'static str),
}

/// The store's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Wraps an `io::Error` with the operation and path.
pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.into();
    move |source| StoreError::Io { op, path, source }
}

/// A [`StoreError::Corrupt`].
pub(crate) fn corrupt(path: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        path: path.into(),
        offset,
        reason: reason.into(),
    }
}
