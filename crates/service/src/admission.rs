//! Admission by bytes: a function holds at most `MEMORY_BUDGET_MB` of
//! request messages at once. The same first look at a request's framing
//! answers a malformed frame as the caller's error (`INVALID_ARGUMENT`),
//! where tonic would answer `INTERNAL`: a flag byte other than 0 or 1, a
//! compressed flag without `grpc-encoding`, a header cut short, or a body
//! shorter than the length its header declares.
//!
//! Counting requests does not bound memory: a few concurrent Train calls
//! with large inline datasets hold all of them at once. Every gRPC message starts with a 5-byte
//! header that declares its length, so this layer reads that header before
//! the body is buffered, reserves the declared bytes from the budget (waiting
//! for room, within the request's deadline), and holds them until the
//! response is produced. A message larger than the whole budget is refused
//! at once with `RESOURCE_EXHAUSTED`. Because a request reserves all its
//! bytes in one step, partly admitted requests can never deadlock.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame};
use http_body_util::BodyExt;
use tokio::sync::Semaphore;
use tonic::body::Body;
use tower::{Layer, Service};

/// The budget is counted in KiB so that any size fits a semaphore.
const UNIT: u64 = 1024;

/// The layer, shared by every connection of one server.
#[derive(Debug, Clone)]
pub struct MemoryBudgetLayer {
    permits: Arc<Semaphore>,
    total_units: u32,
}

impl MemoryBudgetLayer {
    /// A layer holding at most `budget_bytes` of request messages at once.
    pub fn new(budget_bytes: usize) -> Self {
        let total_units = u32::try_from((budget_bytes as u64 / UNIT).max(1)).unwrap_or(u32::MAX);
        Self {
            permits: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
        }
    }
}

impl<S> Layer<S> for MemoryBudgetLayer {
    type Service = MemoryBudget<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MemoryBudget {
            inner,
            budget: self.clone(),
        }
    }
}

/// The service that admits requests by their declared size.
#[derive(Debug, Clone)]
pub struct MemoryBudget<S> {
    inner: S,
    budget: MemoryBudgetLayer,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S> Service<http::Request<Body>> for MemoryBudget<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        // The clone that was made ready is the one that serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let budget = self.budget.clone();
        Box::pin(async move {
            let (parts, mut body) = req.into_parts();
            let mut head = BytesMut::new();
            let mut trailers = None;
            while head.len() < 5 {
                match body.frame().await {
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => head.extend_from_slice(&data),
                        Err(frame) => {
                            trailers = frame.into_trailers().ok();
                            break;
                        }
                    },
                    // Let tonic report a broken or empty body as it does.
                    _ => break,
                }
            }
            let compression_named = parts.headers.contains_key("grpc-encoding");
            if let Err(status) = check_frame_head(&head, compression_named) {
                return Ok(status.into_http());
            }
            let declared = match head.get(1..5) {
                Some(len) => u64::from(u32::from_be_bytes([len[0], len[1], len[2], len[3]])),
                None => 0,
            };
            let units = declared.div_ceil(UNIT).max(1);
            if units > u64::from(budget.total_units) {
                let status = tonic::Status::resource_exhausted(format!(
                    "the request's message is {declared} bytes, more than this function's whole MEMORY_BUDGET_MB ({} MiB)",
                    (u64::from(budget.total_units) * UNIT) >> 20
                ));
                return Ok(status.into_http());
            }
            // Waiting here is bounded by the request's deadline: the server
            // drops this future when it passes.
            let Ok(held) = Arc::clone(&budget.permits)
                .acquire_many_owned(units as u32)
                .await
            else {
                return Ok(tonic::Status::unavailable("shutting down").into_http());
            };
            let body = Body::new(Prefixed {
                expected: 5 + declared,
                delivered: head.len() as u64,
                head: Some(head.freeze()).filter(|h| !h.is_empty()),
                rest: body,
                trailers,
            });
            let response = inner.call(http::Request::from_parts(parts, body)).await;
            drop(held);
            response
        })
    }
}

/// Refuses a message header (the first five bytes of a gRPC body) that no
/// client may send: the caller's error, `INVALID_ARGUMENT`.
fn check_frame_head(head: &[u8], compression_named: bool) -> Result<(), tonic::Status> {
    match head.first() {
        None => Err(tonic::Status::invalid_argument(
            "the request carries no message",
        )),
        Some(_) if head.len() < 5 => Err(tonic::Status::invalid_argument(format!(
            "the request's body ends after {} bytes, inside a message's 5-byte header",
            head.len()
        ))),
        Some(0) => Ok(()),
        Some(1) if compression_named => Ok(()),
        Some(1) => Err(tonic::Status::invalid_argument(
            "the message is marked compressed, but the request names no grpc-encoding",
        )),
        Some(flag) => Err(tonic::Status::invalid_argument(format!(
            "a message's first byte is {flag}; gRPC allows 0 (plain) or 1 (compressed)"
        ))),
    }
}

/// The bytes read to find the message's length, then the rest of the body;
/// a body that ends before the declared length is an error frame.
struct Prefixed {
    head: Option<Bytes>,
    rest: Body,
    trailers: Option<http::HeaderMap>,
    /// The first message's header and body, as its header declares.
    expected: u64,
    /// Bytes handed on so far.
    delivered: u64,
}

impl HttpBody for Prefixed {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(head) = self.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        if let Some(trailers) = self.trailers.take() {
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        match Pin::new(&mut self.rest).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.delivered += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) if self.delivered < self.expected => {
                let (delivered, expected) = (self.delivered, self.expected);
                // Reported once; the body has ended either way.
                self.expected = 0;
                Poll::Ready(Some(Err(tonic::Status::invalid_argument(format!(
                    "the request's body ends after {delivered} bytes, but its message header declares {expected}"
                )))))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none()
            && self.trailers.is_none()
            && self.rest.is_end_stream()
            && self.delivered >= self.expected
    }
}
