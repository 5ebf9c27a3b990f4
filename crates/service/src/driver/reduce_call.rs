//! The `Reduce` call, its request sent as the trainers' own bytes.
//!
//! An INLINE `ReduceRequest` carries every trainer's model and predictions
//! (hundreds of MB for hundreds of trainers). Encoded the usual way, all of
//! it is copied into one buffer while the trainers' replies are still held
//! (for retries), and the driver peaked at twice the message
//! (docs/internals.md has the figures). Here the request body
//! is a list of segments, small protobuf headers between the replies' own
//! `Bytes`, which HTTP/2 sends without copying them; the bytes on the wire
//! are exactly prost's encoding.

use bytes::{Bytes, BytesMut};
use http_body::Frame;
use http_body_util::{BodyExt, Limited, StreamBody};
use prost::encoding::{encode_key, encode_varint, WireType};
use prost::Message;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tower::{Service, ServiceExt};

use crate::pb::stacking::{ReduceReply, ReduceRequest};

/// A message's protobuf encoding in parts, whose concatenation is the
/// encoding.
#[derive(Debug, Clone, Default)]
pub struct Segments {
    parts: Vec<Bytes>,
    len: usize,
}

impl Segments {
    /// `request`'s encoding, referring to its payloads' bytes.
    pub fn reduce_request(request: &ReduceRequest) -> Self {
        let mut out = Segments::default();
        let mut head = BytesMut::new();
        for tuple in &request.model_pred_tuples {
            encode_key(1, WireType::LengthDelimited, &mut head);
            encode_varint(tuple.encoded_len() as u64, &mut head);
            if !tuple.model_key.is_empty() {
                prost::encoding::string::encode(1, &tuple.model_key, &mut head);
            }
            if !tuple.pred_key.is_empty() {
                prost::encoding::string::encode(2, &tuple.pred_key, &mut head);
            }
            for (tag, payload) in [(3, &tuple.model), (4, &tuple.predictions)] {
                if !payload.is_empty() {
                    encode_key(tag, WireType::LengthDelimited, &mut head);
                    encode_varint(payload.len() as u64, &mut head);
                    out.push(head.split().freeze());
                    out.push(payload.clone());
                }
            }
        }
        if !request.run_id.is_empty() {
            prost::encoding::string::encode(2, &request.run_id, &mut head);
        }
        out.push(head.freeze());
        out
    }

    fn push(&mut self, part: Bytes) {
        if !part.is_empty() {
            self.len += part.len();
            self.parts.push(part);
        }
    }

    /// The parts, one after another.
    #[cfg(test)]
    fn to_vec(&self) -> Vec<u8> {
        self.parts.concat()
    }
}

