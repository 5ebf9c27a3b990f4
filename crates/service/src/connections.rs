//! Bounded connections. A function accepts at most [`ConnectionLimits::max`]
//! connections at once, below its file-descriptor limit; a connection that
//! has not started a request within the handshake timeout is closed (an HTTP/2
//! preface that never comes, headers sent a byte at a time), and so is one
//! idle for the idle timeout. When the cap is reached, the connection idle
//! longest is closed to make room, so callers with work are served while
//! others hold connections open: 20,000 idle connections once used up a
//! trainer's descriptors, and a normal Train then failed. HTTP/2 keepalive
//! pings (the server's settings) find peers that vanished.
//!
//! The pieces: [`incoming`] accepts and wraps each socket in a
//! [`TrackedStream`], which reads as closed once its connection is told to
//! close; [`ActivityLayer`] counts each connection's requests in flight (a
//! request counts until its response body is sent), which is what "idle"
//! means; a reaper task closes what timed out.

use std::collections::HashMap;
use std::future::Future as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// The bounds on one server's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once.
    pub max: usize,
    /// From accept to the first request.
    pub handshake: Duration,
    /// With no request in flight, before the connection is closed.
    pub idle: Duration,
}

/// The most connections a function takes, whatever its descriptor limit:
/// an idle HTTP/2 connection holds buffers of its own.
pub const MAX_CONNECTIONS: usize = 4096;
/// From accept to the first request.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// With no request in flight. A driver's idle connection to a worker is
/// then closed, and its next call connects again.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

impl ConnectionLimits {
    /// Three quarters of this process's descriptor limit (the rest is for the
    /// store, the other functions and files), at most [`MAX_CONNECTIONS`].
    pub fn for_this_process() -> Self {
        Self {
            max: (descriptor_limit().saturating_mul(3) / 4).clamp(16, MAX_CONNECTIONS),
            handshake: HANDSHAKE_TIMEOUT,
            idle: IDLE_TIMEOUT,
        }
    }
}

/// The soft `RLIMIT_NOFILE`, or 1024 where it cannot be read.
fn descriptor_limit() -> usize {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the struct it is given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
            return usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX);
        }
    }
    1024
}

/// One connection's state, shared by its stream, its requests and the reaper.
#[derive(Debug)]
pub struct Connection {
    accepted: Instant,
    in_flight: AtomicUsize,
    started: AtomicBool,
    /// When the last request ended, as time since `accepted`.
    last_end: Mutex<Duration>,
    close: CancellationToken,
}

impl Connection {
    /// How long it has had no request in flight (zero while one is).
    fn idle_for(&self, now: Instant) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = self.last_end.lock().map_or(Duration::ZERO, |d| *d);
        Some(now.saturating_duration_since(self.accepted + since))
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.started.store(true, Ordering::Release);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }
}

/// A request in flight on a connection; ends when dropped.
#[derive(Debug)]
pub struct InFlight(Arc<Connection>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut last) = self.0.last_end.lock() {
            *last = self.0.accepted.elapsed();
        }
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The open connections of one server.
#[derive(Debug, Default)]
pub struct Registry {
    open: Mutex<HashMap<u64, Arc<Connection>>>,
    next: std::sync::atomic::AtomicU64,
}

impl Registry {
    /// Connections open now.
    pub fn len(&self) -> usize {
        self.open.lock().map_or(0, |o| o.len())
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn add(&self) -> (u64, Arc<Connection>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Connection {
            accepted: Instant::now(),
            in_flight: AtomicUsize::new(0),
            started: AtomicBool::new(false),
            last_end: Mutex::new(Duration::ZERO),
            close: CancellationToken::new(),
        });
        if let Ok(mut open) = self.open.lock() {
            open.insert(id, Arc::clone(&conn));
        }
        (id, conn)
    }

    fn remove(&self, id: u64) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(&id);
        }
    }

    /// Closes every connection past its handshake or idle timeout.
    fn reap(&self, limits: &ConnectionLimits) {
        let now = Instant::now();
        let Ok(open) = self.open.lock() else { return };
        for conn in open.values() {
            let unstarted = !conn.started.load(Ordering::Acquire)
                && now.saturating_duration_since(conn.accepted) >= limits.handshake;
            let idle = conn.idle_for(now).is_some_and(|d| d >= limits.idle);
            if unstarted || idle {
                conn.close.cancel();
            }
        }
    }

    /// Closes the connection idle longest, if any is idle: room for a new one.
    fn evict_one(&self) -> bool {
        let now = Instant::now();
        let Ok(open) = self.open.lock() else {
            return false;
        };
        let longest = open
            .values()
            .filter(|c| !c.close.is_cancelled())
            .filter_map(|c| c.idle_for(now).map(|d| (d, c)))
            .max_by_key(|(d, _)| *d);
        match longest {
            Some((_, conn)) => {
                conn.close.cancel();
                true
            }
            None => false,
        }
    }
}

