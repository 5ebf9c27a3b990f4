//! What every function's steps need: where data goes, and where compute runs.

use std::sync::Arc;

use bytes::Bytes;
use stacking_core::params::printable;
use stacking_core::{Stop, StopReason};
use stacking_storage::BlobStore;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::error::StepError;
use crate::route::Route;
use crate::settings::{Limits, Transfer};
use crate::shared_reads::{ReadBy, SharedReads};
use crate::trace::{Kind, Span, Tracer};

/// Shared state of one function process.
#[derive(Debug, Clone)]
pub struct Context {
    /// How this function hands its results on, and the store if any.
    pub route: Route,
    /// Requests between admission and their answer (see [`Context::admit`]).
    requests: Arc<Semaphore>,
    /// Requests computing (see [`Context::compute_slot`]).
    compute: Arc<Semaphore>,
    max_jobs: usize,
    threads_per_job: usize,
    /// Where this function's spans go (`ENABLE_TRACING`), if anywhere.
    pub tracer: Option<Arc<Tracer>>,
    limits: Limits,
    /// Cancelled when draining on SIGTERM has run out of time: every fit in
    /// flight stops, so the process can exit.
    hard_stop: CancellationToken,
    /// Computations running on the blocking pool, abandoned ones included.
    running: Arc<std::sync::atomic::AtomicUsize>,
    /// Store reads in flight, shared by the requests that need the same object.
    reads: Arc<SharedReads>,
}

/// A result handed on: inline bytes or a key (the other one empty).
#[derive(Debug)]
pub struct Emitted {
    /// The bytes, when handed on inline.
    pub inline: Bytes,
    /// The key, when handed on through the store.
    pub key: String,
    /// Bytes written to the store.
    pub written: u64,
}

/// Bytes a step moved through the store.
#[derive(Debug, Default, Clone, Copy)]
pub struct Moved {
    /// Bytes read from the store.
    pub read: u64,
    /// Bytes written to the store.
    pub written: u64,
}

impl Context {
    /// `max_jobs` CPU-bound requests run at once (`MAX_SERVER_THREADS`);
    /// each may use `threads_per_job` threads for its fold fits.
    pub fn new(route: Route, max_jobs: usize, threads_per_job: usize) -> Self {
        Self {
            requests: Arc::new(Semaphore::new(request_slots(&route, max_jobs.max(1)))),
            route,
            compute: Arc::new(Semaphore::new(max_jobs.max(1))),
            max_jobs: max_jobs.max(1),
            threads_per_job: threads_per_job.max(1),
            tracer: None,
            limits: Limits::default(),
            hard_stop: CancellationToken::new(),
            running: Arc::default(),
            reads: Arc::default(),
        }
    }

