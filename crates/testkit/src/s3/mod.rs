//! An S3-API server on a loopback port: `s3s` speaks the protocol and checks
//! SigV4 signatures; objects live in memory. It runs on its own thread and
//! runtime, so a test or benchmark on any runtime (or none) can use it, and
//! its work is not scheduled among the caller's tasks.
//!
//! Operations: CreateBucket, HeadBucket, ListBuckets, PutObject, GetObject
//! (with ranges), HeadObject, DeleteObject, DeleteObjects, ListObjectsV2
//! (prefix, delimiter, pagination), and multipart uploads (Create, UploadPart,
//! Complete with the listed parts in order, Abort).
//!
//! It counts the requests it answers, and can hold each one for a set time
//! before handling it ([`S3Server::set_latency`]), so that a bench sees a
//! store's round trips as a real one's latency makes them cost.
//!
//! ETags are a CRC-64/NVME of the content plus its length, not MD5: S3 says
//! an ETag "may or may not be an MD5 digest", and MD5 was close to half of
//! a PUT's time here (measured with the storage contract's store), so an
//! MD5 ETag made the benchmark measure this server's hashing rather than the
//! functions.

mod bucket;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use self::bucket::MemoryS3;

/// Access key the server accepts.
pub const ACCESS: &str = "stacking-test-access";
/// Secret key the server accepts.
pub const SECRET: &str = "stacking-test-secret-key-0123456789";
/// The bucket it serves.
pub const BUCKET: &str = "vhive-stacking";

/// A running server with bucket [`BUCKET`] and the credentials
/// [`ACCESS`]/[`SECRET`]. Stopped (its thread joined) on drop.
pub struct S3Server {
    endpoint: String,
    addr: SocketAddr,
    threads: usize,
    state: MemoryS3,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl S3Server {
    /// Starts on `127.0.0.1` at a free port, with `threads` runtime workers.
    pub fn start_with_threads(threads: usize) -> std::io::Result<Self> {
        let state = MemoryS3::default();
        state.add_bucket(BUCKET);
        let std_listener = crate::process::bind_loopback()?;
        let addr: SocketAddr = std_listener.local_addr()?;
        let (stop, thread) = serve(state.clone(), std_listener, threads)?;
        Ok(Self {
            endpoint: format!("http://{addr}"),
            addr,
            threads,
            state,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops serving, as a store that went down: the port is closed and
    /// every open connection dropped. The objects are kept for
    /// [`S3Server::restart`].
    pub fn stop_serving(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Serves again on the same port, with the objects it had.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.stop_serving();
        let listener = std::net::TcpListener::bind(self.addr)?;
        let (stop, thread) = serve(self.state.clone(), listener, self.threads)?;
        self.stop = Some(stop);
        self.thread = Some(thread);
        Ok(())
    }

    /// Starts with two runtime workers (the machine's core count here).
    pub fn start() -> std::io::Result<Self> {
        Self::start_with_threads(2)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Objects currently stored, over all buckets.
    pub fn object_count(&self) -> usize {
        self.state.object_count()
    }

    /// Multipart uploads completed so far.
    pub fn completed_multipart_count(&self) -> usize {
        self.state.completed_uploads.load(Ordering::Relaxed)
    }

    /// Multipart uploads started and neither completed nor aborted.
    pub fn pending_multipart_count(&self) -> usize {
        self.state.uploads().len()
    }

    /// From now on refuse every multipart part after the first (or stop).
    pub fn refuse_later_parts(&self, refuse: bool) {
        self.state
            .refuse_later_parts
            .store(refuse, Ordering::Relaxed);
    }

    /// PUTs so far sent with `x-amz-content-sha256: UNSIGNED-PAYLOAD`.
    pub fn unsigned_put_count(&self) -> usize {
        self.state.unsigned_puts.load(Ordering::Relaxed)
    }

    /// HTTP requests answered so far, of every kind.
    pub fn request_count(&self) -> usize {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// From now on every request waits `latency` before it is handled, as
    /// the time to first byte of a store across a network; zero for none.
    pub fn set_latency(&self, latency: std::time::Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.state.latency_us.store(us, Ordering::Relaxed);
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop_serving();
    }
}

/// Serves `state` on `listener` from a thread with its own runtime, until
/// the returned sender fires.
fn serve(
    state: MemoryS3,
    std_listener: std::net::TcpListener,
    threads: usize,
) -> std::io::Result<(oneshot::Sender<()>, std::thread::JoinHandle<()>)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name("s3-server")
        .enable_all()
        .build()?;
    std_listener.set_nonblocking(true)?;
    let (requests, latency) = (state.requests.clone(), state.latency_us.clone());
    let mut builder = s3s::service::S3ServiceBuilder::new(state);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS, SECRET));
    let service = builder.build();
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("s3-server".into())
        .spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = TcpListener::from_std(std_listener) else {
                    return;
                };
                let accept = async {
                    while let Ok((stream, _)) = listener.accept().await {
                        let _ = stream.set_nodelay(true);
                        let service = service.clone();
                        let (requests, latency) = (requests.clone(), latency.clone());
                        // Counts every request and holds it for the set latency.
                        let counted = hyper::service::service_fn(move |req| {
                            let service = service.clone();
                            requests.fetch_add(1, Ordering::Relaxed);
                            let wait = latency.load(Ordering::Relaxed);
                            let arrived = tokio::time::Instant::now();
                            async move {
                                if wait > 0 {
                                    let wait = std::time::Duration::from_micros(wait);
                                    crate::hold::until(arrived + wait).await;
                                }
                                hyper::service::Service::call(&service, req).await
                            }
                        });
                        tokio::spawn(async move {
                            let _ =
                                hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                                    .serve_connection(TokioIo::new(stream), counted)
                                    .await;
                        });
                    }
                };
                tokio::select! {
                    _ = accept => {}
                    _ = stopped => {}
                }
            });
            // Drops every connection task with the runtime.
            runtime.shutdown_background();
        })?;
    Ok((stop, thread))
}
