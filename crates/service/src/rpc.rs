//! Calling the other functions: channels, deadlines and bounded retries.
//!
//! Every wait is bounded:
//! - connecting: [`CONNECT_TIMEOUT`];
//! - a peer that accepts TCP but never speaks HTTP/2, or stops answering
//!   mid-call: HTTP/2 keepalive pings every [`KEEPALIVE_INTERVAL`] must be
//!   answered within [`KEEPALIVE_TIMEOUT`], or the connection is dropped and
//!   the call fails with `UNAVAILABLE`;
//! - each call: the invocation's remaining budget, sent downstream as
//!   `grpc-timeout` so the callee stops its work when the caller would stop
//!   waiting, and enforced here too.
//!
//! `Train`, `Reduce` and `Metatrain` write only under the run's own keys, so
//! repeating one is harmless: a call that failed in transport (connection
//! refused or lost, GOAWAY, a refused stream, a worker that is draining) is
//! retried on the one retry policy ([`retry::STAGE_CALL`], jittered
//! exponential backoff) within the remaining budget.

use std::future::Future;
use std::time::{Duration, Instant};

use stacking_storage::retry;

use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::error::StepError;
use crate::pb::helloworld::greeter_client::GreeterClient;
use crate::pb::helloworld::{HelloReply, HelloRequest};

/// HTTP/2 flow-control windows for servers and clients. HTTP/2's default
/// 64 KiB windows make a 2.4 MiB message take dozens of round trips.
pub const STREAM_WINDOW: u32 = 16 << 20;
/// The connection-level window.
pub const CONNECTION_WINDOW: u32 = 64 << 20;

/// TCP connect to another function.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How often an HTTP/2 connection is pinged while it waits for a peer.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
/// How long a ping may go unanswered before the connection is dropped.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(3);
/// Attempts of one call, the first included; a refused stream, retried at
/// once, does not count.
pub const MAX_ATTEMPTS: usize = retry::STAGE_CALL.max_retries + 1;

/// The URI of a peer given as `host:port` or as a whole URL
/// (`http://host:port`). Every command that takes an address reads it this
/// way, so a URL is never prefixed a second time (`http://http://...`
/// would look up a host named `http`).
pub fn peer_uri(addr: &str) -> String {
    if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    }
}

/// A lazily connected channel to `addr` (`host:port` or a URL).
pub fn channel(addr: &str, call_timeout: Duration) -> Result<Channel, StepError> {
    let ep = Endpoint::from_shared(peer_uri(addr))
        .map_err(|e| StepError::bad(format!("address {addr:?}: {e}")))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(call_timeout)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .tcp_nodelay(true)
        .initial_stream_window_size(Some(STREAM_WINDOW))
        .initial_connection_window_size(Some(CONNECTION_WINDOW));
    Ok(ep.connect_lazy())
}

/// How much longer a caller's own timer waits than the deadline it sends:
/// the callee answers `DEADLINE_EXCEEDED` at the deadline, and that answer
/// should arrive before the caller gives up on its own.
pub const CALLER_GRACE: Duration = Duration::from_secs(1);

/// `message` as a request that carries `deadline` downstream
/// (`grpc-timeout`), so that the callee stops when the caller stops waiting.
pub fn with_deadline<T>(message: T, deadline: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(deadline);
    request
}

/// Connects to the driver at `addr` and calls `helloworld.Greeter/SayHello`
/// once, with `timeout` as its deadline (sent downstream): one invocation as
/// any caller makes it. Replies up to the default message limit are accepted.
pub async fn say_hello(
    addr: &str,
    name: &str,
    timeout: Duration,
) -> Result<HelloReply, tonic::Status> {
    let channel = channel(addr, timeout + CALLER_GRACE).map_err(tonic::Status::from)?;
    let limit = crate::settings::DEFAULT_MAX_MESSAGE_MB << 20;
    let mut client = GreeterClient::new(channel).max_decoding_message_size(limit);
    let request = HelloRequest {
        name: name.to_string(),
    };
    let reply = client.say_hello(with_deadline(request, timeout)).await?;
    Ok(reply.into_inner())
}

/// When an invocation must have answered.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Instant);

impl Deadline {
    /// `budget` from now.
    pub fn after(budget: Duration) -> Self {
        Self(Instant::now() + budget)
    }

    /// Time left, or `None` once it has passed.
    pub fn remaining(&self) -> Option<Duration> {
        self.0
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    }

    /// The deadline as a tokio instant, for `timeout_at`.
    pub fn instant(&self) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.0)
    }
}