    /// Computations still running, including any whose caller went away:
    /// zero soon after every caller has gone.
    pub fn running_computations(&self) -> usize {
        self.running.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The same context with these bounds.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The bounds every request runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Stops every fit in flight (after the drain timeout on SIGTERM).
    pub fn stop_all_work(&self) {
        self.hard_stop.cancel();
    }

    /// The same context, sending spans to `tracer`.
    pub fn with_tracer(mut self, tracer: Option<Arc<Tracer>>) -> Self {
        self.tracer = tracer;
        self
    }

    /// A server span for an incoming call, child of the caller's span if the
    /// metadata carries one.
    pub fn server_span(&self, name: &str, md: &tonic::metadata::MetadataMap) -> Span {
        Span::start(
            self.tracer.as_ref(),
            name,
            Some(Kind::Server),
            crate::trace::extract(md),
        )
    }

    /// Requests computed at once (`MAX_SERVER_THREADS`).
    pub fn max_jobs(&self) -> usize {
        self.max_jobs
    }

    /// Threads one request may use for its fold fits.
    pub fn threads_per_job(&self) -> usize {
        self.threads_per_job
    }

    /// The store, if payloads go through one.
    pub fn store(&self) -> Option<&Arc<dyn BlobStore>> {
        self.route.store()
    }

    /// The transfer setting this function runs with.
    pub fn transfer(&self) -> Transfer {
        self.route.transfer()
    }

    fn required_store(&self) -> Result<&Arc<dyn BlobStore>, StepError> {
        self.store().ok_or_else(|| self.mismatch("a key"))
    }

    /// Refuses a request whose payloads travel another way than this
    /// function's transfer, before anything is read or stored: inline bytes
    /// to a function with a store (whose results would land in a store the
    /// caller never cleans), or keys to a function without one. `payloads`
    /// names each payload field with whether it came inline and whether it
    /// came as a key.
    pub fn check_transfer(&self, payloads: &[(&str, bool, bool)]) -> Result<(), StepError> {
        let stored = self.transfer().uses_store();
        for &(field, inline, key) in payloads {
            if stored && inline {
                return Err(self.mismatch(&format!("{field} inline")));
            }
            if !stored && key {
                return Err(self.mismatch(&format!("{field} as a key")));
            }
        }
        Ok(())
    }

    fn mismatch(&self, what: &str) -> StepError {
        StepError::Precondition(format!(
            "the request carries {what}, but this function runs TRANSFER_TYPE={}: every function of a deployment must use the same TRANSFER_TYPE",
            self.transfer().as_str()
        ))
    }

    /// The payload from its inline bytes if present, else from the store by
    /// key, in one read with any concurrent request of the same run that
    /// asks for the same object (`shared_reads.rs`); the bytes count as read
    /// by the request whose read it was, once.
    pub async fn fetch(
        &self,
        inline: &Bytes,
        key: &str,
        what: &str,
        moved: &mut Moved,
        parent: &Span,
    ) -> Result<Bytes, StepError> {
        if !inline.is_empty() {
            return Ok(inline.clone());
        }
        if key.is_empty() {
            return Err(StepError::bad(format!(
                "no {what}: both the inline bytes and the key are empty"
            )));
        }
        let mut span = parent.child(format!("storage get {what}"), Some(Kind::Client));
        span.tag("storage.key", key);
        let (data, by) = self.reads.get(self.required_store()?, key).await?;
        span.tag("storage.bytes", data.len());
        match by {
            ReadBy::Itself => moved.read += data.len() as u64,
            ReadBy::Another => span.tag("storage.shared", true),
        }
        Ok(data)
    }

    /// Bytes `range` of a stored object (end clipped) and the object's size.
    pub async fn fetch_range(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
        what: &str,
        moved: &mut Moved,
        parent: &Span,
    ) -> Result<(Bytes, u64), StepError> {
        let shown = format!("{}-{}", range.start, range.end);
        self.fetch_part(key, shown, what, moved, parent, |store| async move {
            store.get_range(key, range).await
        })
        .await
    }

    /// The last `len` bytes of a stored object and the object's size.
    pub async fn fetch_suffix(
        &self,
        key: &str,
        len: u64,
        what: &str,
        moved: &mut Moved,
        parent: &Span,
    ) -> Result<(Bytes, u64), StepError> {
        self.fetch_part(
            key,
            format!("-{len}"),
            what,
            moved,
            parent,
            |store| async move { store.get_suffix(key, len).await },
        )
        .await
    }

    /// A part of a stored object, read by `get`, in a span tagged with the
    /// part (`shown`), counted in `moved`.
    async fn fetch_part<F, Fut>(
        &self,
        key: &str,
        shown: String,
        what: &str,
        moved: &mut Moved,
        parent: &Span,
        get: F,
    ) -> Result<(Bytes, u64), StepError>
    where
        F: FnOnce(Arc<dyn BlobStore>) -> Fut,
        Fut: std::future::Future<Output = Result<(Bytes, u64), stacking_storage::StorageError>>,
    {
        let mut span = parent.child(format!("storage get {what}"), Some(Kind::Client));
        span.tag("storage.key", key);
        span.tag("storage.range", shown);
        let (data, size) = get(Arc::clone(self.required_store()?)).await?;
        span.tag("storage.bytes", data.len());
        moved.read += data.len() as u64;
        Ok((data, size))
    }

    /// Hands a result on: stored under `key` for S3 transfer, else inline.
    pub async fn emit(
        &self,
        key: String,
        data: Bytes,
        parent: &Span,
    ) -> Result<Emitted, StepError> {
        match &self.route {
            Route::Inline => Ok(Emitted {
                inline: data,
                key: String::new(),
                written: 0,
            }),
            Route::Store(_, store) => {
                let written = data.len() as u64;
                let name = key.rsplit('/').next().unwrap_or(&key).to_string();
                let mut span = parent.child(format!("storage put {name}"), Some(Kind::Client));
                span.tag("storage.key", &key);
                span.tag("storage.bytes", written);
                store.put(&key, data).await?;
                Ok(Emitted {
                    inline: Bytes::new(),
                    key,
                    written,
                })
            }
        }
    }

    /// Hands two results of one step on at once (stored concurrently),
    /// counting what they wrote in `moved`.
    pub async fn emit_pair(
        &self,
        first: (String, Bytes),
        second: (String, Bytes),
        moved: &mut Moved,
        parent: &Span,
    ) -> Result<(Emitted, Emitted), StepError> {
        let pair = tokio::try_join!(
            self.emit(first.0, first.1, parent),
            self.emit(second.0, second.1, parent),
        )?;
        moved.written += pair.0.written + pair.1.written;
        Ok(pair)
    }

    /// Admits one request to fetch its inputs, wait for a compute slot and
    /// store its results: at most [`Context::request_slots`] at once; the
    /// rest wait here holding nothing.
    ///
    /// Store reads and writes take no compute slot: when they did, 16
    /// concurrent Train calls on a 2-core trainer read and wrote in 8
    /// waves, each a store round trip (26 round trips on the critical path
    /// of a 16-trainer run where 8 are needed).
    pub async fn admit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, StepError> {
        self.requests
            .acquire()
            .await
            .map_err(|_| StepError::Internal("request queue closed".into()))
    }

    /// One of the `max_jobs` compute slots (`MAX_SERVER_THREADS`), taken
    /// right before [`Context::compute`] and given back before the results
    /// are stored.
    pub async fn compute_slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, StepError> {
        self.compute
            .acquire()
            .await
            .map_err(|_| StepError::Internal("compute queue closed".into()))
    }

    /// Requests admitted at once (see [`Context::admit`]).
    pub fn request_slots(&self) -> usize {
        request_slots(&self.route, self.max_jobs)
    }

    /// Runs CPU-bound work off the async runtime (call holding a
    /// [`Context::compute_slot`]). The work gets a [`Stop`] flag, set when
    /// - this future is dropped: the caller went away or its deadline passed
    ///   (tonic drops a request's future on `grpc-timeout`);
    /// - the compute budget (`COMPUTE_BUDGET_S`) runs out;
    /// - draining on SIGTERM runs out of time.
    ///
    /// A stopped fit ends within one solver step and its error becomes
    /// [`StepError::Stopped`].
    pub async fn compute<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Stop) -> Result<T, StepError> + Send + 'static,
    ) -> Result<T, StepError> {
        let stop = Stop::never();
        let _stop_if_abandoned = StopOnDrop(stop.clone());
        let worker_stop = stop.clone();
        let running = Arc::clone(&self.running);
        running.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut task = tokio::task::spawn_blocking(move || {
            let out = work(&worker_stop);
            running.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            out
        });
        let budget = tokio::time::sleep(self.limits.compute_budget);
        tokio::pin!(budget);
        let joined = tokio::select! {
            joined = &mut task => joined,
            () = &mut budget => {
                stop.request(StopReason::BudgetExceeded);
                (&mut task).await
            }
            () = self.hard_stop.cancelled() => {
                stop.request(StopReason::ShuttingDown);
                (&mut task).await
            }
        };
        let result =
            joined.map_err(|e| StepError::Internal(format!("compute task failed: {e}")))?;
        match (result, stop.reason()) {
            (Err(_), Some(reason)) => Err(StepError::Stopped(reason)),
            (result, _) => result,
        }
    }
}

