//! Callers never share a key, and nothing is stored that no cleanup can
//! reach: two callers without a run id (the original driver's way) run whole
//! pipelines at once without touching each other's objects, every key lands
//! under a run prefix `gc` recognises, and a driver and workers that
//! disagree on the transfer are refused before any worker stores anything.

use crate::support;

use std::sync::Arc;

use bytes::Bytes;
use stacking_service::context::is_run_id;
use stacking_service::driver::{Driver, DriverConfig};
use stacking_service::pb::stacking::metatrainer_client::MetatrainerClient;
use stacking_service::pb::stacking::reducer_client::ReducerClient;
use stacking_service::pb::stacking::trainer_client::TrainerClient;
use stacking_service::pb::stacking::{
    MetaTrainRequest, ModelPredTuple, ReduceRequest, TrainRequest,
};
use stacking_service::server::Role;
use stacking_service::{Context, Route, RunPlan};
use support::*;
use tonic::Code;

/// The three workers' addresses.
#[derive(Clone, Copy)]
struct Workers {
    trainer: std::net::SocketAddr,
    reducer: std::net::SocketAddr,
    metatrainer: std::net::SocketAddr,
}

/// One pipeline as the original driver calls it: no run id, every key taken
/// from the replies. Returns the full model's key and every key it was given.
async fn original_pipeline(
    workers: Workers,
    dataset_key: &str,
    config: &str,
) -> (String, Vec<String>) {
    let mut trainer = TrainerClient::new(channel(workers.trainer).await);
    let mut reducer = ReducerClient::new(channel(workers.reducer).await);
    let mut meta = MetatrainerClient::new(channel(workers.metatrainer).await);
    let mut tuples = Vec::new();
    let mut keys = Vec::new();
    for i in 0..2 {
        let reply = trainer
            .train(TrainRequest {
                dataset_key: dataset_key.into(),
                model_config: Bytes::from(config.to_string()),
                trainer_id: i.to_string(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        keys.extend([reply.model_key.clone(), reply.pred_key.clone()]);
        tuples.push(ModelPredTuple {
            model_key: reply.model_key,
            pred_key: reply.pred_key,
            ..Default::default()
        });
    }
    let reduced = reducer
        .reduce(ReduceRequest {
            model_pred_tuples: tuples,
            run_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    keys.extend([
        reduced.models_key.clone(),
        reduced.meta_features_key.clone(),
    ]);
    let full = meta
        .metatrain(MetaTrainRequest {
            dataset_key: dataset_key.into(),
            models_key: reduced.models_key,
            meta_features_key: reduced.meta_features_key,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    keys.extend([
        full.model_full_key.clone(),
        full.meta_predictions_key.clone(),
    ]);
    (full.model_full_key, keys)
}

/// Two concurrent Train -> Reduce -> Metatrain pipelines without run ids,
/// on datasets of the same shape and different models, wrote the same flat
/// keys and built one result from the other's model. Now each call writes
/// under a run prefix of its own, and each full model holds its own models.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_without_a_run_id_never_share_a_key() {
    let s3 = S3Server::start().await;
    let store = s3.store();
    let ctx = Context::new(Route::s3(store.clone()), 2, 2);
    let workers = Workers {
        trainer: serve_on_loopback(Role::Trainer(ctx.clone())).await,
        reducer: serve_on_loopback(Role::Reducer(ctx.clone())).await,
        metatrainer: serve_on_loopback(Role::Metatrainer(ctx)).await,
    };
    let data = Bytes::from(small_dataset().to_bytes());
    store.put("dataset", data).await.unwrap();
    let lasso = r#"{"model": "Lasso", "params": {"alpha": 0.1}}"#;
    let knn = r#"{"model": "KNeighborsRegressor", "params": {"n_neighbors": 5}}"#;
    let (a, b) = tokio::join!(
        original_pipeline(workers, "dataset", lasso),
        original_pipeline(workers, "dataset", knn)
    );
    let (full_a, keys_a) = a;
    let (full_b, keys_b) = b;
    for key in keys_a.iter().chain(&keys_b) {
        let (prefix, _) = key.split_once('/').unwrap();
        assert!(is_run_id(prefix), "{key} is not under a run prefix");
    }
    for key in &keys_a {
        assert!(!keys_b.contains(key), "{key} shared");
    }
    for (full, model) in [(full_a, "Lasso"), (full_b, "KNeighborsRegressor")] {
        let bytes = store.get(&full).await.unwrap();
        let full = stacking_core::serial::decode_full(&bytes).unwrap();
        assert!(
            full.level0.iter().all(|m| m.name() == model),
            "{full:?} holds another caller's model"
        );
    }
}

/// A driver with TRANSFER_TYPE=INLINE wired to S3 workers left 36 objects
/// that nothing would delete; the other way round, workers without a store
/// got keys. Both are refused before any worker stores anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_mismatch_is_refused_before_anything_is_stored() {
    let s3 = S3Server::start().await;
    let store = s3.store();
    for (driver_route, worker_route) in [
        (Route::Inline, Route::s3(store.clone())),
        (Route::s3(store.clone()), Route::Inline),
    ] {
        let worker = |role: fn(Context) -> Role| {
            let ctx = Context::new(worker_route.clone(), 2, 2);
            serve_on_loopback(role(ctx))
        };
        let trainer = worker(Role::Trainer).await;
        let reducer = worker(Role::Reducer).await;
        let metatrainer = worker(Role::Metatrainer).await;
        let cfg = DriverConfig::new(
            trainer.to_string(),
            reducer.to_string(),
            metatrainer.to_string(),
            RunPlan {
                trainers: 2,
                ..RunPlan::default()
            },
        );
        let ds = small_dataset();
        let driver = Driver::new(
            cfg,
            Context::new(driver_route, 2, 2),
            Bytes::from(ds.to_bytes()),
            ds.n_samples(),
        )
        .unwrap();
        let driver = Arc::new(driver);
        let e = driver.run().await.unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition, "{e}");
        assert!(e.to_string().contains("same TRANSFER_TYPE"), "{e}");
        assert!(
            eventually(std::time::Duration::from_secs(10), || s3.object_count()
                == 0)
            .await,
            "{} objects left",
            s3.object_count()
        );
    }
}

/// 2,000 pairs that all named one stored pair made 4,002 S3 requests, and
/// 20,000 made 38,770 until the deadline. Each stored key is now read once,
/// and a Reduce takes at most as many pairs as a model list holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reduce_reads_each_stored_key_once_and_its_pairs_are_bounded() {
    let s3 = S3Server::start().await;
    let store = s3.store();
    let ctx = Context::new(Route::s3(store.clone()), 2, 2);
    let trainer = serve_on_loopback(Role::Trainer(ctx.clone())).await;
    let reducer = serve_on_loopback(Role::Reducer(ctx)).await;
    let run = "run-3c9d2f0e8a7b6c5d4e3f2a1b0c9d8e7f";
    let dataset = format!("{run}/dataset");
    store
        .put(&dataset, Bytes::from(small_dataset().to_bytes()))
        .await
        .unwrap();
    let trained = TrainerClient::new(channel(trainer).await)
        .train(support::requests::train_stored(run, &dataset, 0))
        .await
        .unwrap()
        .into_inner();
    let pair = (trained.model_key.as_str(), trained.pred_key.as_str());
    let mut reducer =
        ReducerClient::new(channel(reducer).await).max_decoding_message_size(64 << 20);
    let before = s3.request_count();
    let reply = reducer
        .reduce(support::requests::reduce_stored(run, &vec![pair; 2_000]))
        .await
        .unwrap()
        .into_inner();
    // Two reads, and the two results written.
    assert_eq!(s3.request_count() - before, 4, "{reply:?}");
    let too_many = vec![pair; stacking_core::serial::MAX_LIST_MODELS + 1];
    let before = s3.request_count();
    let status = reducer
        .reduce(support::requests::reduce_stored(run, &too_many))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
    assert!(
        status.message().contains("more than the 65536"),
        "{}",
        status.message()
    );
    assert_eq!(s3.request_count(), before);
}
