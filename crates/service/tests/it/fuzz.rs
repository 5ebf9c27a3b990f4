//! The property that no request, however malformed, gets `INTERNAL`,
//! `UNKNOWN` or `CANCELLED`: raw protobuf bodies sent to every method of
//! every function over real gRPC on loopback. The bodies are valid messages
//! changed by `stacking_testkit::mutation`, and well-formed messages whose
//! fields are arbitrary (text, keys, run ids, payloads valid, changed or
//! random). A malformed message is the caller's `INVALID_ARGUMENT`; each
//! function still answers a good request afterwards, and a full run works.
//!
//! The test command runs a seeded sample (150 bodies a method); a failure
//! shrinks and is kept in `proptest-regressions/`. The long run:
//! `PROPTEST_CASES=5000 cargo test --release -p stacking-service --test it fuzz`.

use crate::support;

use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Buf, BufMut, Bytes};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use prost::Message;
use stacking_core::{config, npy, serial};
use stacking_service::pb::helloworld::HelloRequest;
use stacking_service::pb::stacking::{
    MetaTrainRequest, ModelPredTuple, ReduceRequest, TrainRequest,
};
use stacking_service::Transfer;
use stacking_testkit::mutation::{self, mutated};
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

/// Payloads a field may carry: one that a function accepts, that one
/// changed, random bytes, or nothing.
fn payload(valid: Vec<u8>) -> impl Strategy<Value = Bytes> {
    prop_oneof![
        Just(Bytes::from(valid.clone())),
        mutated(valid).prop_map(Bytes::from),
        prop::collection::vec(any::<u8>(), 0..256).prop_map(Bytes::from),
        Just(Bytes::new()),
    ]
}

/// Text a string field may carry: empty, key-like, a valid run id, or any
/// Unicode (control characters included).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z0-9_/-]{1,40}",
        "run-[0-9a-f]{32}",
        any::<String>(),
    ]
}

/// The valid payloads the messages are built from.
struct Payloads {
    dataset: Vec<u8>,
    model_config: Vec<u8>,
    model: Vec<u8>,
    predictions: Vec<u8>,
    meta_features: Vec<u8>,
}

fn payloads() -> Payloads {
    let ds = small_dataset();
    let spec = &config::default_level0()[2];
    let model = spec.fit(ds.x().view(), ds.y().view()).expect("fit");
    let predictions = model.predict(ds.x().view()).expect("predict");
    let meta = predictions.clone().insert_axis(ndarray::Axis(1));
    Payloads {
        dataset: ds.to_bytes(),
        model_config: spec.to_json().to_string().into_bytes(),
        model: serial::encode_model(&model).expect("encode"),
        predictions: npy::encode_f64_1d(&predictions),
        meta_features: npy::encode_f64_2d(&meta),
    }
}

fn train_requests(p: &Payloads) -> impl Strategy<Value = Vec<u8>> {
    (
        payload(p.dataset.clone()),
        text(),
        payload(p.model_config.clone()),
        text(),
        text(),
    )
        .prop_map(|(dataset, dataset_key, model_config, trainer_id, run_id)| {
            TrainRequest {
                dataset,
                dataset_key,
                model_config,
                trainer_id,
                run_id,
            }
            .encode_to_vec()
        })
}

fn reduce_requests(p: &Payloads) -> impl Strategy<Value = Vec<u8>> {
    let tuple = (
        text(),
        text(),
        payload(p.model.clone()),
        payload(p.predictions.clone()),
    )
        .prop_map(|(model_key, pred_key, model, predictions)| ModelPredTuple {
            model_key,
            pred_key,
            model,
            predictions,
        });
    (prop::collection::vec(tuple, 0..4), text()).prop_map(|(model_pred_tuples, run_id)| {
        ReduceRequest {
            model_pred_tuples,
            run_id,
        }
        .encode_to_vec()
    })
}

fn metatrain_requests(p: &Payloads) -> impl Strategy<Value = Vec<u8>> {
    let models =
        serial::encode_models(&[serial::decode_model(&p.model).expect("model")]).expect("encode");
    (
        (payload(p.dataset.clone()), text()),
        (payload(models), text()),
        (payload(p.meta_features.clone()), text()),
        payload(config::default_meta_json().to_string().into_bytes()),
        text(),
    )
        .prop_map(
            |(
                (dataset, dataset_key),
                (models, models_key),
                (meta_features, meta_features_key),
                model_config,
                run_id,
            )| {
                MetaTrainRequest {
                    dataset,
                    dataset_key,
                    models,
                    models_key,
                    meta_features,
                    meta_features_key,
                    model_config,
                    run_id,
                }
                .encode_to_vec()
            },
        )
}

