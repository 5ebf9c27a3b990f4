//! In-process store: the embedded default of `stacking run` and of tests.

use std::sync::Arc;

use object_store::memory::InMemory;

use crate::ObjectStoreBackend;

/// A store held in this process's memory.
pub fn open() -> ObjectStoreBackend {
    ObjectStoreBackend::new(Arc::new(InMemory::new()), "memory")
}
