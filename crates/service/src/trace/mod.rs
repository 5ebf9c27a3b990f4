//! Zipkin tracing: spans in Zipkin v2 JSON, context carried across gRPC hops
//! in B3 headers (what Istio and Knative forward) and W3C `traceparent`.
//!
//! Why our own exporter rather than `opentelemetry-zipkin`: 0.33 is
//! deprecated, leaves `localEndpoint.serviceName` empty (Zipkin then shows no
//! service names) and panics when its exporter is built inside a tokio
//! runtime. Spans here are explicit (one per step, RPC, storage operation and
//! fit), so library-internal spans (h2, hyper, tower) never appear, and when
//! tracing is off a span is an empty struct: nothing is built or sent.

mod span;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

pub use self::span::{extract, Span, SpanId};

/// Span kinds of the Zipkin v2 model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Kind {
    /// A span that calls another process.
    Client,
    /// A span that serves a call.
    Server,
}

/// Where a span was recorded (Zipkin's `localEndpoint`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// The function's role.
    pub service_name: String,
}

/// One span as Zipkin's v2 API takes it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ZipkinSpan {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub id: String,
    /// The parent span's id, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// What the span covers.
    pub name: String,
    /// Client or server, if either.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    /// Microseconds since the epoch.
    pub timestamp: u64,
    /// Microseconds, at least 1.
    pub duration: u64,
    /// The recording function.
    pub local_endpoint: Endpoint,
    /// Key-value annotations.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tags: std::collections::BTreeMap<String, String>,
}

enum Msg {
    Span(ZipkinSpan),
    Flush(oneshot::Sender<()>),
}

/// Where a process's spans go.
#[derive(Debug)]
pub enum Sink {
    /// POSTed to a Zipkin collector (`-zipkin`), in batches.
    Zipkin(String),
    /// Kept in memory (the embedded run's timeline).
    Memory(Arc<std::sync::Mutex<Vec<ZipkinSpan>>>),
    /// Both: sent to Zipkin and kept (a traced embedded run with a timeline).
    Both(String, Arc<std::sync::Mutex<Vec<ZipkinSpan>>>),
}

/// Spans waiting for the exporter, at most. While a collector hangs, the
/// exporter waits on each batch; spans past this are dropped, counted, and
/// reported with the collector's other failures (once a minute).
pub const SPAN_QUEUE: usize = 4096;

/// A process's tracer: its service name and its exporter.
#[derive(Debug)]
pub struct Tracer {
    service: String,
    tx: mpsc::Sender<Msg>,
    /// Spans dropped because the queue was full, not yet reported.
    overflowed: Arc<std::sync::atomic::AtomicUsize>,
    /// Spans dropped because the queue was full, since the start.
    dropped: std::sync::atomic::AtomicUsize,
}

impl Tracer {
    /// Starts the exporter task (call inside a tokio runtime).
    pub fn start(service: &str, sink: Sink) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(SPAN_QUEUE);
        let overflowed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        tokio::spawn(export(rx, sink, Arc::clone(&overflowed)));
        Arc::new(Self {
            service: service.to_string(),
            tx,
            overflowed,
            dropped: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Queues a finished span; with the queue full it is dropped and counted.
    fn record(&self, span: ZipkinSpan) {
        if self.tx.try_send(Msg::Span(span)).is_err() {
            self.overflowed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Spans dropped because the queue was full, since the start.
    pub fn dropped_spans(&self) -> usize {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sends every span recorded so far (waiting at most 5 s).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            if self.tx.send(Msg::Flush(done)).await.is_ok() {
                let _ = wait.await;
            }
        })
        .await;
    }
}

async fn export(
    mut rx: mpsc::Receiver<Msg>,
    sink: Sink,
    overflowed: Arc<std::sync::atomic::AtomicUsize>,
) {
    stacking_storage::s3::install_tls_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .ok();
    let mut batch: Vec<ZipkinSpan> = Vec::new();
    let mut failures = FailureLog::default();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        let mut flushed = None;
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(Msg::Span(s)) => { batch.push(s); if batch.len() < 256 { continue; } }
                Some(Msg::Flush(done)) => flushed = Some(done),
                None => { send(&sink, client.as_ref(), &mut batch, &mut failures).await; return; }
            },
            _ = tick.tick() => {}
        }
        let dropped = overflowed.swap(0, std::sync::atomic::Ordering::Relaxed);
        if dropped > 0 {
            if let Some(total) = failures.failed(dropped, Instant::now()) {
                tracing::warn!(
                    dropped_spans = total,
                    "the span queue was full ({SPAN_QUEUE} spans): the Zipkin collector takes spans slower than they come; reported again in {} s",
                    COLLECTOR_WARNING_INTERVAL.as_secs()
                );
            }
        }
        send(&sink, client.as_ref(), &mut batch, &mut failures).await;
        if let Some(done) = flushed {
            let _ = done.send(());
        }
    }
}

