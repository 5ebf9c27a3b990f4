//! A run's cleanup: every key a run can write is known from its run id, and
//! its prefix is listed as well after a failure. The cleanup runs on a task
//! of its own, so a run whose future is dropped (the caller went away, the
//! deadline passed) still deletes what it stored.

use std::sync::Arc;
use std::time::Duration;

use stacking_storage::BlobStore;
use tokio_util::task::TaskTracker;

/// How long after a failed run its prefix is swept a second time.
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
}

impl CleanupGuard {
    /// Starts the cleanup now. A failed run, or a cleanup the store refused
    /// (a run that ended during a storage outage), gets a late sweep of the
    /// whole prefix: deletes are idempotent, and the sweep is the one retry.
    pub(super) fn start(&mut self, failed: bool) -> Option<tokio::task::JoinHandle<()>> {
        self.armed = false;
        let store = self.store.clone()?;
        let (run_id, keys) = (self.run_id.clone(), std::mem::take(&mut self.keys));
        Some(self.tracker.spawn(async move {
            let complete = delete_run(store.as_ref(), &run_id, &keys, failed).await;
            if failed || !complete {
                tokio::time::sleep(LATE_WRITE_GRACE).await;
                delete_run(store.as_ref(), &run_id, &keys, true).await;
            }
        }))
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
        let mut guard = CleanupGuard {
            store: Some(Arc::clone(&store)),
            run_id: "run-outage".into(),
            keys: keys.clone(),
            tracker: TaskTracker::new(),
            armed: true,
        };
        let cleanup = guard.start(false).unwrap();
        // The first attempt spends the client's retries (2 s) on the outage.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(
            server.object_count(),
            keys.len(),
            "deleted during the outage?"
        );
        server.restart().unwrap();
        tokio::time::timeout(LATE_WRITE_GRACE + Duration::from_secs(5), cleanup)
            .await
            .expect("the cleanup ends within its bound")
            .unwrap();
        assert_eq!(server.object_count(), 0);
    }
}