/// A `grpc-timeout` header value (`<digits><unit>`, unit one of
/// `H M S m u n`), as a duration.
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Whether `status` reports a failure of the connection rather than an
/// answer from the peer: the call may not have reached it, so a repeat of an
/// idempotent call is safe.
pub fn is_transport_failure(status: &Status) -> bool {
    if status.code() == Code::Unavailable {
        return true;
    }
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        if e.is::<h2::Error>() || e.is::<hyper::Error>() || e.is::<std::io::Error>() {
            return true;
        }
        source = e.source();
    }
    status.code() == Code::Unknown && status.message().contains("transport error")
}

/// Calls `call(remaining)` until it answers, retrying transport failures
/// with backoff while the deadline allows. A transport failure that is final
/// becomes `UNAVAILABLE`, and a passed deadline `DEADLINE_EXCEEDED`; `what`
/// names the call in the log, and the caller names it in the error (once).
pub async fn call_with_retry<T, F, Fut>(
    what: &str,
    deadline: Deadline,
    mut call: F,
) -> Result<T, Status>
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let expired = || Status::deadline_exceeded("no answer within the invocation's deadline");
    let mut delays = retry::STAGE_CALL.delays();
    let first = Instant::now();
    let mut attempts = 0;
    loop {
        let Some(remaining) = deadline.remaining() else {
            return Err(expired());
        };
        let status = match tokio::time::timeout(remaining, call(remaining)).await {
            Err(_) => return Err(expired()),
            Ok(Ok(reply)) => return Ok(reply),
            // The client's own timer for the same deadline answers
            // CANCELLED ("Timeout expired"); the deadline is what passed.
            Ok(Err(_)) if deadline.remaining().is_none() => return Err(expired()),
            Ok(Err(status)) => status,
        };
        if !is_transport_failure(&status) {
            return Err(status);
        }
        // A stream refused before processing is retried at once, and does
        // not count; anything else waits, so a restarting peer has time to
        // listen again.
        if was_refused(&status) && attempts < MAX_ATTEMPTS * 4 {
            attempts += 1;
            continue;
        }
        attempts += 1;
        // The window bounds the attempts' own time too (a connect may take
        // its whole timeout), not only the sleeps between them.
        let delay = delays
            .next()
            .filter(|_| first.elapsed() < retry::STAGE_CALL.window);
        let Some(delay) = delay else {
            return Err(Status::unavailable(format!(
                "{} (after {attempts} attempts)",
                status.message()
            )));
        };
        tracing::debug!(attempts, what, error = %status.message(), "transport failure; retrying");
        let Some(remaining) = deadline.remaining() else {
            return Err(expired());
        };
        tokio::time::sleep(delay.min(remaining)).await;
    }
}

/// Whether `status` comes from an HTTP/2 `REFUSED_STREAM` reset, which RFC
/// 9113 (8.7) makes safe to retry at once: the workers cap open streams per
/// connection, and a burst on a new connection goes out before their
/// SETTINGS frame says so.
fn was_refused(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return h2.reason() == Some(h2::Reason::REFUSED_STREAM);
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_every_unit() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse_grpc_timeout("9n"), Some(Duration::from_nanos(9)));
        for bad in ["", "5", "S", "5x", "-5S", "1234567890S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad}");
        }
    }

    /// Paused time: the backoff's sleeps pass at once.
    #[tokio::test(start_paused = true)]
    async fn transport_failures_are_retried_and_end_as_unavailable() {
        let mut calls = 0;
        let started = tokio::time::Instant::now();
        let out: Result<(), Status> =
            call_with_retry("Train", Deadline::after(Duration::from_secs(60)), |_| {
                calls += 1;
                async { Err(Status::unknown("transport error")) }
            })
            .await;
        let status = out.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(
            status.message(),
            format!("transport error (after {calls} attempts)"),
            "{status:?}"
        );
        // Every retry the policy's window allows, and none past it.
        assert!((5..=MAX_ATTEMPTS).contains(&calls), "{calls}");
        assert!(
            started.elapsed() <= retry::STAGE_CALL.window,
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn answers_from_the_peer_are_not_retried() {
        let mut calls = 0;
        let out: Result<(), Status> =
            call_with_retry("Train", Deadline::after(Duration::from_secs(60)), |_| {
                calls += 1;
                async { Err(Status::invalid_argument("bad config")) }
            })
            .await;
        assert_eq!(out.unwrap_err().code(), Code::InvalidArgument);
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn a_call_past_the_deadline_is_deadline_exceeded() {
        let out: Result<(), Status> =
            call_with_retry("Reduce", Deadline::after(Duration::from_millis(50)), |_| {
                std::future::pending()
            })
            .await;
        assert_eq!(out.unwrap_err().code(), Code::DeadlineExceeded);
    }
}
