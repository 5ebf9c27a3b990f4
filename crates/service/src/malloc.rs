//! glibc malloc tuning for how the functions allocate: per request, a few
//! buffers of megabytes (a dataset, a KNN model, an encoded message) that
//! live for one step. Each setting is skipped when its `MALLOC_*` variable
//! is in the environment (`is_set` tells), so an operator's choice wins. Elsewhere than
//! glibc on Linux these do nothing.

/// Call first thing in `main`, before any other thread exists.
///
/// - One arena instead of up to 8 per core: the blocking pool runs fits on
///   changing threads, messages are made on one thread and freed on
///   another, and every arena kept the pages freed into it, so the heap
///   grew over calls. Two arenas (one per core here) left a trainer at
///   60-62 MiB under 16 concurrent INLINE calls; one arena 43-45 MiB (the
///   driver 50-73 -> 52-54 MiB), with SayHello as fast within the bench's
///   noise (4 sequential S3 30.0 / 30.8 -> 30.5 / 32.3 ms, 16 concurrent
///   INLINE 99.3 / 91.6 -> 91.5 / 94.1 ms).
/// - Blocks up to 32 MiB come from the heap instead of fresh `mmap`s, and
///   the heap is trimmed only past 64 MiB free at its top. glibc's default
///   maps each multi-MiB buffer anew and faults its pages in on every
///   request, which the services bench showed as a slower SayHello.
pub fn tune_for_requests(is_set: impl Fn(&str) -> bool) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let unset = |var: &str| !is_set(var);
        // SAFETY: mallopt only changes allocator tuning, and this runs
        // before any other thread allocates.
        unsafe {
            if unset("MALLOC_ARENA_MAX") {
                libc::mallopt(libc::M_ARENA_MAX, 1);
            }
            if unset("MALLOC_MMAP_THRESHOLD_") {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            }
            if unset("MALLOC_TRIM_THRESHOLD_") {
                libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
            }
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = is_set;
}

/// Returns freed heap pages to the system: after a one-off burst of
/// allocation (the driver generating its dataset at start-up) that the
/// trim threshold above would otherwise keep resident.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory malloc holds free.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Gives memory back once a burst is over: when the last request in flight
/// ends and none has started for [`IdleTrim::QUIET`], the heap's free pages
/// are returned ([`release_free_memory`]). With one arena and a 64 MiB trim
/// threshold, a burst's freed buffers otherwise stayed resident between the
/// live ones: a driver kept 113 MiB after 256 concurrent calls, against 13
/// MiB idle.
#[derive(Debug, Default)]
pub struct IdleTrim {
    /// The function's store, told to let go of its buffers first.
    store: Option<std::sync::Arc<dyn stacking_storage::BlobStore>>,
    in_flight: std::sync::atomic::AtomicUsize,
    /// Bumped by every request that starts: a trim waits for quiet.
    started: std::sync::atomic::AtomicU64,
    scheduled: std::sync::atomic::AtomicBool,
}

impl IdleTrim {
    /// How long no request may run before the heap is trimmed.
    pub const QUIET: std::time::Duration = std::time::Duration::from_secs(1);

    /// A trim that first lets `store` release its idle buffers.
    pub fn with_store(store: Option<std::sync::Arc<dyn stacking_storage::BlobStore>>) -> Self {
        Self {
            store,
            ..Self::default()
        }
    }

    /// A request starts.
    pub fn begin(&self) {
        use std::sync::atomic::Ordering;
        self.started.fetch_add(1, Ordering::AcqRel);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    /// A request ends; the last one schedules a trim after the quiet time.
    pub fn end(self: &std::sync::Arc<Self>) {
        use std::sync::atomic::Ordering;
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        if self.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.scheduled.store(false, Ordering::Release);
            return;
        };
        let this = std::sync::Arc::clone(self);
        runtime.spawn(async move {
            loop {
                let seen = this.started.load(Ordering::Acquire);
                tokio::time::sleep(Self::QUIET).await;
                if this.in_flight.load(Ordering::Acquire) > 0 {
                    // Busy again: the last request of this burst schedules.
                    this.scheduled.store(false, Ordering::Release);
                    return;
                }
                if this.started.load(Ordering::Acquire) == seen {
                    if let Some(store) = &this.store {
                        store.release_idle();
                    }
                    let _ = tokio::task::spawn_blocking(release_free_memory).await;
                    this.scheduled.store(false, Ordering::Release);
                    return;
                }
            }
        });
    }
}