/// An accepted socket that reads as closed (end of stream) once its
/// connection is told to close, so that the HTTP/2 server drops it.
pub struct TrackedStream {
    stream: TcpStream,
    id: u64,
    conn: Arc<Connection>,
    closing: Pin<Box<WaitForCancellationFutureOwned>>,
    registry: Arc<Registry>,
    remote: SocketAddr,
    _permit: OwnedSemaphorePermit,
}

/// What a request learns of its connection (tonic puts it in the request's
/// extensions).
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The peer's address.
    pub remote: SocketAddr,
    conn: Arc<Connection>,
}

impl tonic::transport::server::Connected for TrackedStream {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> ConnectionInfo {
        ConnectionInfo {
            remote: self.remote,
            conn: Arc::clone(&self.conn),
        }
    }
}

impl Drop for TrackedStream {
    fn drop(&mut self) {
        self.registry.remove(self.id);
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.closing.as_mut().poll(cx).is_ready() {
            // End of stream: the server closes the connection.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The connections `listener` accepts, within `limits`: at most `max` open
/// (at the cap the longest-idle one is closed to make room, or, with none
/// idle, the next accept waits for one to end), each with its handshake
/// and idle timeouts, enforced by a reaper task that lives as long as the
/// stream. Accept errors (out of descriptors, say) are logged and retried.
pub fn incoming(
    listener: TcpListener,
    limits: ConnectionLimits,
    registry: Arc<Registry>,
) -> impl Stream<Item = std::io::Result<TrackedStream>> {
    let permits = Arc::new(Semaphore::new(limits.max.max(1)));
    let reaper = {
        let registry = Arc::clone(&registry);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                registry.reap(&limits);
            }
        })
    };
    let state = (listener, permits, registry, AbortOnDrop(reaper));
    futures::stream::unfold(
        state,
        move |(listener, permits, registry, reaper)| async move {
            loop {
                if permits.available_permits() == 0 {
                    registry.evict_one();
                }
                let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                    return None;
                };
                match listener.accept().await {
                    Ok((stream, remote)) => {
                        let _ = stream.set_nodelay(true);
                        let (id, conn) = registry.add();
                        let closing = Box::pin(conn.close.clone().cancelled_owned());
                        let tracked = TrackedStream {
                            stream,
                            id,
                            conn,
                            closing,
                            registry: Arc::clone(&registry),
                            remote,
                            _permit: permit,
                        };
                        return Some((Ok(tracked), (listener, permits, registry, reaper)));
                    }
                    Err(e) => {
                        // Out of descriptors or a connection reset before it was
                        // taken: the listener is fine, so wait a moment and go on.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        drop(permit);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        },
    )
}

/// Stops the reaper with the stream.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Counts each request on its connection from the moment it arrives until
/// its response body is sent: what keeps a connection from being idle. The
/// server's own count gives memory back once a burst is over
/// ([`crate::malloc::IdleTrim`]).
#[derive(Debug, Clone, Default)]
pub struct ActivityLayer {
    trim: Arc<crate::malloc::IdleTrim>,
}

impl ActivityLayer {
    /// A layer whose idle trim also lets `store` release its buffers.
    pub fn with_store(store: Option<Arc<dyn stacking_storage::BlobStore>>) -> Self {
        Self {
            trim: Arc::new(crate::malloc::IdleTrim::with_store(store)),
        }
    }
}

impl<S> tower::Layer<S> for ActivityLayer {
    type Service = Activity<S>;

    fn layer(&self, inner: S) -> Activity<S> {
        Activity {
            inner,
            trim: Arc::clone(&self.trim),
        }
    }
}

/// The service of [`ActivityLayer`].
#[derive(Debug, Clone)]
pub struct Activity<S> {
    inner: S,
    trim: Arc<crate::malloc::IdleTrim>,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S> tower::Service<http::Request<tonic::body::Body>> for Activity<S>
where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
        > + Send
        + 'static,
    S::Future: Send,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let on_connection = req
            .extensions()
            .get::<ConnectionInfo>()
            .map(|info| info.conn.begin());
        let in_process = InProcess::begin(&self.trim);
        let future = self.inner.call(req);
        Box::pin(async move {
            let response = future.await?;
            Ok(response.map(|body| {
                tonic::body::Body::new(HoldWhileSending {
                    body,
                    _on_connection: on_connection,
                    _in_process: in_process,
                })
            }))
        })
    }
}

/// A request in flight in the process; ends when dropped (the request
/// future dropped early included).
struct InProcess(Arc<crate::malloc::IdleTrim>);

impl InProcess {
    fn begin(trim: &Arc<crate::malloc::IdleTrim>) -> Self {
        trim.begin();
        Self(Arc::clone(trim))
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// A response body that keeps its request in flight until it is dropped.
struct HoldWhileSending {
    body: tonic::body::Body,
    _on_connection: Option<InFlight>,
    _in_process: InProcess,
}

impl http_body::Body for HoldWhileSending {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
