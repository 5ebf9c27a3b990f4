//! The interface every backend implements, its errors, and how large
//! objects are chunked.

use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use thiserror::Error;

/// The longest key a store accepts, in bytes: S3's limit, and so every
/// backend's, so that one key means the same object whichever store holds
/// it. A longer key is [`StorageError::InvalidKey`] before anything is sent.
pub const MAX_KEY_BYTES: usize = 1024;

/// The most characters of a key an error message repeats.
pub const SHOWN_KEY_CHARS: usize = 200;

/// A key as error messages show it: quoted, control characters escaped
/// (no forged log lines), cut to [`SHOWN_KEY_CHARS`] characters.
///
/// The storage layer depends on no other crate of the workspace, so it
/// carries this one small cut of its own; the services escape and cut
/// every status message again as a whole.
pub fn shown_key(key: &str) -> String {
    match key.char_indices().nth(SHOWN_KEY_CHARS) {
        Some((cut, _)) => format!("{:?}... ({} bytes)", &key[..cut], key.len()),
        None => format!("{key:?}"),
    }
}

/// The most characters of a store's own message (an S3 error body, a
/// Redis reply) an error repeats.
pub const SHOWN_REASON_CHARS: usize = 500;

/// A store's own message as errors show it: control characters escaped,
/// cut to [`SHOWN_REASON_CHARS`] characters.
pub fn shown_reason(text: &str) -> String {
    let cut = match text.char_indices().nth(SHOWN_REASON_CHARS) {
        Some((end, _)) => &text[..end],
        None => text,
    };
    let mut out = String::with_capacity(cut.len());
    for c in cut.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Checks a key before any backend uses it: not empty, at most
/// [`MAX_KEY_BYTES`], no control character, and a valid object path (no
/// empty, `.` or `..` segment). The reasons never repeat the key: the
/// message shows it once, through [`shown_key`].
pub fn check_key(key: &str) -> Result<(), StorageError> {
    let invalid = |reason: String| StorageError::InvalidKey {
        key: key.to_string(),
        reason,
    };
    if key.is_empty() {
        return Err(invalid("empty key".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(invalid(format!(
            "{} bytes, over the {MAX_KEY_BYTES}-byte limit of object keys",
            key.len()
        )));
    }
    if key.chars().any(char::is_control) {
        return Err(invalid("it holds a control character".into()));
    }
    if key
        .split('/')
        .any(|segment| matches!(segment, "" | "." | ".."))
    {
        return Err(invalid("it has an empty, '.' or '..' path segment".into()));
    }
    object_store::path::Path::parse(key)
        .map(|_| ())
        .map_err(|_| invalid("not a valid object path".into()))
}

/// Why a storage operation failed. Keys are kept whole; messages show them
/// through [`shown_key`].
#[derive(Debug, Clone, Error)]
pub enum StorageError {
    /// No object under the key.
    #[error("object {} not found in {store}", shown_key(.key))]
    NotFound {
        /// The key.
        key: String,
        /// The store asked.
        store: String,
    },
    /// A key the stores refuse (empty, too long, a `..` segment, ...).
    #[error("invalid object key {}: {reason}", shown_key(.key))]
    InvalidKey {
        /// The key.
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
    #[error("object {} has {size} bytes, fewer than the range {start}.. asks for", shown_key(.key))]
    RangeNotSatisfiable {
        /// The key.
        key: String,
        /// The first byte asked for.
        start: u64,
        /// The object's size.
        size: u64,
    },
    /// An object over the store's size limit, refused before it is sent.
    #[error("object {} has {size} bytes, over the {limit}-byte limit of {store} (raise {setting}, or use another transfer)", shown_key(.key))]
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
    /// The store is out of room (Redis over its `maxmemory`): a retry
    /// cannot succeed until something frees memory.
    #[error("storage {store} is full: {reason}")]
    Full {
        /// The store.
        store: String,
        /// The store's message.
        reason: String,
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
    /// The last `len` bytes of an object (all of it when it is shorter),
    /// and the object's whole size, in one request: the end of an object
    /// whose start says how long it is can be read beside the start.
    async fn get_suffix(&self, key: &str, len: u64) -> Result<(Bytes, u64), StorageError>;
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

    /// Lets go of what the client keeps between requests that a burst made
    /// large (Redis: the connection's buffers, grown to the largest values
    /// sent and received); the next request connects again. For a function
    /// that has gone idle.
    fn release_idle(&self) {}
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
