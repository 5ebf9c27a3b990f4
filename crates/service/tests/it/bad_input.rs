//! Bad input gets the right status and a message naming the problem, and the
//! function serves the next good request.

use crate::support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use stacking_service::pb::stacking::metatrainer_client::MetatrainerClient;
use stacking_service::pb::stacking::reducer_client::ReducerClient;
use stacking_service::pb::stacking::trainer_client::TrainerClient;
use stacking_service::pb::stacking::{MetaTrainRequest, ReduceRequest, TrainRequest};
use stacking_service::Transfer;
use stacking_service::{Route, RunPlan};
use support::requests::*;
use support::*;
use tonic::Code;

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
    let good = train_inline(data.clone(), lasso());
    let cases: Vec<(TrainRequest, Code, &str)> = vec![
        (
            train_inline(data.clone(), Bytes::from_static(b"\x80\x04\x95pickle")),
            Code::InvalidArgument,
            "JSON",
        ),
        (
            train_inline(data.clone(), Bytes::from_static(br#"{"model": "SVC"}"#)),
            Code::InvalidArgument,
            "SVC",
        ),
        (
            train_inline(
                data.clone(),
                Bytes::from_static(br#"{"model": "Lasso", "params": {"alpah": 1}}"#),
            ),
            Code::InvalidArgument,
            "alpah",
        ),
        (
            train_inline(
                data.clone(),
                Bytes::from_static(br#"{"model": "Lasso", "params": {"alpha": "x"}}"#),
            ),
            Code::InvalidArgument,
            "alpha",
        ),
        (
            train_inline(data.clone(), Bytes::new()),
            Code::InvalidArgument,
            "model_config is empty",
        ),
        (
            train_inline(Bytes::new(), lasso()),
            Code::InvalidArgument,
            "no dataset",
        ),
        (
            train_inline(data.slice(..data.len() / 2), lasso()),
            Code::InvalidArgument,
            "dataset",
        ),
        (
            train_inline(Bytes::from_static(b"not numpy at all"), lasso()),
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
    let status = trainer.train(train_inline(big, lasso())).await.unwrap_err();
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

    let missing = train_stored(
        "run-098f6bcd4621d373cade4e832627b4f6",
        "run-098f6bcd4621d373cade4e832627b4f6/dataset",
        0,
    );
    expect(
        trainer.train(missing).await,
        Code::NotFound,
        "run-098f6bcd4621d373cade4e832627b4f6/dataset",
    )
    .await;

    expect(
        reducer.reduce(ReduceRequest::default()).await,
        Code::InvalidArgument,
        "zero trainers",
    )
    .await;
    expect(
        reducer
            .reduce(reduce_stored(
                "",
                &[(
                    "run-9dd4e461268c8034f5c8564e155c67a6/model_0",
                    "run-9dd4e461268c8034f5c8564e155c67a6/pred_0",
                )],
            ))
            .await,
        Code::NotFound,
        "run-9dd4e461268c8034f5c8564e155c67a6/model_0",
    )
    .await;

    // Two trainers on different datasets: their prediction lengths differ.
    let small = small_dataset();
    store
        .put(
            "run-415290769594460e2e485922904f345d/dataset",
            Bytes::from(small.to_bytes()),
        )
        .await
        .unwrap();
    let other = stacking_core::dataset::make_classification(&stacking_core::GeneratorParams {
        n_samples: 100,
        n_features: 64,
        ..Default::default()
    })
    .unwrap();
    store
        .put(
            "run-fbade9e36a3f36d3d676c1b808451dd7/dataset",
            Bytes::from(other.to_bytes()),
        )
        .await
        .unwrap();
    // The same other dataset inside run-415290769594460e2e485922904f345d, for a metatrainer given run-415290769594460e2e485922904f345d's models.
    store
        .put(
            "run-415290769594460e2e485922904f345d/other-dataset",
            Bytes::from(other.to_bytes()),
        )
        .await
        .unwrap();
    let a = trainer
        .train(train_stored(
            "run-415290769594460e2e485922904f345d",
            "run-415290769594460e2e485922904f345d/dataset",
            0,
        ))
        .await
        .unwrap()
        .into_inner();
    let b = trainer
        .train(train_stored(
            "run-415290769594460e2e485922904f345d",
            "run-415290769594460e2e485922904f345d/other-dataset",
            1,
        ))
        .await
        .unwrap()
        .into_inner();
    let pairs = [
        (a.model_key.as_str(), a.pred_key.as_str()),
        (b.model_key.as_str(), b.pred_key.as_str()),
    ];
    expect(
        reducer
            .reduce(reduce_stored(
                "run-415290769594460e2e485922904f345d",
                &pairs,
            ))
            .await,
        Code::InvalidArgument,
        "prediction vector 1 has 100 entries",
    )
    .await;

    // Meta features that do not fit the dataset.
    let one = reducer
        .reduce(reduce_stored(
            "run-415290769594460e2e485922904f345d",
            &[(&a.model_key, &a.pred_key)],
        ))
        .await
        .unwrap()
        .into_inner();
    let stored = |dataset_key: &str| {
        metatrain_stored(
            "run-415290769594460e2e485922904f345d",
            dataset_key,
            &one.models_key,
            &one.meta_features_key,
        )
    };
    let req = stored("run-415290769594460e2e485922904f345d/other-dataset");
    expect(
        meta.metatrain(req).await,
        Code::InvalidArgument,
        "meta_features is 120 x 1",
    )
    .await;
    let bad_meta = MetaTrainRequest {
        model_config: lasso(),
        ..stored("run-415290769594460e2e485922904f345d/dataset")
    };
    expect(
        meta.metatrain(bad_meta).await,
        Code::InvalidArgument,
        "LogisticRegression",
    )
    .await;
    let garbage_key = "run-415290769594460e2e485922904f345d/garbage-models";
    store
        .put(garbage_key, Bytes::from_static(b"garbage"))
        .await
        .unwrap();
    let garbage_models = MetaTrainRequest {
        models_key: garbage_key.into(),
        ..stored("run-415290769594460e2e485922904f345d/dataset")
    };
    expect(
        meta.metatrain(garbage_models).await,
        Code::InvalidArgument,
        "models",
    )
    .await;
    // and a good one still works
    let reply = meta
        .metatrain(stored("run-415290769594460e2e485922904f345d/dataset"))
        .await
        .unwrap()
        .into_inner();
    assert!(reply.score.parse::<f64>().unwrap() > 0.5);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_down_is_unavailable_within_bounded_time() {
    // A port nothing listens on.
    let closed = stacking_testkit::process::free_port().unwrap();
    let endpoint = format!("http://127.0.0.1:{closed}");
    let store = std::sync::Arc::new(
        stacking_storage::s3::open(&config(&endpoint, ACCESS, SECRET)).unwrap(),
    );
    // The run's cleanup cannot reach the store either: `stop` waits for it
    // no longer than the drain timeout.
    let drain_timeout = Duration::from_secs(1);
    let stack = start(StackOpts {
        transfer: Transfer::S3,
        store: Some(store),
        drain_timeout,
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
        .train(train_stored(
            "run-098f6bcd4621d373cade4e832627b4f6",
            "run-098f6bcd4621d373cade4e832627b4f6/dataset",
            0,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    let stopping = Instant::now();
    stack.stop().await;
    assert!(
        stopping.elapsed() < drain_timeout + Duration::from_secs(5),
        "{:?}",
        stopping.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_trainer_is_unavailable() {
    let stack = start(StackOpts::default()).await;
    let closed = stacking_testkit::process::free_port().unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], closed));
    let driver = stacking_service::driver::Driver::new(
        stacking_service::driver::DriverConfig::new(
            addr.to_string(),
            stack.reducer.to_string(),
            stack.metatrainer.to_string(),
            RunPlan {
                trainers: 2,
                max_message_bytes: 64 << 20,
                // The connect retries stop at the call's deadline.
                call_timeout: Duration::from_secs(2),
                ..RunPlan::default()
            },
        ),
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
/// HTTP; it scores exactly as the core does with the whole dataset, and a
/// stored dataset whose labels are missing or followed by junk is refused.
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
    // Labels longer than the end read beside the header: a second read.
    let tall = stacking_core::dataset::make_classification(&stacking_core::GeneratorParams {
        n_samples: 9000,
        n_features: 4,
        weights: vec![0.5],
        ..Default::default()
    })
    .unwrap();
    for (run, ds) in [
        ("run-d861877da56b8b4ceb35c8cbfdf65bb4", small_dataset()),
        ("run-d60cadf1a41c651e1f0ade50136bad43", tiny),
        ("run-5a1e2b3c4d5e6f708192a3b4c5d6e7f8", tall),
    ] {
        let wire = Bytes::from(ds.to_bytes());
        let key = format!("{run}/dataset");
        store.put(&key, wire.clone()).await.unwrap();
        let trained = trainer
            .train(train_stored(run, &key, 0))
            .await
            .unwrap()
            .into_inner();
        let reduced = reducer
            .reduce(reduce_stored(
                run,
                &[(&trained.model_key, &trained.pred_key)],
            ))
            .await
            .unwrap()
            .into_inner();
        let request = |dataset: Bytes, dataset_key: &str| MetaTrainRequest {
            dataset,
            ..metatrain_stored(
                run,
                dataset_key,
                &reduced.models_key,
                &reduced.meta_features_key,
            )
        };
        let by_key = meta.metatrain(request(Bytes::new(), &key)).await.unwrap();
        // The same score as the core computes from the whole dataset.
        let meta_features = store.get(&reduced.meta_features_key).await.unwrap();
        let models = store.get(&reduced.models_key).await.unwrap();
        let whole = stacking_core::stack::train_level1(
            &stacking_core::config::default_meta(),
            stacking_core::npy::decode_f64_2d(&meta_features)
                .unwrap()
                .view(),
            ds.y().view(),
        )
        .unwrap();
        assert_eq!(by_key.get_ref().score, whole.auc.to_string(), "{run}");
        let read = by_key.get_ref().stats.as_ref().unwrap().storage_read_bytes;
        let dataset_read = read - (meta_features.len() + models.len()) as u64;
        let labels = (wire.len() - ds.x_npy().len()) as u64;
        // The features' header and the object's last 64 KiB, at once; the
        // rest of the labels only when they are longer.
        let (w, suffix) = (wire.len() as u64, 64 << 10);
        let expected = w.min(4096) + w.min(suffix) + if labels > suffix { labels } else { 0 };
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
