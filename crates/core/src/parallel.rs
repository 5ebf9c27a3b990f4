//! Work spread over scoped threads: the fold fits of a level-0 model, and
//! the one-off products and sorts that its folds share.

/// Runs `job(0..n)` on up to `threads` scoped threads; results in job order.
pub(crate) fn run_jobs<T: Send>(
    n: usize,
    threads: usize,
    job: impl Fn(usize) -> T + Sync,
) -> Vec<T> {
    if threads <= 1 || n <= 1 {
        return (0..n).map(job).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut done: Vec<(usize, T)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.min(n))
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if k >= n {
                            break mine;
                        }
                        mine.push((k, job(k)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    done.sort_by_key(|(k, _)| *k);
    done.into_iter().map(|(_, t)| t).collect()
}

/// Runs `work` on every part: the first on the calling thread, each other on
/// a scoped thread of its own (so one part starts no thread at all).
pub(crate) fn on_parts<T: Send>(parts: impl IntoIterator<Item = T>, work: impl Fn(T) + Sync) {
    let mut parts = parts.into_iter();
    let mine = parts.next();
    std::thread::scope(|scope| {
        let work = &work;
        for part in parts {
            scope.spawn(move || work(part));
        }
        if let Some(part) = mine {
            work(part);
        }
    });
}
