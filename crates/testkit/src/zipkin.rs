//! A Zipkin collector on a loopback port: accepts `POST /api/v2/spans`
//! (HTTP/1.1, keep-alive), answers 202 and keeps the spans. It runs on its
//! own thread and runtime, so processes and tests on any runtime can send to
//! it. Stopped on drop.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A running collector.
pub struct ZipkinCollector {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<Value>>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ZipkinCollector {
    /// Starts on a free loopback port.
    pub fn start() -> std::io::Result<Self> {
        let listener = crate::process::bind_loopback()?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let spans = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&spans);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("zipkin".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(listener) else {
                        return;
                    };
                    let accept = async {
                        while let Ok((stream, _)) = listener.accept().await {
                            tokio::spawn(serve(stream, Arc::clone(&kept)));
                        }
                    };
                    tokio::select! {
                        _ = accept => {}
                        _ = stopped => {}
                    }
                });
            })?;
        Ok(Self {
            addr,
            spans,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/api/v2/spans`.
    pub fn url(&self) -> String {
        format!("http://{}/api/v2/spans", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Value> {
        self.spans.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for ZipkinCollector {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers every complete request on one connection.
async fn serve(mut stream: tokio::net::TcpStream, spans: Arc<Mutex<Vec<Value>>>) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let Ok(n) = stream.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() < end + 4 + len {
                break;
            }
            let answer: &[u8] = if head.starts_with("post /api/v2/spans") {
                if let Ok(Value::Array(list)) = serde_json::from_slice(&buf[end + 4..end + 4 + len])
                {
                    if let Ok(mut kept) = spans.lock() {
                        kept.extend(list);
                    }
                }
                b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n"
            } else {
                b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
            };
            buf.drain(..end + 4 + len);
            if stream.write_all(answer).await.is_err() {
                return;
            }
        }
    }
}