/// A valid body changed, or a well-formed message of arbitrary fields.
fn bodies(
    valid: Vec<u8>,
    messages: impl Strategy<Value = Vec<u8>> + 'static,
) -> BoxedStrategy<Bytes> {
    prop_oneof![mutated(valid), messages]
        .prop_map(Bytes::from)
        .boxed()
}

#[test]
fn no_request_however_malformed_gets_internal_unknown_or_cancelled() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stack = rt.block_on(start(StackOpts {
        transfer: Transfer::Inline,
        trainers: 2,
        ..StackOpts::default()
    }));
    let p = payloads();
    let run_id = "run-887175e515cd3b479f6ae6fb1a76138e";
    let train = TrainRequest {
        dataset: Bytes::from(p.dataset.clone()),
        model_config: Bytes::from(p.model_config.clone()),
        trainer_id: "0".into(),
        run_id: run_id.into(),
        ..Default::default()
    }
    .encode_to_vec();
    let reduce = ReduceRequest {
        run_id: run_id.into(),
        model_pred_tuples: vec![ModelPredTuple {
            model: Bytes::from(p.model.clone()),
            predictions: Bytes::from(p.predictions.clone()),
            ..Default::default()
        }],
    }
    .encode_to_vec();
    let metatrain = MetaTrainRequest {
        dataset: Bytes::from(p.dataset.clone()),
        run_id: run_id.into(),
        ..Default::default()
    }
    .encode_to_vec();
    let hello = HelloRequest {
        name: "fuzz".into(),
    }
    .encode_to_vec();
    let targets: [(
        &'static str,
        std::net::SocketAddr,
        Vec<u8>,
        BoxedStrategy<Bytes>,
    ); 4] = [
        (
            "/stacking.Trainer/Train",
            stack.trainer,
            train.clone(),
            bodies(train, train_requests(&p)),
        ),
        (
            "/stacking.Reducer/Reduce",
            stack.reducer,
            reduce.clone(),
            bodies(reduce, reduce_requests(&p)),
        ),
        (
            "/stacking.Metatrainer/Metatrain",
            stack.metatrainer,
            metatrain.clone(),
            bodies(metatrain, metatrain_requests(&p)),
        ),
        (
            "/helloworld.Greeter/SayHello",
            stack.driver,
            hello.clone(),
            bodies(
                hello,
                text().prop_map(|name| HelloRequest { name }.encode_to_vec()),
            ),
        ),
    ];
    let not_protobuf = AtomicUsize::new(0);
    for (path, addr, valid, strategy) in targets {
        let grpc = tonic::client::Grpc::new(rt.block_on(channel(addr)));
        let mut runner = TestRunner::new(Config {
            // Where the macro would keep a failure's seed: replayed first
            // on the next run.
            source_file: Some(file!()),
            failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel(
                "proptest-regressions",
            ))),
            ..mutation::config(150)
        });
        let outcome = runner.run(&strategy, |body| {
            let mut grpc = grpc.clone();
            if let Err(status) = rt.block_on(call(&mut grpc, path, body)) {
                if matches!(
                    status.code(),
                    Code::Internal | Code::Unknown | Code::Cancelled
                ) {
                    return Err(TestCaseError::fail(format!("{path}: {status:?}")));
                }
                if status.code() == Code::InvalidArgument
                    && status.message().contains("not a valid protobuf message")
                {
                    not_protobuf.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(())
        });
        if let Err(e) = outcome {
            panic!("{e}");
        }
        // Still serving: the valid message is answered (or refused for its content).
        let mut grpc = grpc.clone();
        if let Err(status) = rt.block_on(call(&mut grpc, path, Bytes::from(valid))) {
            assert!(
                !matches!(
                    status.code(),
                    Code::Internal | Code::Unknown | Code::Unavailable | Code::Cancelled
                ),
                "{path} after fuzzing: {status:?}"
            );
        }
    }
    assert!(
        not_protobuf.load(Ordering::Relaxed) > 0,
        "no malformed body was refused as INVALID_ARGUMENT"
    );
    let reply = rt
        .block_on(stack.say_hello())
        .expect("a full run after fuzzing");
    assert!(reply.message.contains("trainers=2"));
    rt.block_on(stack.stop());
}
