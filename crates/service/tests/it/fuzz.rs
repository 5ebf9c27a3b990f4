//! Raw protobuf bodies, random and mutated, sent to every method of every
//! function over real gRPC on loopback. No answer may be `INTERNAL` or
//! `UNKNOWN` (a malformed message is the caller's `INVALID_ARGUMENT`), and
//! each function still answers a good request afterwards. `FUZZ_CASES`
//! (default 100 per method) bounds the run; `FUZZ_SEED` reproduces one.

use crate::support;

use std::marker::PhantomData;

use bytes::{Buf, BufMut, Bytes};
use prost::Message;
use stacking_service::pb::helloworld::HelloRequest;
use stacking_service::pb::stacking::{MetaTrainRequest, ReduceRequest, TrainRequest};
use stacking_service::Transfer;
use support::*;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};

/// Sends bytes as they are; takes the reply's bytes as they are.
#[derive(Default)]
struct RawCodec(PhantomData<()>);

struct RawEncoder;
struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put(item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn env_or(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A valid message with random bytes flipped, cut, or replaced by noise.
fn mutate(rng: &mut Rng, valid: &[u8]) -> Bytes {
    let mut out = valid.to_vec();
    match rng.below(3) {
        0 => {
            for _ in 0..=rng.below(6) {
                let i = rng.below(out.len());
                if let Some(b) = out.get_mut(i) {
                    *b = rng.next() as u8;
                }
            }
        }
        1 => out.truncate(rng.below(out.len() + 1)),
        _ => {
            let n = rng.below(300);
            out = (0..n).map(|_| rng.next() as u8).collect();
        }
    }
    Bytes::from(out)
}

async fn call(
    grpc: &mut tonic::client::Grpc<tonic::transport::Channel>,
    path: &'static str,
    body: Bytes,
) -> Result<Bytes, Status> {
    grpc.ready()
        .await
        .map_err(|e| Status::unknown(e.to_string()))?;
    grpc.unary(
        tonic::Request::new(body),
        http::uri::PathAndQuery::from_static(path),
        RawCodec::default(),
    )
    .await
    .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_protobuf_bodies_never_get_internal_and_every_function_keeps_serving() {
    let stack = start(StackOpts {
        transfer: Transfer::Inline,
        trainers: 2,
        ..StackOpts::default()
    })
    .await;
    let small = Bytes::from(small_dataset().to_bytes());
    let valid: [(&'static str, std::net::SocketAddr, Vec<u8>); 4] = [
        (
            "/stacking.Trainer/Train",
            stack.trainer,
            TrainRequest {
                dataset: small.clone(),
                model_config: Bytes::from_static(br#"{"model":"Lasso","params":{"alpha":0.1}}"#),
                trainer_id: "0".into(),
                run_id: "run-887175e515cd3b479f6ae6fb1a76138e".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "/stacking.Reducer/Reduce",
            stack.reducer,
            ReduceRequest {
                run_id: "run-887175e515cd3b479f6ae6fb1a76138e".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "/stacking.Metatrainer/Metatrain",
            stack.metatrainer,
            MetaTrainRequest {
                dataset: small.clone(),
                run_id: "run-887175e515cd3b479f6ae6fb1a76138e".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "/helloworld.Greeter/SayHello",
            stack.driver,
            HelloRequest {
                name: "fuzz".into(),
            }
            .encode_to_vec(),
        ),
    ];
    let mut rng = Rng(env_or("FUZZ_SEED", 0x5EED));
    let cases = env_or("FUZZ_CASES", 100);
    let mut seen_invalid = 0;
    for (path, addr, message) in &valid {
        let mut grpc = tonic::client::Grpc::new(channel(*addr).await);
        for _ in 0..cases {
            let body = mutate(&mut rng, message);
            if let Err(status) = call(&mut grpc, path, body).await {
                assert!(
                    !matches!(status.code(), Code::Internal | Code::Unknown),
                    "{path}: {status:?}"
                );
                seen_invalid += usize::from(
                    status.code() == Code::InvalidArgument
                        && status.message().contains("not a valid protobuf message"),
                );
            }
        }
        // Still serving: the valid message is answered (or refused for its content).
        let after = call(&mut grpc, path, Bytes::from(message.clone())).await;
        if let Err(status) = after {
            assert!(
                !matches!(
                    status.code(),
                    Code::Internal | Code::Unknown | Code::Unavailable
                ),
                "{path} after fuzzing: {status:?}"
            );
        }
    }
    assert!(
        seen_invalid > 0,
        "no malformed body was refused as INVALID_ARGUMENT"
    );
    let hello = stack.say_hello().await.expect("a full run after fuzzing");
    assert!(hello.message.contains("trainers=2"));
    stack.stop().await;
}