/// Requests a function admits at once per compute slot when it reads and
/// writes a store. Each holds at most its fetched inputs (a dataset, or a
/// run's models and predictions) while it waits; the requests of one run
/// that read the same object share one read and one copy of it
/// (`shared_reads.rs`). 8 let 16 concurrent trainers of a 2-core trainer read
/// in one round trip; 4 read them in two, which was kept while each request
/// held a dataset of its own (docs/benchmarks.md, "Store round trips", has
/// the figures).
pub const STORE_REQUESTS_PER_JOB: usize = 8;

/// INLINE requests carry their payloads, so admitting more than can compute
/// would only hold more of them; through a store, requests wait for a
/// compute slot with their inputs read.
fn request_slots(route: &Route, max_jobs: usize) -> usize {
    match route {
        Route::Inline => max_jobs,
        Route::Store(..) => max_jobs.saturating_mul(STORE_REQUESTS_PER_JOB),
    }
}

/// Sets its flag when dropped: a request future dropped before its work
/// finished means nobody waits for that work any more.
struct StopOnDrop(Stop);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.request(StopReason::Cancelled);
    }
}

/// Object keys of one invocation. Every key a function writes lives under
/// a run prefix, `run-<32 hex digits>/`, which `stacking gc` recognises:
/// the driver's run id, or, for a request without one (the original
/// driver's way of calling), a fresh prefix of the call's own, still ending
/// in the original names (`run-.../model_0`). So two callers never share a
/// key. A request with a run id may read only keys inside its run; one
/// without reads the keys it is given (the original driver takes them from
/// the replies).
#[derive(Debug, Clone, PartialEq)]
pub struct RunScope {
    prefix: String,
}

