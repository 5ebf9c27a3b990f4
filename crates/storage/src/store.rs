//! The interface every backend implements, its errors, and how large
//! objects are chunked.

use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use thiserror::Error;

/// Why a storage operation failed.
#[derive(Debug, Error)]
pub enum StorageError {
    /// No object under the key.
    #[error("object {key:?} not found in {store}")]
    NotFound {
        /// The key.
        key: String,
        /// The store asked.
        store: String,
    },
    /// A key the stores refuse (empty, too long, a `..` segment, ...).
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey {
        /// The key (an excerpt).
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The store did not answer, or answered with a server error.
    #[error("storage {store} is unavailable: {reason}")]
    Unavailable {
        /// The store.
        store: String,
        /// The client's message.
        reason: String,
    },
    /// The store refused the credentials.
    #[error("storage {store} refused access: {reason}")]
    PermissionDenied {
        /// The store.
        store: String,
        /// The store's message.
        reason: String,
    },
    /// A ranged read starting past the object's end.
    #[error("object {key:?} has {size} bytes, fewer than the range {start}.. asks for")]
    RangeNotSatisfiable {
        /// The key.
        key: String,
        /// The first byte asked for.
        start: u64,
        /// The object's size.
        size: u64,
    },
    /// An object over the store's size limit, refused before it is sent.
    #[error("object {key:?} has {size} bytes, over the {limit}-byte limit of {store} (raise {setting}, or use another transfer)")]
    TooLarge {
        /// The key.
        key: String,
        /// The object's size in bytes.
        size: u64,
        /// The store's limit in bytes.
        limit: u64,
        /// The store.
        store: String,
        /// The setting that raises the limit.
        setting: &'static str,
    },
    /// A setting that does not describe a usable store.
    #[error("storage configuration: {0}")]
    Config(String),
}

/// A flat key-value object store.
#[async_trait]
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// Stores `data` under `key`, replacing any object there.
    async fn put(&self, key: &str, data: Bytes) -> Result<(), StorageError>;
    /// The whole object under `key`.
    async fn get(&self, key: &str) -> Result<Bytes, StorageError>;
    /// Bytes `range` of an object (the end clipped to the object's size),
    /// and the object's whole size. A range starting at or past the end is
    /// [`StorageError::RangeNotSatisfiable`].
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<(Bytes, u64), StorageError>;
    /// Deleting a missing object is not an error.
    async fn delete(&self, key: &str) -> Result<(), StorageError>;
    /// Deletes every key, missing ones included, in as few requests as the
    /// store allows (S3: one `DeleteObjects` per 1000 keys).
    async fn delete_many(&self, keys: &[String]) -> Result<(), StorageError>;
    /// Keys under `prefix` (a key prefix ending at a `/`).
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError>;
    /// Keys under `prefix` with the time each was last written.
    async fn list_modified(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, std::time::SystemTime)>, StorageError>;
    /// Checks that the store answers and its bucket exists (a listing that
    /// matches nothing): for start-up, so that a missing bucket or bad
    /// credentials stop a function before it reports healthy.
    async fn probe(&self) -> Result<(), StorageError>;
    /// Human-readable description, e.g. `s3://bucket at http://127.0.0.1:9000`.
    fn describe(&self) -> String;
    /// The largest object `put` accepts, when the store has a limit (Redis:
    /// 512 MiB or less); callers check before doing work that would produce
    /// a bigger one.
    fn max_object_bytes(&self) -> Option<u64> {
        None
    }
}

/// How a remote store moves objects too large for one bounded request:
/// writes as a multipart upload, reads as ranged GETs, `part` bytes each,
/// `concurrency` at a time. Every request then carries at most `part`
/// bytes, so the per-request timeout bounds each of them (one 245 MB PUT
/// would need a timeout long enough to hide a hung server), and the parts
/// travel in parallel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunking {
    /// Bytes per part.
    pub part: usize,
    /// Parts in flight at once.
    pub concurrency: usize,
}

impl Chunking {
    /// 16 MiB parts (S3's minimum part is 5 MiB), four at a time.
    pub const S3: Chunking = Chunking {
        part: 16 << 20,
        concurrency: 4,
    };
}
