//! Zipkin tracing: spans in Zipkin v2 JSON, context carried across gRPC hops
//! in B3 headers (what Istio and Knative forward) and W3C `traceparent`.
//!
//! Why our own exporter rather than `opentelemetry-zipkin`: 0.33 is
//! deprecated, leaves `localEndpoint.serviceName` empty (Zipkin then shows no
//! service names) and panics when its exporter is built inside a tokio
//! runtime. Spans here are explicit (one per step, RPC, storage operation and
//! fit), so library-internal spans (h2, hyper, tower) never appear, and when
//! tracing is off a span is an empty struct: nothing is built or sent.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tonic::metadata::{MetadataMap, MetadataValue};

/// Span kinds of the Zipkin v2 model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Kind {
    Client,
    Server,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub service_name: String,
}

/// One span as Zipkin's v2 API takes it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ZipkinSpan {
    pub trace_id: String,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    /// Microseconds since the epoch.
    pub timestamp: u64,
    /// Microseconds, at least 1.
    pub duration: u64,
    pub local_endpoint: Endpoint,
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

/// A process's tracer: its service name and its exporter.
#[derive(Debug)]
pub struct Tracer {
    service: String,
    tx: mpsc::UnboundedSender<Msg>,
}

impl Tracer {
    /// Starts the exporter task (call inside a tokio runtime).
    pub fn start(service: &str, sink: Sink) -> Arc<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(export(rx, sink));
        Arc::new(Self {
            service: service.to_string(),
            tx,
        })
    }

    /// Sends every span recorded so far.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), wait).await;
        }
    }
}

async fn export(mut rx: mpsc::UnboundedReceiver<Msg>, sink: Sink) {
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

/// The identity of a span, enough to parent children and propagate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanId {
    pub trace_id: u128,
    pub span_id: u64,
}

/// A span being recorded; sent when ended or dropped. Without a tracer it
/// records nothing.
#[derive(Debug)]
pub struct Span {
    inner: Option<Active>,
}

#[derive(Debug)]
struct Active {
    tracer: Arc<Tracer>,
    id: SpanId,
    parent: Option<u64>,
    name: String,
    kind: Option<Kind>,
    start_us: u64,
    start: Instant,
    tags: std::collections::BTreeMap<String, String>,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn random_u64() -> u64 {
    loop {
        let v: u64 = rand::random();
        if v != 0 {
            return v;
        }
    }
}

impl Span {
    /// A span that records nothing.
    pub fn none() -> Self {
        Self { inner: None }
    }

    /// A new span: a child of `parent` if given (the same trace), else a new trace.
    pub fn start(
        tracer: Option<&Arc<Tracer>>,
        name: impl Into<String>,
        kind: Option<Kind>,
        parent: Option<SpanId>,
    ) -> Self {
        let Some(tracer) = tracer else {
            return Self::none();
        };
        let trace_id = parent.map_or_else(
            || (u128::from(random_u64()) << 64) | u128::from(random_u64()),
            |p| p.trace_id,
        );
        Self {
            inner: Some(Active {
                tracer: tracer.clone(),
                id: SpanId {
                    trace_id,
                    span_id: random_u64(),
                },
                parent: parent.map(|p| p.span_id),
                name: name.into(),
                kind,
                start_us: now_us(),
                start: Instant::now(),
                tags: Default::default(),
            }),
        }
    }

    /// A child of this span.
    pub fn child(&self, name: impl Into<String>, kind: Option<Kind>) -> Self {
        match &self.inner {
            Some(a) => Self::start(Some(&a.tracer), name, kind, Some(a.id)),
            None => Self::none(),
        }
    }

    pub fn id(&self) -> Option<SpanId> {
        self.inner.as_ref().map(|a| a.id)
    }

    pub fn is_recording(&self) -> bool {
        self.inner.is_some()
    }

    pub fn tag(&mut self, key: &str, value: impl ToString) {
        if let Some(a) = &mut self.inner {
            a.tags.insert(key.to_string(), value.to_string());
        }
    }

    /// Puts this span's context into outgoing gRPC metadata (B3 and traceparent).
    pub fn inject(&self, md: &mut MetadataMap) {
        let Some(a) = &self.inner else { return };
        let trace = format!("{:032x}", a.id.trace_id);
        let span = format!("{:016x}", a.id.span_id);
        let mut put = |k: &'static str, v: String| {
            if let Ok(v) = MetadataValue::try_from(v) {
                md.insert(k, v);
            }
        };
        put("x-b3-traceid", trace.clone());
        put("x-b3-spanid", span.clone());
        if let Some(p) = a.parent {
            put("x-b3-parentspanid", format!("{p:016x}"));
        }
        put("x-b3-sampled", "1".into());
        put("traceparent", format!("00-{trace}-{span}-01"));
    }

    pub fn end(self) {}
}

impl Drop for Span {
    fn drop(&mut self) {
        if let Some(a) = self.inner.take() {
            let span = ZipkinSpan {
                trace_id: format!("{:032x}", a.id.trace_id),
                id: format!("{:016x}", a.id.span_id),
                parent_id: a.parent.map(|p| format!("{p:016x}")),
                name: a.name,
                kind: a.kind,
                timestamp: a.start_us,
                duration: (a.start.elapsed().as_micros() as u64).max(1),
                local_endpoint: Endpoint {
                    service_name: a.tracer.service.clone(),
                },
                tags: a.tags,
            };
            let _ = a.tracer.tx.send(Msg::Span(span));
        }
    }
}

/// The caller's span from incoming metadata: W3C `traceparent`, else B3.
pub fn extract(md: &MetadataMap) -> Option<SpanId> {
    let get = |k: &str| md.get(k).and_then(|v| v.to_str().ok());
    if let Some(tp) = get("traceparent") {
        let parts: Vec<&str> = tp.split('-').collect();
        if let [_, trace, span, _] = parts[..] {
            if let (Ok(trace_id), Ok(span_id)) = (
                u128::from_str_radix(trace, 16),
                u64::from_str_radix(span, 16),
            ) {
                return Some(SpanId { trace_id, span_id });
            }
        }
    }
    let trace_id = u128::from_str_radix(get("x-b3-traceid")?, 16).ok()?;
    let span_id = u64::from_str_radix(get("x-b3-spanid")?, 16).ok()?;
    Some(SpanId { trace_id, span_id })
}

#[cfg(test)]
mod tests {
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
