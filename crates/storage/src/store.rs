//! The interface and its one implementation over `object_store`.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};
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

/// Any `object_store` backend behind [`BlobStore`].
#[derive(Debug, Clone)]
pub struct ObjectStoreBackend {
    inner: Arc<dyn ObjectStore>,
    name: String,
    chunking: Option<Chunking>,
}

impl ObjectStoreBackend {
    /// A store over `inner`, named `name` in errors.
    pub fn new(inner: Arc<dyn ObjectStore>, name: impl Into<String>) -> Self {
        Self {
            inner,
            name: name.into(),
            chunking: None,
        }
    }

    /// Objects over `chunking.part` bytes move in parts (remote stores).
    pub fn with_chunking(mut self, chunking: Chunking) -> Self {
        self.chunking = Some(chunking);
        self
    }

    /// A multipart upload of `data`, aborted if any part fails.
    async fn put_in_parts(
        &self,
        key: &str,
        path: &Path,
        data: Bytes,
        chunking: Chunking,
    ) -> Result<(), StorageError> {
        let mut upload = self
            .inner
            .put_multipart(path)
            .await
            .map_err(|e| self.map(key, e))?;
        // Parts are numbered in the order `put_part` is called; the requests
        // run when polled, `concurrency` at a time.
        let parts: Vec<_> = (0..data.len())
            .step_by(chunking.part)
            .map(|start| {
                let end = (start + chunking.part).min(data.len());
                upload.put_part(PutPayload::from_bytes(data.slice(start..end)))
            })
            .collect();
        let sent: Result<Vec<()>, _> = futures::stream::iter(parts)
            .buffer_unordered(chunking.concurrency)
            .try_collect()
            .await;
        let done = match sent {
            Ok(_) => upload.complete().await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            // Without an abort the parts stay stored (and billed) unseen.
            let _ = upload.abort().await;
            return Err(self.map(key, e));
        }
        Ok(())
    }

    /// The rest of an object whose first `first.len()` bytes were read, in
    /// ranged GETs.
    async fn get_rest(
        &self,
        key: &str,
        first: Bytes,
        size: u64,
        chunking: Chunking,
    ) -> Result<Bytes, StorageError> {
        let size = usize::try_from(size).map_err(|_| StorageError::Unavailable {
            store: self.name.clone(),
            reason: format!("object {key:?} of {size} bytes does not fit in memory"),
        })?;
        let ranges: Vec<Range<u64>> = (first.len()..size)
            .step_by(chunking.part)
            .map(|start| start as u64..(start + chunking.part).min(size) as u64)
            .collect();
        // Parts are appended in order as they arrive: beyond the object,
        // at most `concurrency` parts are in memory at once.
        let mut parts = futures::stream::iter(ranges)
            .map(|range| self.get_range(key, range))
            .buffered(chunking.concurrency);
        let mut whole = bytes::BytesMut::with_capacity(size);
        whole.extend_from_slice(&first);
        drop(first);
        while let Some(part) = parts.next().await {
            whole.extend_from_slice(&part?.0);
        }
        if whole.len() != size {
            return Err(StorageError::Unavailable {
                store: self.name.clone(),
                reason: format!(
                    "object {key:?} changed while read in parts ({} of {size} bytes)",
                    whole.len()
                ),
            });
        }
        Ok(whole.freeze())
    }

    fn path(key: &str) -> Result<Path, StorageError> {
        if key.is_empty() {
            return Err(StorageError::InvalidKey {
                key: key.into(),
                reason: "empty key".into(),
            });
        }
        Path::parse(key).map_err(|e| StorageError::InvalidKey {
            key: key.into(),
            reason: e.to_string(),
        })
    }

    fn map(&self, key: &str, e: object_store::Error) -> StorageError {
        let store = self.name.clone();
        match e {
            object_store::Error::NotFound { .. } => StorageError::NotFound {
                key: key.into(),
                store,
            },
            object_store::Error::InvalidPath { source } => StorageError::InvalidKey {
                key: key.into(),
                reason: source.to_string(),
            },
            e @ (object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }) => StorageError::PermissionDenied {
                store,
                reason: e.to_string(),
            },
            other => StorageError::Unavailable {
                store,
                reason: error_chain(&other),
            },
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        let text = src.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = src.source();
    }
    s
}

