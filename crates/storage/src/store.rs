//! The interface and its one implementation over `object_store`.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use thiserror::Error;

/// Why a storage operation failed.
#[derive(Debug, Error)]
pub enum StorageError {
    #[error("object {key:?} not found in {store}")]
    NotFound { key: String, store: String },
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey { key: String, reason: String },
    #[error("storage {store} is unavailable: {reason}")]
    Unavailable { store: String, reason: String },
    #[error("storage {store} refused access: {reason}")]
    PermissionDenied { store: String, reason: String },
    #[error("storage configuration: {0}")]
    Config(String),
}

/// A flat key-value object store.
#[async_trait]
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    async fn put(&self, key: &str, data: Bytes) -> Result<(), StorageError>;
    async fn get(&self, key: &str) -> Result<Bytes, StorageError>;
    /// Deleting a missing object is not an error.
    async fn delete(&self, key: &str) -> Result<(), StorageError>;
    /// Keys under `prefix` (a key prefix ending at a `/`).
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError>;
    /// Human-readable description, e.g. `s3://bucket at http://127.0.0.1:9000`.
    fn describe(&self) -> String;
}

/// Any `object_store` backend behind [`BlobStore`].
#[derive(Debug, Clone)]
pub struct ObjectStoreBackend {
    inner: Arc<dyn ObjectStore>,
    name: String,
}

impl ObjectStoreBackend {
    pub fn new(inner: Arc<dyn ObjectStore>, name: impl Into<String>) -> Self {
        Self {
            inner,
            name: name.into(),
        }
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
        self.inner
            .put(&path, PutPayload::from_bytes(data))
            .await
            .map(|_| ())
            .map_err(|e| self.map(key, e))
    }

    async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        let path = Self::path(key)?;
        let result = self.inner.get(&path).await.map_err(|e| self.map(key, e))?;
        result.bytes().await.map_err(|e| self.map(key, e))
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = Self::path(key)?;
        match self.inner.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.map(key, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
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
        Ok(metas.into_iter().map(|m| m.location.to_string()).collect())
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}
