//! # stacking-storage
//!
//! Where the functions leave data for each other. One small interface,
//! [`BlobStore`], with one backend per file:
//! - [`memory`]: in-process, for the embedded `stacking run` and tests;
//! - [`fs`]: a local directory;
//! - [`s3`]: any S3-API server (AWS, MinIO, SeaweedFS, moto, ...);
//! - [`redis`]: a Redis server (vSwarm's `ELASTICACHE` transfer), with
//!   the `redis` crate.
//!
//! [`retry`] is the one retry policy of everything the workspace retries.
//!
//! The first three sit on the `object_store` crate through one adapter,
//! [`ObjectStoreBackend`] (`object_backend.rs`); this crate adds the narrow
//! interface (`store.rs`), key validation, bounded timeouts and errors that
//! say which key and which store failed, so callers can map them to gRPC
//! status codes.

pub mod fs;
pub mod memory;
mod object_backend;
pub mod redis;
pub mod retry;
pub mod s3;
mod store;

pub use object_backend::{ObjectStoreBackend, Reconnect};
pub use store::{
    check_key, shown_key, BlobStore, Chunking, StorageError, MAX_KEY_BYTES, SHOWN_KEY_CHARS,
};

/// An environment of `pairs`, for the backends' `from_lookup` tests.
#[cfg(test)]
pub(crate) fn test_lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let env: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| env.get(k).cloned()
}
