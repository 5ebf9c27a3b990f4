//! A local directory as the store (objects are files below it).

use std::sync::Arc;

use object_store::local::LocalFileSystem;

use crate::{ObjectStoreBackend, StorageError};

/// A store of files under `dir` (created if missing).
pub fn open(dir: &std::path::Path) -> Result<ObjectStoreBackend, StorageError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| StorageError::Config(format!("cannot create {}: {e}", dir.display())))?;
    let fs = LocalFileSystem::new_with_prefix(dir)
        .map_err(|e| StorageError::Config(format!("cannot use {}: {e}", dir.display())))?;
    Ok(ObjectStoreBackend::new(
        Arc::new(fs),
        format!("file://{}", dir.display()),
    ))
}