/// `Reducer.Reduce` on `channel` with a request already encoded in
/// `segments`; the reply is at most `max_reply` bytes.
pub async fn reduce(
    channel: Channel,
    request: tonic::Request<Segments>,
    max_reply: usize,
) -> Result<tonic::Response<ReduceReply>, Status> {
    let (metadata, _, segments) = request.into_parts();
    let length = u32::try_from(segments.len)
        .map_err(|_| Status::out_of_range("the Reduce request is longer than gRPC allows"))?;
    let mut frame = BytesMut::with_capacity(5);
    frame.extend_from_slice(&[0]);
    frame.extend_from_slice(&length.to_be_bytes());
    let parts = std::iter::once(frame.freeze()).chain(segments.parts);
    let body = StreamBody::new(futures::stream::iter(
        parts.map(|part| Ok::<_, Status>(Frame::data(part))),
    ));
    let mut http = http::Request::builder()
        .method(http::Method::POST)
        .uri("/stacking.Reducer/Reduce")
        .version(http::Version::HTTP_2)
        .body(tonic::body::Body::new(body))
        .map_err(|e| Status::internal(format!("building the Reduce request: {e}")))?;
    *http.headers_mut() = metadata.into_headers();
    let headers = http.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    headers.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
    let mut channel = channel;
    let response = channel
        .ready()
        .await
        .map_err(|e| Status::from_error(e.into()))?
        .call(http)
        .await
        .map_err(|e| Status::from_error(e.into()))?;
    let (parts, body) = response.into_parts();
    if parts.status != http::StatusCode::OK {
        return Err(http_status(parts.status));
    }
    // An error may come as headers only.
    if let Some(status) = Status::from_header_map(&parts.headers) {
        if status.code() != Code::Ok {
            return Err(status);
        }
    }
    let collected = Limited::new(body, max_reply.saturating_add(5))
        .collect()
        .await
        .map_err(Status::from_error)?;
    let trailers = collected.trailers().cloned().unwrap_or_default();
    match Status::from_header_map(&trailers) {
        Some(status) if status.code() == Code::Ok => {}
        Some(status) => return Err(status),
        None => {
            return Err(Status::internal(
                "the Reduce reply ended without a grpc-status",
            ))
        }
    }
    let data = collected.to_bytes();
    let message = match (data.first(), data.get(1..5)) {
        (Some(0), Some(len)) if data.len() == 5 + u32_be(len) => data.slice(5..),
        _ => {
            return Err(Status::internal(
                "the Reduce reply is not one uncompressed gRPC message",
            ))
        }
    };
    let reply = ReduceReply::decode(message)
        .map_err(|e| Status::internal(format!("the Reduce reply does not decode: {e}")))?;
    Ok(tonic::Response::from_parts(
        MetadataMap::from_headers(parts.headers),
        reply,
        Default::default(),
    ))
}

/// What gRPC makes of an HTTP status other than 200 (its
/// http-grpc-status-mapping): a proxy's 503 while a Knative revision scales
/// from zero is `UNAVAILABLE`, which the driver retries.
fn http_status(status: http::StatusCode) -> Status {
    let code = match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    };
    Status::new(code, format!("the reducer answered HTTP {status}"))
}

fn u32_be(bytes: &[u8]) -> usize {
    bytes.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::stacking::ModelPredTuple;

    #[test]
    fn the_segments_are_prosts_encoding() {
        let tuple = |i: u8, keys: bool, model: usize| ModelPredTuple {
            model_key: if keys {
                format!("run-x/model_{i}")
            } else {
                String::new()
            },
            pred_key: if keys {
                format!("run-x/pred_{i}")
            } else {
                String::new()
            },
            model: Bytes::from(vec![i; model]),
            predictions: Bytes::from(vec![i ^ 0x55; 2400]),
        };
        for request in [
            ReduceRequest {
                model_pred_tuples: vec![tuple(0, false, 300), tuple(1, false, 200_000)],
                run_id: "run-0123".into(),
            },
            ReduceRequest {
                model_pred_tuples: vec![tuple(2, true, 0), ModelPredTuple::default()],
                run_id: String::new(),
            },
            ReduceRequest::default(),
        ] {
            let segments = Segments::reduce_request(&request);
            assert_eq!(segments.to_vec(), request.encode_to_vec());
            assert_eq!(segments.len, request.encoded_len());
        }
    }

    #[test]
    fn http_statuses_map_as_grpc_says() {
        assert_eq!(
            http_status(http::StatusCode::SERVICE_UNAVAILABLE).code(),
            Code::Unavailable
        );
        assert_eq!(
            http_status(http::StatusCode::NOT_FOUND).code(),
            Code::Unimplemented
        );
        assert_eq!(
            http_status(http::StatusCode::IM_A_TEAPOT).code(),
            Code::Unknown
        );
    }

    #[test]
    fn the_payloads_are_not_copied() {
        let model = Bytes::from(vec![7u8; 1 << 20]);
        let request = ReduceRequest {
            model_pred_tuples: vec![ModelPredTuple {
                model: model.clone(),
                ..Default::default()
            }],
            run_id: "run-1".into(),
        };
        let segments = Segments::reduce_request(&request);
        assert!(segments
            .parts
            .iter()
            .any(|part| part.as_ptr() == model.as_ptr() && part.len() == model.len()));
    }
}
