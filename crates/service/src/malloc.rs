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
