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
/// only a failed one pays for the listing.
async fn delete_run(store: &dyn BlobStore, run_id: &str, known: &[String], list_prefix: bool) {
    let mut keys = known.to_vec();
    if list_prefix {
        match store.list(&format!("{run_id}/")).await {
            Ok(listed) => keys.extend(listed.into_iter().filter(|k| !known.contains(k))),
            Err(e) => tracing::warn!(error = %e, "could not list the run's objects"),
        }
    }
    if let Err(e) = store.delete_many(&keys).await {
        tracing::warn!(error = %e, "could not delete the run's objects");
    }
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
    /// Starts the cleanup now; `failed` adds the late sweep.
    pub(super) fn start(&mut self, failed: bool) -> Option<tokio::task::JoinHandle<()>> {
        self.armed = false;
        let store = self.store.clone()?;
        let (run_id, keys) = (self.run_id.clone(), std::mem::take(&mut self.keys));
        Some(self.tracker.spawn(async move {
            delete_run(store.as_ref(), &run_id, &keys, failed).await;
            if failed {
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