/// How often a collector that stays down is reported again.
pub const COLLECTOR_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// Rate-limits the "collector unreachable" warning: the exporter retries
/// every batch tick, and a log line per tick would bury everything else.
/// The first failure is logged at once, then one summary per
/// [`COLLECTOR_WARNING_INTERVAL`], and a recovery is logged once.
#[derive(Debug, Default)]
pub struct FailureLog {
    last_warned: Option<Instant>,
    dropped_since: usize,
}

impl FailureLog {
    /// Records a failed batch; returns the spans dropped since the last
    /// warning when it is time to warn again.
    pub fn failed(&mut self, spans: usize, now: Instant) -> Option<usize> {
        self.dropped_since += spans;
        let due = self
            .last_warned
            .is_none_or(|t| now.duration_since(t) >= COLLECTOR_WARNING_INTERVAL);
        if !due {
            return None;
        }
        self.last_warned = Some(now);
        Some(std::mem::take(&mut self.dropped_since))
    }

    /// Records a delivered batch; true when the collector was failing before.
    pub fn delivered(&mut self) -> bool {
        let was_failing = self.last_warned.is_some();
        *self = Self::default();
        was_failing
    }
}

async fn send(
    sink: &Sink,
    client: Option<&reqwest::Client>,
    batch: &mut Vec<ZipkinSpan>,
    failures: &mut FailureLog,
) {
    if batch.is_empty() {
        return;
    }
    let spans = std::mem::take(batch);
    let (url, store) = match sink {
        Sink::Memory(store) => (None, Some(store)),
        Sink::Zipkin(url) => (Some(url), None),
        Sink::Both(url, store) => (Some(url), Some(store)),
    };
    if let Some(store) = store {
        if let Ok(mut s) = store.lock() {
            s.extend(spans.iter().cloned());
        }
    }
    let Some(url) = url else { return };
    let Some(client) = client else { return };
    let body = match serde_json::to_vec(&spans) {
        Ok(b) => b,
        Err(_) => return,
    };
    let sent = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    match sent.and_then(|r| r.error_for_status()) {
        Err(e) => {
            if let Some(dropped) = failures.failed(spans.len(), Instant::now()) {
                tracing::warn!(
                    error = %e,
                    dropped_spans = dropped,
                    "could not send spans to Zipkin at {url}; spans are dropped while it is unreachable, reported again in {} s",
                    COLLECTOR_WARNING_INTERVAL.as_secs()
                );
            }
        }
        Ok(_) => {
            if failures.delivered() {
                tracing::info!("Zipkin at {url} accepts spans again");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::metadata::MetadataMap;

    use super::*;

    #[test]
    fn collector_warnings_are_rate_limited_and_count_dropped_spans() {
        let mut log = FailureLog::default();
        let t0 = Instant::now();
        assert_eq!(log.failed(3, t0), Some(3));
        // Every 200 ms tick for 59 s: silent.
        for k in 1..295 {
            assert_eq!(log.failed(1, t0 + Duration::from_millis(200 * k)), None);
        }
        assert_eq!(log.failed(1, t0 + COLLECTOR_WARNING_INTERVAL), Some(295));
        assert!(log.delivered());
        assert!(!log.delivered());
        assert_eq!(log.failed(2, t0 + COLLECTOR_WARNING_INTERVAL), Some(2));
    }

    /// A collector that hangs: spans beyond the queue are dropped and
    /// counted, never held.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_span_queue_is_bounded_while_a_collector_hangs() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api/v2/spans", silent.local_addr().unwrap());
        let _held = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = silent.accept().await {
                held.push(s);
            }
        });
        let tracer = Tracer::start("trainer", Sink::Zipkin(url));
        for i in 0..(3 * SPAN_QUEUE) {
            drop(Span::start(Some(&tracer), format!("span {i}"), None, None));
        }
        // The exporter takes at most a batch or two off the queue before it
        // waits on the collector; everything past the queue is dropped.
        let dropped = tracer.dropped_spans();
        assert!(dropped >= SPAN_QUEUE, "{dropped} dropped");
        assert!(tracer.tx.capacity() <= SPAN_QUEUE);
    }

    #[tokio::test]
    async fn propagation_round_trips_and_spans_serialise_as_zipkin_v2() {
        let store = Arc::new(std::sync::Mutex::new(Vec::new()));
        let tracer = Tracer::start("driver", Sink::Memory(store.clone()));
        let root = Span::start(Some(&tracer), "SayHello", Some(Kind::Server), None);
        let mut md = MetadataMap::new();
        let child = root.child("Train 0", Some(Kind::Client));
        child.inject(&mut md);
        assert_eq!(extract(&md), child.id());
        assert_eq!(
            child.id().map(|c| c.trace_id),
            root.id().map(|r| r.trace_id)
        );
        drop(child);
        drop(root);
        tracer.flush().await;
        let spans = store.lock().unwrap().clone();
        assert_eq!(spans.len(), 2);
        let json = serde_json::to_value(&spans[0]).unwrap();
        assert_eq!(json["localEndpoint"]["serviceName"], "driver");
        assert_eq!(json["kind"], "CLIENT");
        assert_eq!(json["traceId"].as_str().unwrap().len(), 32);
        assert_eq!(json["parentId"], spans[1].id);
        assert!(Span::start(None, "x", None, None).id().is_none());
    }
}
