//! glibc malloc tuning for how the functions allocate: per request, a few
//! buffers of megabytes (a dataset, a KNN model, an encoded message) that
//! live for one step. Each setting is skipped when its `MALLOC_*` variable
//! is in the environment, so an operator's choice wins. Elsewhere than
//! glibc on Linux these do nothing.

/// Call first thing in `main`, before any other thread exists.
///
/// - Two arenas (one per core here) instead of up to 8 per core: the
///   blocking pool runs fits on changing threads and every thread's arena
///   kept the pages it freed, so peak memory grew with the threads that
///   ever ran a fit (the services bench's peak RSS rows show the effect).
/// - Blocks up to 32 MiB come from the heap instead of fresh `mmap`s, and
///   the heap is trimmed only past 64 MiB free at its top. glibc's default
///   maps each multi-MiB buffer anew and faults its pages in on every
///   request, which the services bench showed as a slower SayHello.
pub fn tune_for_requests() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let unset = |var: &str| std::env::var_os(var).is_none();
        // SAFETY: mallopt only changes allocator tuning, and this runs
        // before any other thread allocates.
        unsafe {
            if unset("MALLOC_ARENA_MAX") {
                libc::mallopt(libc::M_ARENA_MAX, 2);
            }
            if unset("MALLOC_MMAP_THRESHOLD_") {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            }
            if unset("MALLOC_TRIM_THRESHOLD_") {
                libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
            }
        }
    }
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
