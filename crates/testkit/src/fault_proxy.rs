//! A TCP proxy on a loopback port that injects faults into one link: a
//! function's link to its store, to Redis, to another function or to
//! Zipkin. It runs on its own thread and runtime, like the S3 server, so a
//! test on any runtime (or processes) can use it, and the fault can change
//! while connections are open.
//!
//! Written here rather than taken from `noxious` (a Rust port of Toxiproxy):
//! noxious 1.0.4 brings rand 0.8, tokio-util 0.6 and thiserror 1 beside the
//! versions the workspace uses, and is built around its own server's state;
//! the five faults below are this file.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

/// Chunks of up to 16 KiB one direction of a connection holds at most.
const IN_FLIGHT_CHUNKS: usize = 4096;

/// What the proxy does to the bytes it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Carries everything at once.
    None,
    /// Holds every chunk this long before passing it on, each way.
    Latency(Duration),
    /// Passes nothing on, in either direction, and keeps every connection
    /// open: a peer that accepts and never answers.
    Stall,
    /// Resets every connection (TCP RST), open ones and new ones.
    Reset,
    /// Closes a connection once it has carried this many bytes, both ways
    /// counted: a link cut mid-message.
    CutAfter(usize),
    /// When one side closes, waits this long before closing the other.
    SlowClose(Duration),
}

/// A running proxy from [`FaultProxy::addr`] to its upstream. Stopped (its
/// thread joined, every connection dropped) on drop.
pub struct FaultProxy {
    addr: SocketAddr,
    fault: watch::Sender<Fault>,
    connections: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("fault", &*self.fault.borrow())
            .finish()
    }
}

