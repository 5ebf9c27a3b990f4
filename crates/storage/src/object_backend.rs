//! The `object_store` crate's backends (memory, files, S3) behind
//! [`BlobStore`]: key checks, bounded requests, chunked transfers of large
//! objects, and errors that name the key and the store.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};

use crate::store::{BlobStore, Chunking, StorageError};

/// Makes the client again, for [`BlobStore::release_idle`].
pub type Reconnect = Arc<dyn Fn() -> Result<Arc<dyn ObjectStore>, StorageError> + Send + Sync>;

/// Any `object_store` backend behind [`BlobStore`].
#[derive(Clone)]
pub struct ObjectStoreBackend {
    inner: Arc<std::sync::RwLock<Arc<dyn ObjectStore>>>,
    name: String,
    chunking: Option<Chunking>,
    reconnect: Option<Reconnect>,
}

impl std::fmt::Debug for ObjectStoreBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStoreBackend")
            .field("name", &self.name)
            .field("chunking", &self.chunking)
            .finish()
    }
}

impl ObjectStoreBackend {
    /// A store over `inner`, named `name` in errors.
    pub fn new(inner: Arc<dyn ObjectStore>, name: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(std::sync::RwLock::new(inner)),
            name: name.into(),
            chunking: None,
            reconnect: None,
        }
    }

    /// A remote store whose client `reconnect` makes anew when the function
    /// goes idle: its pooled connections keep buffers the size of the
    /// largest bodies they carried.
    pub fn with_reconnect(mut self, reconnect: Reconnect) -> Self {
        self.reconnect = Some(reconnect);
        self
    }

    /// The client of this request (requests in flight keep theirs).
    fn client(&self) -> Arc<dyn ObjectStore> {
        match self.inner.read() {
            Ok(inner) => Arc::clone(&inner),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
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
            .client()
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
            reason: format!(
                "object {} of {size} bytes does not fit in memory",
                crate::shown_key(key)
            ),
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
                    "object {} changed while read in parts ({} of {size} bytes)",
                    crate::shown_key(key),
                    whole.len()
                ),
            });
        }
        Ok(whole.freeze())
    }

    fn path(key: &str) -> Result<Path, StorageError> {
        crate::store::check_key(key)?;
        Path::parse(key).map_err(|_| StorageError::InvalidKey {
            key: key.into(),
            reason: "not a valid object path".into(),
        })
    }

    fn map(&self, key: &str, e: object_store::Error) -> StorageError {
        let store = self.name.clone();
        match e {
            object_store::Error::NotFound { .. } => StorageError::NotFound {
                key: key.into(),
                store,
            },
            object_store::Error::InvalidPath { .. } => StorageError::InvalidKey {
                key: key.into(),
                reason: "not a valid object path".into(),
            },
            e @ (object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }) => StorageError::PermissionDenied {
                store,
                reason: crate::store::shown_reason(&e.to_string()),
            },
            other => StorageError::Unavailable {
                store,
                reason: crate::store::shown_reason(&error_chain(&other)),
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
        self.client()
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
        let result = self
            .client()
            .get(&path)
            .await
            .map_err(|e| self.map(key, e))?;
        result.bytes().await.map_err(|e| self.map(key, e))
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<(Bytes, u64), StorageError> {
        let path = Self::path(key)?;
        let start = range.start;
        if range.is_empty() {
            let meta = self
                .client()
                .head(&path)
                .await
                .map_err(|e| self.map(key, e))?;
            return Ok((Bytes::new(), meta.size));
        }
        let options = GetOptions {
            range: Some(GetRange::Bounded(range)),
            ..GetOptions::default()
        };
        let result = match self.client().get_opts(&path, options).await {
            Ok(result) => result,
            Err(e) => {
                // Stores word an unsatisfiable range differently (object_store's own
                // check, or HTTP 416 from the server); the object's size tells.
                if !matches!(e, object_store::Error::NotFound { .. }) {
                    if let Ok(meta) = self.client().head(&path).await {
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

    async fn get_suffix(&self, key: &str, len: u64) -> Result<(Bytes, u64), StorageError> {
        let path = Self::path(key)?;
        if len == 0 {
            return self.get_range(key, 0..0).await;
        }
        let options = GetOptions {
            range: Some(GetRange::Suffix(len)),
            ..GetOptions::default()
        };
        let result = match self.client().get_opts(&path, options).await {
            Ok(result) => result,
            // An empty object has no suffix to serve (HTTP 416).
            Err(e) => match self.client().head(&path).await {
                Ok(meta) if meta.size == 0 => return Ok((Bytes::new(), 0)),
                _ => return Err(self.map(key, e)),
            },
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
            .client()
            .delete_stream(futures::stream::iter(paths.into_iter().map(Ok)).boxed());
        while let Some(result) = results.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    let first = keys.first().map_or("", String::as_str);
                    return Err(self.map(first, e));
                }
            }
        }
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = Self::path(key)?;
        match self.client().delete(&path).await {
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
            .client()
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
        match self.client().list_with_delimiter(Some(&nothing)).await {
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

    fn release_idle(&self) {
        let Some(reconnect) = &self.reconnect else {
            return;
        };
        // A client that cannot be made again (it was made once from the
        // same settings) leaves the old one in place.
        if let Ok(client) = reconnect() {
            if let Ok(mut inner) = self.inner.write() {
                *inner = client;
            }
        }
    }
}
