//! One store read for all the concurrent requests that need the same object.
//!
//! The trainers of a run all read the run's dataset, and under concurrent
//! training they ask at once: 16 `Train` calls reached a 2-core trainer
//! together, each fetched its own copy and held it while it waited for a
//! compute slot. Holding 16 copies passed the trainer's peak-memory goal, so
//! only 8 were let in at a time and the other 8 read in a second wave, a
//! store round trip more on the run's critical path.
//!
//! Here a request that asks for an object another request is already
//! reading waits for that read instead of making its own: one GET, and one
//! buffer that every request's `Bytes` shares.
//!
//! Only keys under a run prefix (`run-<32 hex digits>/`) are shared: the
//! driver writes a run's inputs once, before it calls anyone, so a read in
//! flight returns what a read of one's own would. A key outside a run (the
//! original driver's names) may be rewritten by another caller at any
//! moment, and each request reads it itself. A finished read is not kept:
//! a request that comes after it reads anew.
//!
//! The read is a future shared by its waiters ([`futures::future::Shared`]);
//! the table holds it weakly, so when every waiter has gone (each one's
//! caller went away or its deadline passed) the read is dropped and stops.
//! A failed read fails each of its waiters with the store's error, after
//! the store's own retries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared, WeakShared};
use stacking_storage::{BlobStore, StorageError};

use crate::context::is_run_id;

/// One GET of an object.
type Get = BoxFuture<'static, Result<Bytes, StorageError>>;
/// A GET and the requests waiting for it.
type Read = Shared<Get>;
/// The reads in flight by key, held weakly: their waiters keep them.
type Table = HashMap<String, WeakShared<Get>>;

/// The reads in flight, by key.
#[derive(Default)]
pub struct SharedReads {
    in_flight: Mutex<Table>,
}

impl std::fmt::Debug for SharedReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedReads")
            .field("in_flight", &self.table().len())
            .finish()
    }
}

/// How a request got its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadBy {
    /// Its own GET (the first to ask, or a key that is not shared).
    Itself,
    /// The GET of a request that asked first.
    Another,
}

impl SharedReads {
    /// The object under `key` in `store`, read once for every request that
    /// asks while the read is in flight.
    pub async fn get(
        &self,
        store: &Arc<dyn BlobStore>,
        key: &str,
    ) -> Result<(Bytes, ReadBy), StorageError> {
        if !in_a_run(key) {
            return Ok((store.get(key).await?, ReadBy::Itself));
        }
        let (read, by) = self.join_or_start(store, key);
        let result = read.clone().await;
        // Done: a request that asks from now on reads anew.
        let mut table = self.table();
        if table
            .get(key)
            .and_then(WeakShared::upgrade)
            .is_some_and(|current| current.ptr_eq(&read))
        {
            table.remove(key);
        }
        result.map(|bytes| (bytes, by))
    }

    /// The read of `key` in flight, or a new one.
    fn join_or_start(&self, store: &Arc<dyn BlobStore>, key: &str) -> (Read, ReadBy) {
        let mut table = self.table();
        if let Some(read) = table.get(key).and_then(WeakShared::upgrade) {
            return (read, ReadBy::Another);
        }
        // Reads whose waiters all went away leave dead entries behind.
        table.retain(|_, read| read.upgrade().is_some());
        let (store, owned) = (Arc::clone(store), key.to_owned());
        let read = async move { store.get(&owned).await }.boxed().shared();
        if let Some(weak) = read.downgrade() {
            table.insert(key.to_owned(), weak);
        }
        (read, ReadBy::Itself)
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // The table stays consistent whatever panicked while it was held:
        // every change is one insert, remove or retain.
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether `key` lies under a run prefix, `run-<32 hex digits>/`.
fn in_a_run(key: &str) -> bool {
    key.split_once('/')
        .is_some_and(|(run, rest)| is_run_id(run) && !rest.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_keys_under_a_run_prefix_are_shared() {
        let run = "run-0123456789abcdef0123456789abcdef";
        assert!(in_a_run(&format!("{run}/dataset")));
        assert!(in_a_run(&format!("{run}/a/b")));
        assert!(!in_a_run(&format!("{run}/")));
        assert!(!in_a_run("dataset"));
        assert!(!in_a_run("run-0123/dataset"));
        assert!(!in_a_run(&format!("x/{run}/dataset")));
    }
}
