//! Malformed gRPC framing, sent as raw HTTP/2 requests: a flag byte other
//! than 0 or 1, a compressed flag without `grpc-encoding`, a header cut
//! short, no message, a body shorter than its declared length. Each is the
//! caller's error (`INVALID_ARGUMENT`, where tonic alone answers
//! `INTERNAL`), and the function serves the next request.

use crate::support;

use bytes::Bytes;
use http_body_util::BodyExt;
use stacking_service::pb::stacking::trainer_client::TrainerClient;
use support::requests::*;
use support::*;
use tonic::Code;
use tower::ServiceExt;

/// The status of one raw request: from the headers of a trailers-only
/// answer, or from the trailers.
pub async fn raw_call(
    channel: tonic::transport::Channel,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> tonic::Status {
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("http://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = tonic::body::Body::new(
        http_body_util::Full::new(Bytes::from(body))
            .map_err(|never| -> tonic::Status { match never {} }),
    );
    let response = channel
        .oneshot(request.body(body).unwrap())
        .await
        .expect("an HTTP/2 answer");
    if let Some(status) = tonic::Status::from_header_map(response.headers()) {
        return status;
    }
    let collected = response.into_body().collect().await.expect("a body");
    let trailers = collected.trailers().cloned().unwrap_or_default();
    tonic::Status::from_header_map(&trailers).unwrap_or_else(|| tonic::Status::ok(""))
}

fn frame(flag: u8, declared: u32, body: &[u8]) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend_from_slice(&declared.to_be_bytes());
    out.extend_from_slice(body);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_are_invalid_argument_and_the_function_serves_on() {
    let stack = start(StackOpts::default()).await;
    let ch = channel(stack.trainer).await;
    let path = "/stacking.Trainer/Train";
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("flag 2", frame(2, 3, b"abc"), "first byte is 2"),
        (
            "compressed without grpc-encoding",
            frame(1, 3, b"abc"),
            "names no grpc-encoding",
        ),
        (
            "body shorter than declared",
            frame(0, 100, b"abc"),
            "declares 105",
        ),
        (
            "header cut short",
            vec![0, 0],
            "inside a message's 5-byte header",
        ),
        ("no message", Vec::new(), "carries no message"),
    ];
    for (what, body, needle) in cases {
        let status = raw_call(ch.clone(), path, &[], body).await;
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{what}: {}",
            status.message()
        );
        assert!(
            status.message().contains(needle),
            "{what}: {}",
            status.message()
        );
    }
    let mut trainer = TrainerClient::new(ch).max_decoding_message_size(64 << 20);
    let data = Bytes::from(small_dataset().to_bytes());
    trainer.train(train_inline(data, lasso())).await.unwrap();
}
