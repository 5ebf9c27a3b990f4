//! One span: started under a parent (or a new trace), tagged, and sent to the
//! process's tracer when it ends; and its identity carried in gRPC metadata.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tonic::metadata::{MetadataMap, MetadataValue};

use super::{Endpoint, Kind, Tracer, ZipkinSpan};

/// The identity of a span, enough to parent children and propagate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanId {
    /// The trace's id.
    pub trace_id: u128,
    /// The span's own id.
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

    /// Its identity, if it records.
    pub fn id(&self) -> Option<SpanId> {
        self.inner.as_ref().map(|a| a.id)
    }

    /// Whether a tracer receives it.
    pub fn is_recording(&self) -> bool {
        self.inner.is_some()
    }

    /// Adds (or replaces) a tag.
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

    /// Ends the span now (it is sent when dropped, too).
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
            a.tracer.record(span);
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