#[async_trait]
impl BlobStore for ObjectStoreBackend {
    async fn put(&self, key: &str, data: Bytes) -> Result<(), StorageError> {
        let path = Self::path(key)?;
        if let Some(chunking) = self.chunking.filter(|c| data.len() > c.part) {
            return self.put_in_parts(key, &path, data, chunking).await;
        }
        self.inner
            .put(&path, PutPayload::from_bytes(data))
            .await
            .map(|_| ())
            .map_err(|e| self.map(key, e))
    }

    async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        if let Some(chunking) = self.chunking {
            // The first part tells the size; a small object is read whole by it.
            return match self.get_range(key, 0..chunking.part as u64).await {
                Ok((first, size)) if first.len() as u64 >= size => Ok(first),
                Ok((first, size)) => self.get_rest(key, first, size, chunking).await,
                Err(StorageError::RangeNotSatisfiable { size: 0, .. }) => Ok(Bytes::new()),
                Err(e) => Err(e),
            };
        }
        let path = Self::path(key)?;
        let result = self.inner.get(&path).await.map_err(|e| self.map(key, e))?;
        result.bytes().await.map_err(|e| self.map(key, e))
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<(Bytes, u64), StorageError> {
        let path = Self::path(key)?;
        let start = range.start;
        if range.is_empty() {
            let meta = self.inner.head(&path).await.map_err(|e| self.map(key, e))?;
            return Ok((Bytes::new(), meta.size));
        }
        let options = GetOptions {
            range: Some(GetRange::Bounded(range)),
            ..GetOptions::default()
        };
        let result = match self.inner.get_opts(&path, options).await {
            Ok(result) => result,
            Err(e) => {
                // Stores word an unsatisfiable range differently (object_store's own
                // check, or HTTP 416 from the server); the object's size tells.
                if !matches!(e, object_store::Error::NotFound { .. }) {
                    if let Ok(meta) = self.inner.head(&path).await {
                        if start >= meta.size {
                            return Err(StorageError::RangeNotSatisfiable {
                                key: key.into(),
                                start,
                                size: meta.size,
                            });
                        }
                    }
                }
                return Err(self.map(key, e));
            }
        };
        let size = result.meta.size;
        let bytes = result.bytes().await.map_err(|e| self.map(key, e))?;
        Ok((bytes, size))
    }

    async fn delete_many(&self, keys: &[String]) -> Result<(), StorageError> {
        let paths = keys
            .iter()
            .map(|k| Self::path(k))
            .collect::<Result<Vec<_>, _>>()?;
        let mut results = self
            .inner
            .delete_stream(futures::stream::iter(paths.into_iter().map(Ok)).boxed());
        while let Some(result) = results.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.map(&keys.join(", "), e)),
            }
        }
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = Self::path(key)?;
        match self.inner.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.map(key, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let listed = self.list_modified(prefix).await?;
        Ok(listed.into_iter().map(|(key, _)| key).collect())
    }

    async fn list_modified(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, std::time::SystemTime)>, StorageError> {
        let path = if prefix.is_empty() {
            None
        } else {
            Some(Self::path(prefix.trim_end_matches('/'))?)
        };
        let metas: Vec<_> = self
            .inner
            .list(path.as_ref())
            .try_collect()
            .await
            .map_err(|e| self.map(prefix, e))?;
        Ok(metas
            .into_iter()
            .map(|m| (m.location.to_string(), m.last_modified.into()))
            .collect())
    }

    async fn probe(&self) -> Result<(), StorageError> {
        let nothing = Path::from(".stacking-start-up-probe");
        let missing = || {
            StorageError::Config(format!(
                "{}: the bucket does not exist (set BUCKET_NAME to an existing bucket, or create it)",
                self.name
            ))
        };
        match self.inner.list_with_delimiter(Some(&nothing)).await {
            Ok(_) => Ok(()),
            // S3 answers a listing of a missing bucket with 404 NoSuchBucket.
            Err(e) if error_chain(&e).contains("NoSuchBucket") => Err(missing()),
            Err(e) => Err(match self.map("", e) {
                StorageError::NotFound { .. } => missing(),
                other => other,
            }),
        }
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}
