//! A run's cleanup: every key a run can write is known from its run id, and
//! its prefix is listed as well after a failure. The cleanup runs on a task
//! of its own, so a run whose future is dropped (the caller went away, the
//! deadline passed) still deletes what it stored.
//!
//! A cleanup the store refuses (an outage at the end of a run) is retried
//! on the one retry policy ([`retry::CLEANUP`]: jittered backoff from 1 s to
//! 60 s, for at most 15 minutes) until the store answers. After a failed
//! run, the prefix is swept once more [`LATE_WRITE_GRACE`] after it ended,
//! for a write a worker had in flight. A draining driver waits for these
//! tasks for at most `DRAIN_TIMEOUT_S`; what an exit leaves is `stacking
//! gc`'s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use stacking_storage::retry::{self, Policy};
use stacking_storage::BlobStore;
use tokio_util::task::TaskTracker;

/// How long after a failed run its prefix is swept a last time.
pub const LATE_WRITE_GRACE: Duration = Duration::from_secs(3);

/// Every key a run with this id can write, whether or not it got that far.
pub(super) fn run_keys(run_id: &str, trainers: usize) -> Vec<String> {
    let fixed = [
        "dataset",
        "models",
        "meta_features",
        "model_full",
        "meta_predictions",
    ];
    fixed
        .iter()
        .map(|name| format!("{run_id}/{name}"))
        .chain(
            (0..trainers)
                .flat_map(|i| [format!("{run_id}/model_{i}"), format!("{run_id}/pred_{i}")]),
        )
        .collect()
}

/// Deletes a run's objects: its known keys and, with `list_prefix`, also
/// whatever its prefix lists. A run that succeeded wrote only known keys, so
/// only a failed one pays for the listing. False when the store refused the
/// listing or the deletes (the store's own retries spent), so that the
/// caller sweeps again later.
async fn delete_run(
    store: &dyn BlobStore,
    run_id: &str,
    known: &[String],
    list_prefix: bool,
) -> bool {
    let mut keys = known.to_vec();
    let mut complete = true;
    if list_prefix {
        match store.list(&format!("{run_id}/")).await {
            Ok(listed) => keys.extend(listed.into_iter().filter(|k| !known.contains(k))),
            Err(e) => {
                tracing::warn!(error = %e, "could not list the run's objects");
                complete = false;
            }
        }
    }
    if let Err(e) = store.delete_many(&keys).await {
        tracing::warn!(error = %e, "could not delete the run's objects");
        complete = false;
    }
    complete
}

/// Arms a run's cleanup: if the run's future is dropped (the caller went
/// away or its deadline passed), the cleanup still runs, on its own task.
pub(super) struct CleanupGuard {
    pub(super) store: Option<Arc<dyn BlobStore>>,
    pub(super) run_id: String,
    pub(super) keys: Vec<String>,
    pub(super) tracker: TaskTracker,
    pub(super) armed: bool,
    /// How a refused cleanup is retried ([`retry::CLEANUP`]).
    pub(super) policy: Policy,
}

impl CleanupGuard {
    /// A guard for run `run_id` with the given keys, armed.
    pub(super) fn new(
        store: Option<Arc<dyn BlobStore>>,
        run_id: String,
        keys: Vec<String>,
        tracker: TaskTracker,
    ) -> Self {
        Self {
            store,
            run_id,
            keys,
            tracker,
            armed: true,
            policy: retry::CLEANUP,
        }
    }

    /// Starts the cleanup now, on its own task.
    pub(super) fn start(&mut self, failed: bool) -> Option<tokio::task::JoinHandle<()>> {
        self.armed = false;
        let store = self.store.clone()?;
        let (run_id, keys) = (self.run_id.clone(), std::mem::take(&mut self.keys));
        let policy = self.policy;
        Some(self.tracker.spawn(async move {
            clean(store.as_ref(), &run_id, &keys, failed, policy).await;
        }))
    }
}

/// Deletes a run's objects until the store has answered: every known key,
/// and (after a failure, or once a pass was refused) whatever the prefix
/// lists. A failed run gets a last sweep [`LATE_WRITE_GRACE`] after it
/// ended.
async fn clean(store: &dyn BlobStore, run_id: &str, keys: &[String], failed: bool, policy: Policy) {
    let ended = Instant::now();
    let mut delays = policy.delays();
    let mut listing = failed;
    let mut late_sweep_done = !failed;
    loop {
        let sweep_started = ended.elapsed();
        if delete_run(store, run_id, keys, listing).await {
            if late_sweep_done || sweep_started >= LATE_WRITE_GRACE {
                return;
            }
            tokio::time::sleep(LATE_WRITE_GRACE.saturating_sub(ended.elapsed())).await;
            late_sweep_done = true;
        } else {
            let Some(delay) = delays.next() else {
                tracing::warn!(
                    run_id,
                    "the store refused the run's cleanup for {} s; its objects are left to stacking gc",
                    ended.elapsed().as_secs()
                );
                return;
            };
            tokio::time::sleep(delay).await;
        }
        listing = true;
    }
}

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        if self.armed {
            // Only on a runtime: a guard dropped by the runtime's own
            // shutdown cannot spawn, and `spawn` would panic.
            if tokio::runtime::Handle::try_current().is_ok() {
                drop(self.start(true));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use stacking_storage::s3::{self, S3Config};
    use stacking_testkit::s3::{S3Server, ACCESS, BUCKET, SECRET};

    use super::*;

    /// A run that ends during a storage outage: its cleanup is refused, and
    /// the late sweep deletes everything once the store is back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cleanup_the_store_refused_is_swept_again_once_it_is_back() {
        let mut server = S3Server::start().unwrap();
        let config = S3Config::for_endpoint(server.endpoint(), BUCKET, ACCESS, SECRET);
        let store: Arc<dyn BlobStore> = Arc::new(s3::open(&config).unwrap());
        let keys = run_keys("run-outage", 2);
        for key in &keys {
            store.put(key, Bytes::from_static(b"x")).await.unwrap();
        }
        server.stop_serving();
        let mut guard = CleanupGuard::new(
            Some(Arc::clone(&store)),
            "run-outage".into(),
            keys.clone(),
            TaskTracker::new(),
        );
        // The production policy's shape, at a tenth of its delays: the
        // outage outlasts several passes (each spends the client's 2 s of
        // retries), which the single late sweep this replaced did not.
        guard.policy = Policy {
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(6),
            ..retry::CLEANUP
        };
        let cleanup = guard.start(false).unwrap();
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert_eq!(
            server.object_count(),
            keys.len(),
            "deleted during the outage?"
        );
        assert!(
            !cleanup.is_finished(),
            "the cleanup gave up during the outage"
        );
        server.restart().unwrap();
        tokio::time::timeout(Duration::from_secs(20), cleanup)
            .await
            .expect("the cleanup ends once the store is back")
            .unwrap();
        assert_eq!(server.object_count(), 0);
    }
}
