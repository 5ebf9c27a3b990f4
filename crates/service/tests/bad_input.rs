//! Bad input gets the right status and a message naming the problem, and the
//! function serves the next good request.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use stacking_service::pb::stacking::metatrainer_client::MetatrainerClient;
use stacking_service::pb::stacking::reducer_client::ReducerClient;
use stacking_service::pb::stacking::trainer_client::TrainerClient;
use stacking_service::pb::stacking::{
    MetaTrainRequest, ModelPredTuple, ReduceRequest, TrainRequest,
};
use stacking_service::Transfer;
use stacking_service::{Route, RunPlan};
use support::*;
use tonic::Code;

fn lasso() -> Bytes {
    Bytes::from_static(br#"{"model": "Lasso", "params": {"alpha": 0.1}}"#)
}

fn train_req(dataset: Bytes, config: Bytes) -> TrainRequest {
    TrainRequest {
        dataset,
        dataset_key: String::new(),
        model_config: config,
        trainer_id: "0".into(),
        run_id: "run-test".into(),
    }
}

type Clients = (
    TrainerClient<tonic::transport::Channel>,
    ReducerClient<tonic::transport::Channel>,
    MetatrainerClient<tonic::transport::Channel>,
);

async fn clients(stack: &stacking_service::local::LocalStack) -> Clients {
    (
        TrainerClient::new(channel(stack.trainer).await),
        ReducerClient::new(channel(stack.reducer).await),
        MetatrainerClient::new(channel(stack.metatrainer).await),
    )
}

async fn expect(result: Result<impl std::fmt::Debug, tonic::Status>, code: Code, needle: &str) {
    let status = result.expect_err("the request should fail");
    assert_eq!(status.code(), code, "{}", status.message());
    assert!(
        status.message().contains(needle),
        "message {:?} should name {needle:?}",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trainer_rejects_bad_configs_and_datasets_then_still_serves() {
    let stack = start(StackOpts::default()).await;
    let mut trainer =
        TrainerClient::new(channel(stack.trainer).await).max_decoding_message_size(64 << 20);
    let data = Bytes::from(small_dataset().to_bytes());
    let good = train_req(data.clone(), lasso());
    let cases: Vec<(TrainRequest, Code, &str)> = vec![
        (
            train_req(data.clone(), Bytes::from_static(b"\x80\x04\x95pickle")),
            Code::InvalidArgument,
            "JSON",
        ),
        (
            train_req(data.clone(), Bytes::from_static(br#"{"model": "SVC"}"#)),
            Code::InvalidArgument,
            "SVC",
        ),
        (
            train_req(
                data.clone(),
                Bytes::from_static(br#"{"model": "Lasso", "params": {"alpah": 1}}"#),
            ),
            Code::InvalidArgument,
            "alpah",
        ),
        (
            train_req(
                data.clone(),
                Bytes::from_static(br#"{"model": "Lasso", "params": {"alpha": "x"}}"#),
            ),
            Code::InvalidArgument,
            "alpha",
        ),
        (
            train_req(data.clone(), Bytes::new()),
            Code::InvalidArgument,
            "model_config is empty",
        ),
        (
            train_req(Bytes::new(), lasso()),
            Code::InvalidArgument,
            "no dataset",
        ),
        (
            train_req(data.slice(..data.len() / 2), lasso()),
            Code::InvalidArgument,
            "dataset",
        ),
        (
            train_req(Bytes::from_static(b"not numpy at all"), lasso()),
            Code::InvalidArgument,
            "not a .npy file",
        ),
        (
            TrainRequest {
                trainer_id: "../etc".into(),
                ..good.clone()
            },
            Code::InvalidArgument,
            "trainer_id",
        ),
    ];
    for (req, code, needle) in cases {
        expect(trainer.train(req).await, code, needle).await;
        // the function is still up and serves a good request
        let ok = trainer.train(good.clone()).await.unwrap().into_inner();
        assert_eq!(ok.model_name, "Lasso");
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_are_refused() {
    let stack = start(StackOpts {
        max_message_bytes: 64 << 10,
        ..Default::default()
    })
    .await;
    let mut trainer =
        TrainerClient::new(channel(stack.trainer).await).max_encoding_message_size(usize::MAX);
    let big = Bytes::from(vec![7u8; 200 << 10]);
    let status = trainer.train(train_req(big, lasso())).await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{}", status.message());
    assert!(
        status.message().contains("message length too large"),
        "{}",
        status.message()
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_keys_zero_trainers_and_mismatched_shapes() {
    let store = memory_store();
    let stack = start(StackOpts {
        transfer: Transfer::S3,
        store: Some(store.clone()),
        ..Default::default()
    })
    .await;
    let (mut trainer, mut reducer, mut meta) = clients(&stack).await;

    let missing = TrainRequest {
        dataset_key: "run-test/dataset".into(),
        ..train_req(Bytes::new(), lasso())
    };
    expect(
        trainer.train(missing).await,
        Code::NotFound,
        "run-test/dataset",
    )
    .await;

    expect(
        reducer.reduce(ReduceRequest::default()).await,
        Code::InvalidArgument,
        "zero trainers",
    )
    .await;
    let tuple = ModelPredTuple {
        model_key: "run-x/model_0".into(),
        pred_key: "run-x/pred_0".into(),
        ..Default::default()
    };
    expect(
        reducer
            .reduce(ReduceRequest {
                model_pred_tuples: vec![tuple],
                run_id: String::new(),
            })
            .await,
        Code::NotFound,
        "run-x/model_0",
    )
    .await;

    // Two trainers on different datasets: their prediction lengths differ.
    let small = small_dataset();
    store
        .put("run-y/dataset", Bytes::from(small.to_bytes()))
        .await
        .unwrap();
    let other = stacking_core::dataset::make_classification(&stacking_core::GeneratorParams {
        n_samples: 100,
        n_features: 64,
        ..Default::default()
    })
    .unwrap();
    store
        .put("run-z/dataset", Bytes::from(other.to_bytes()))
        .await
        .unwrap();
    // The same other dataset inside run-y, for a metatrainer given run-y's models.
    store
        .put("run-y/other-dataset", Bytes::from(other.to_bytes()))
        .await
        .unwrap();
    let a = trainer
        .train(TrainRequest {
            dataset_key: "run-y/dataset".into(),
            run_id: "run-y".into(),
            ..train_req(Bytes::new(), lasso())
        })
        .await
        .unwrap()
        .into_inner();
    let b = trainer
        .train(TrainRequest {
            dataset_key: "run-y/other-dataset".into(),
            run_id: "run-y".into(),
            trainer_id: "1".into(),
            ..train_req(Bytes::new(), lasso())
        })
        .await
        .unwrap()
        .into_inner();
    let tuples = vec![
        ModelPredTuple {
            model_key: a.model_key.clone(),
            pred_key: a.pred_key.clone(),
            ..Default::default()
        },
        ModelPredTuple {
            model_key: b.model_key,
            pred_key: b.pred_key,
            ..Default::default()
        },
    ];
    expect(
        reducer
            .reduce(ReduceRequest {
                model_pred_tuples: tuples,
                run_id: "run-y".into(),
            })
            .await,
        Code::InvalidArgument,
        "prediction vector 1 has 100 entries",
    )
    .await;

    // Meta features that do not fit the dataset.
    let one = reducer
        .reduce(ReduceRequest {
            model_pred_tuples: vec![ModelPredTuple {
                model_key: a.model_key,
                pred_key: a.pred_key,
                ..Default::default()
            }],
            run_id: "run-y".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let req = MetaTrainRequest {
        dataset_key: "run-y/other-dataset".into(),
        models_key: one.models_key.clone(),
        meta_features_key: one.meta_features_key.clone(),
        run_id: "run-y".into(),
        ..Default::default()
    };
    expect(
        meta.metatrain(req).await,
        Code::InvalidArgument,
        "meta_features is 120 x 1",
    )
    .await;
    let bad_meta = MetaTrainRequest {
        dataset_key: "run-y/dataset".into(),
        models_key: one.models_key.clone(),
        meta_features_key: one.meta_features_key.clone(),
        model_config: lasso(),
        run_id: "run-y".into(),
        ..Default::default()
    };
    expect(
        meta.metatrain(bad_meta).await,
        Code::InvalidArgument,
        "LogisticRegression",
    )
    .await;
    let garbage_models = MetaTrainRequest {
        dataset_key: "run-y/dataset".into(),
        models: Bytes::from_static(b"garbage"),
        meta_features_key: one.meta_features_key.clone(),
        run_id: "run-y".into(),
        ..Default::default()
    };
    expect(
        meta.metatrain(garbage_models).await,
        Code::InvalidArgument,
        "models",
    )
    .await;
    // and a good one still works
    let good = MetaTrainRequest {
        dataset_key: "run-y/dataset".into(),
        models_key: one.models_key,
        meta_features_key: one.meta_features_key,
        run_id: "run-y".into(),
        ..Default::default()
    };
    let reply = meta.metatrain(good).await.unwrap().into_inner();
    assert!(reply.score.parse::<f64>().unwrap() > 0.5);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_down_is_unavailable_within_bounded_time() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let store = std::sync::Arc::new(
        stacking_storage::s3::open(&config(&endpoint, ACCESS, SECRET)).unwrap(),
    );
    let stack = start(StackOpts {
        transfer: Transfer::S3,
        store: Some(store),
        ..Default::default()
    })
    .await;
    let started = Instant::now();
    let status = stack.say_hello().await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{}", status.message());
    assert!(status.message().contains(&endpoint), "{}", status.message());
    // bounded by the store's retry budget (2 s here), not a hang
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let mut trainer = TrainerClient::new(channel(stack.trainer).await);
    let status = trainer
        .train(TrainRequest {
            dataset_key: "run-test/dataset".into(),
            ..train_req(Bytes::new(), lasso())
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_trainer_is_unavailable() {
    let stack = start(StackOpts::default()).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let driver = stacking_service::driver::Driver::new(
        stacking_service::driver::DriverConfig {
            trainer_addr: addr.to_string(),
            reducer_addr: stack.reducer.to_string(),
            metatrainer_addr: stack.metatrainer.to_string(),
            plan: RunPlan {
                trainers: 2,
                concurrent: false,
                keep_objects: false,
                max_message_bytes: 64 << 20,
                call_timeout: Duration::from_secs(10),
            },
            stack: Default::default(),
            report: Default::default(),
        },
        stacking_service::Context::new(Route::Inline, 1, 1),
        Bytes::from(small_dataset().to_bytes()),
        120,
    )
    .unwrap();
    let err = driver.run().await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(err.to_string().contains("trainer 0"), "{err}");
    stack.stop().await;
}

/// The metatrainer reads a stored dataset's labels by two ranged GETs over
/// HTTP; it scores exactly as with the whole dataset inline, and a stored
/// dataset whose labels are missing or followed by junk is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metatrainer_reads_only_the_labels_of_a_stored_dataset() {
    let server = S3Server::start().await;
    let store = server.store();
    let stack = start(StackOpts {
        transfer: Transfer::S3,
        store: Some(store.clone()),
        ..Default::default()
    })
    .await;
    let (mut trainer, mut reducer, mut meta) = clients(&stack).await;

    // 120 x 64 (61 KiB: header probe, then the labels) and 40 x 4 (1.5 KiB:
    // the probe holds it all).
    let tiny = stacking_core::dataset::make_classification(&stacking_core::GeneratorParams {
        n_samples: 40,
        n_features: 4,
        weights: vec![0.5],
        ..Default::default()
    })
    .unwrap();
    for (run, ds) in [("run-big", small_dataset()), ("run-tiny", tiny)] {
        let wire = Bytes::from(ds.to_bytes());
        let key = format!("{run}/dataset");
        store.put(&key, wire.clone()).await.unwrap();
        let trained = trainer
            .train(TrainRequest {
                dataset_key: key.clone(),
                run_id: run.into(),
                ..train_req(Bytes::new(), lasso())
            })
            .await
            .unwrap()
            .into_inner();
        let reduced = reducer
            .reduce(ReduceRequest {
                model_pred_tuples: vec![ModelPredTuple {
                    model_key: trained.model_key,
                    pred_key: trained.pred_key,
                    ..Default::default()
                }],
                run_id: run.into(),
            })
            .await
            .unwrap()
            .into_inner();
        let request = |dataset: Bytes, dataset_key: &str| MetaTrainRequest {
            dataset,
            dataset_key: dataset_key.into(),
            models_key: reduced.models_key.clone(),
            meta_features_key: reduced.meta_features_key.clone(),
            run_id: run.into(),
            ..Default::default()
        };
        let by_key = meta.metatrain(request(Bytes::new(), &key)).await.unwrap();
        let inline = meta.metatrain(request(wire.clone(), "")).await.unwrap();
        assert_eq!(by_key.get_ref().score, inline.get_ref().score, "{run}");
        let read = |r: &tonic::Response<stacking_service::pb::stacking::MetaTrainReply>| {
            r.get_ref().stats.as_ref().unwrap().storage_read_bytes
        };
        let dataset_read = read(&by_key) - read(&inline);
        let labels = (wire.len() - ds.x_npy().len()) as u64;
        let expected = if wire.len() <= 4096 {
            wire.len() as u64
        } else {
            4096 + labels
        };
        assert_eq!(dataset_read, expected, "{run}: dataset bytes read");

        let features_only = format!("{run}/features-only");
        store
            .put(&features_only, Bytes::from(ds.x_npy()))
            .await
            .unwrap();
        expect(
            meta.metatrain(request(Bytes::new(), &features_only)).await,
            Code::InvalidArgument,
            "labels after them are missing",
        )
        .await;
        let mut junk = wire.to_vec();
        junk.extend_from_slice(b"junk");
        let junk_key = format!("{run}/junk");
        store.put(&junk_key, Bytes::from(junk)).await.unwrap();
        let status = meta
            .metatrain(request(Bytes::new(), &junk_key))
            .await
            .expect_err("junk after the labels");
        assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
    }
    stack.stop().await;
}