impl RunScope {
    /// From the request's run id; each key the request names must lie inside it.
    pub fn new(run_id: &str, read_keys: &[&str]) -> Result<Self, StepError> {
        if run_id.is_empty() {
            return Ok(Self {
                prefix: format!("{}/", new_run_id()),
            });
        }
        if !is_run_id(run_id) {
            return Err(StepError::bad(format!(
                "run_id {:?} is not a run id: the driver makes them as run- and 32 hexadecimal digits; leave it empty and the call gets one of its own",
                printable(run_id, ECHO_KEY)
            )));
        }
        let scope = Self {
            prefix: format!("{run_id}/"),
        };
        if let Some(key) = read_keys
            .iter()
            .find(|k| !k.is_empty() && !k.starts_with(&scope.prefix))
        {
            return Err(StepError::bad(format!(
                "key {:?} is outside run {run_id:?}: a request may read only its own run's objects",
                printable(key, ECHO_KEY)
            )));
        }
        Ok(scope)
    }

    /// The full key of `name` under the run.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The run's prefix (`run-.../`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

/// A fresh run id: `run-` and 32 lowercase hexadecimal digits.
pub fn new_run_id() -> String {
    format!("run-{}", uuid::Uuid::new_v4().simple())
}

/// Whether `id` has the shape of [`new_run_id`]'s ids.
pub fn is_run_id(id: &str) -> bool {
    id.strip_prefix("run-").is_some_and(|hex| {
        hex.len() == 32
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The most characters of a key or id an error message repeats.
pub(crate) const ECHO_KEY: usize = 200;

/// Ids that become part of object keys: 1..=128 of `[A-Za-z0-9._-]`.
pub fn check_segment(what: &str, id: &str) -> Result<(), StepError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(StepError::bad(format!(
            "{what} {:?} is not allowed: use 1 to 128 letters, digits, '.', '_' or '-'",
            printable(id, ECHO_KEY)
        )))
    }
}