impl FaultProxy {
    /// A proxy on a free loopback port to `upstream`, carrying everything.
    pub fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = crate::process::bind_loopback()?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let (fault, watching) = watch::channel(Fault::None);
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("fault-proxy")
            .enable_all()
            .build()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(listener) else {
                        return;
                    };
                    let accept = async {
                        while let Ok((client, _)) = listener.accept().await {
                            let fault = watching.clone();
                            let counted = Arc::clone(&counted);
                            tokio::spawn(async move {
                                counted.fetch_add(1, Ordering::Relaxed);
                                carry(client, upstream, fault).await;
                                counted.fetch_sub(1, Ordering::Relaxed);
                            });
                        }
                    };
                    tokio::select! {
                        _ = accept => {}
                        _ = stopped => {}
                    }
                });
                runtime.shutdown_background();
            })?;
        Ok(Self {
            addr,
            fault,
            connections,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where to connect instead of the upstream.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, for URLs.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// From now on, `fault` (open connections too).
    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    /// Connections open through the proxy now.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Resets a connection: SO_LINGER 0, then close, sends RST.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Carries one connection both ways under the current fault.
async fn carry(mut client: TcpStream, upstream: SocketAddr, fault: watch::Receiver<Fault>) {
    if *fault.borrow() == Fault::Reset {
        reset(client);
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        reset(client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let carried = AtomicUsize::new(0);
    let outcome = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let up = pump(client_read, server_write, fault.clone(), &carried);
        let down = pump(server_read, client_write, fault, &carried);
        tokio::pin!(up, down);
        let outcome = tokio::select! {
            a = &mut up => a,
            b = &mut down => b,
        };
        if let Fault::SlowClose(wait) = outcome {
            // One side closed: the other stays open, unserved, a while.
            tokio::time::sleep(wait).await;
        }
        outcome
    };
    if outcome == Fault::Reset {
        reset(client);
        reset(server);
    }
}

/// Copies `from` to `to` as the fault says; returns the fault in force
/// when the copy ended. Reading and writing run side by side through a
/// queue, so that a latency delays each chunk by that much after it was
/// read, as a network's does, rather than adding up chunk after chunk.
async fn pump(
    mut from: tokio::net::tcp::ReadHalf<'_>,
    mut to: tokio::net::tcp::WriteHalf<'_>,
    fault: watch::Receiver<Fault>,
    carried: &AtomicUsize,
) -> Fault {
    // Chunks in flight each way: 64 MiB, so that latency delays a large
    // value once, as a network with a large window does (64 chunks, 1 MiB,
    // made a 2.4 MiB value wait the latency three times).
    let (queue, mut queued) =
        tokio::sync::mpsc::channel::<(tokio::time::Instant, Vec<u8>)>(IN_FLIGHT_CHUNKS);
    let stopped = tokio::sync::Notify::new();
    let mut reading = fault.clone();
    let reader = async {
        // Owned here: when the reader ends (a reset, the peer's close) the
        // queue closes, and the writer ends after what is queued. Borrowed,
        // it kept a reset connection open and silent for good.
        let queue = queue;
        let mut buf = vec![0u8; 16 << 10];
        loop {
            let now = *reading.borrow_and_update();
            match now {
                Fault::Reset => return now,
                Fault::Stall => {
                    tokio::select! {
                        changed = reading.changed() => if changed.is_err() { return now },
                        _ = stopped.notified() => return now,
                    }
                    continue;
                }
                _ => {}
            }
            let n = tokio::select! {
                read = from.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return *reading.borrow(),
                    Ok(n) => n,
                },
                changed = reading.changed() => {
                    if changed.is_err() {
                        return now;
                    }
                    continue;
                }
                _ = stopped.notified() => return now,
            };
            if queue
                .send((tokio::time::Instant::now(), buf[..n].to_vec()))
                .await
                .is_err()
            {
                return now;
            }
        }
    };
    let mut writing = fault;
    let writer = async {
        while let Some((read_at, chunk)) = queued.recv().await {
            let now = *writing.borrow();
            match now {
                Fault::Reset => {
                    stopped.notify_one();
                    return now;
                }
                Fault::Stall => {
                    // Hold what was read until the fault changes.
                    loop {
                        let still = *writing.borrow() == Fault::Stall;
                        if !still || writing.changed().await.is_err() {
                            break;
                        }
                    }
                }
                Fault::Latency(wait) => crate::hold::until(read_at + wait).await,
                _ => {}
            }
            let mut chunk = &chunk[..];
            let current = *writing.borrow();
            if let Fault::CutAfter(limit) = current {
                let before = carried.fetch_add(chunk.len(), Ordering::Relaxed);
                if before + chunk.len() > limit {
                    chunk = &chunk[..limit.saturating_sub(before)];
                    let _ = to.write_all(chunk).await;
                    let _ = to.shutdown().await;
                    stopped.notify_one();
                    return Fault::CutAfter(limit);
                }
            }
            if to.write_all(chunk).await.is_err() {
                stopped.notify_one();
                return *writing.borrow();
            }
        }
        *writing.borrow()
    };
    let (read_end, write_end) = tokio::join!(reader, writer);
    match write_end {
        Fault::Reset | Fault::CutAfter(_) => write_end,
        _ => read_end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on loopback, on the caller's runtime.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn round_trip(addr: SocketAddr, bound: Duration) -> Option<Vec<u8>> {
        tokio::time::timeout(bound, async {
            let mut s = TcpStream::connect(addr).await.ok()?;
            s.write_all(b"ping").await.ok()?;
            let mut got = [0u8; 4];
            s.read_exact(&mut got).await.ok()?;
            Some(got.to_vec())
        })
        .await
        .ok()
        .flatten()
    }

    #[tokio::test]
    async fn every_fault_does_what_it_says() {
        let proxy = FaultProxy::start(echo().await).unwrap();
        let bound = Duration::from_secs(2);
        assert_eq!(
            round_trip(proxy.addr(), bound).await.as_deref(),
            Some(&b"ping"[..])
        );
        proxy.set(Fault::Latency(Duration::from_millis(150)));
        let t = std::time::Instant::now();
        assert!(round_trip(proxy.addr(), bound).await.is_some());
        assert!(
            t.elapsed() >= Duration::from_millis(300),
            "{:?}",
            t.elapsed()
        );
        proxy.set(Fault::Stall);
        assert_eq!(
            round_trip(proxy.addr(), Duration::from_millis(300)).await,
            None
        );
        proxy.set(Fault::Reset);
        assert_eq!(round_trip(proxy.addr(), bound).await, None);
        proxy.set(Fault::CutAfter(2));
        assert_eq!(round_trip(proxy.addr(), bound).await, None);
        proxy.set(Fault::None);
        assert_eq!(
            round_trip(proxy.addr(), bound).await.as_deref(),
            Some(&b"ping"[..])
        );
    }

    /// A reset reaches a connection that is open and idle when it is set:
    /// its next read fails at once, rather than waiting on a connection the
    /// proxy no longer serves.
    #[tokio::test]
    async fn a_reset_closes_open_idle_connections() {
        let proxy = FaultProxy::start(echo().await).unwrap();
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        s.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        s.read_exact(&mut got).await.unwrap();
        proxy.set(Fault::Reset);
        let read = tokio::time::timeout(Duration::from_secs(2), s.read(&mut got)).await;
        assert!(
            matches!(read, Ok(Ok(0) | Err(_))),
            "the open connection was not reset: {read:?}"
        );
    }
}
