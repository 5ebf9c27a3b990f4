//! `TRANSFER_TYPE=ELASTICACHE` end to end: the four functions over real gRPC
//! on loopback, data through a real `redis-server` (testkit, stopped by
//! PID). The same runs as the S3 tests, and the key count is back to zero
//! after every run.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use stacking_core::StackConfig;
use stacking_service::driver::RunReport;
use stacking_service::local::{LocalOptions, LocalStack};
use stacking_service::pb::stacking::trainer_client::TrainerClient;
use stacking_service::pb::stacking::TrainRequest;
use stacking_service::Transfer;
use stacking_service::{Route, RunPlan};
use stacking_storage::redis::{self as redis_store, RedisConfig};
use stacking_storage::BlobStore;
use stacking_testkit::redis::RedisServer;
use support::*;
use tonic::Code;

const SKLEARN_TIGHT_AUC_4: f64 = 0.786_232_225_256_615_5;

fn store_for(server: &RedisServer) -> Arc<dyn BlobStore> {
    Arc::new(redis_store::open(&RedisConfig::for_address(&server.address()).unwrap()).unwrap())
}

fn opts(server: &RedisServer, trainers: usize, concurrent: bool) -> StackOpts {
    StackOpts {
        transfer: Transfer::ElastiCache,
        store: Some(store_for(server)),
        trainers,
        concurrent,
        dataset: default_dataset(),
        ..Default::default()
    }
}

async fn report(stack: &LocalStack) -> RunReport {
    let reply = stack.say_hello().await.unwrap();
    serde_json::from_str(&reply.report_json).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_and_sixteen_trainers_sequential_and_concurrent() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut sixteen = Vec::new();
    for (trainers, concurrent) in [(4, false), (4, true), (16, false), (16, true)] {
        let stack = start(opts(&server, trainers, concurrent)).await;
        let r = report(&stack).await;
        stack.stop().await;
        assert_eq!(r.transfer, "ELASTICACHE");
        assert_eq!(r.trainers.len(), trainers);
        assert!(r.bytes.storage_written > 0 && r.bytes.inline_sent == 0);
        if trainers == 4 {
            assert!(
                (r.ensemble_auc - SKLEARN_TIGHT_AUC_4).abs() < 1e-9,
                "{}",
                r.ensemble_auc
            );
        } else {
            sixteen.push(r.ensemble_auc);
        }
        assert_eq!(
            server.key_count(),
            0,
            "{trainers} trainers, concurrent {concurrent}: {:?}",
            server.keys()
        );
    }
    assert_eq!(sixteen[0], sixteen[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_calls_equal_a_lone_call() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let stack = start(opts(&server, 4, true)).await;
    let lone = report(&stack).await;
    let replies = futures::future::join_all((0..8).map(|_| stack.say_hello())).await;
    stack.stop().await;
    let run_ids = same_results_as_lone(replies, &lone);
    assert_eq!(run_ids.len(), 8);
    assert_eq!(server.key_count(), 0, "{:?}", server.keys());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_keys_carry_the_expiry_and_storage_spans_are_recorded() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let spans = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stack = LocalStack::start(LocalOptions {
        route: Route::new(Transfer::ElastiCache, Some(store_for(&server))).unwrap(),
        plan: RunPlan {
            trainers: 4,
            concurrent: false,
            keep_objects: true,
            max_message_bytes: 64 << 20,
            ..RunPlan::default()
        },
        stack: StackConfig::default(),
        dataset: small_dataset(),
        max_jobs: 2,
        threads_per_job: 2,
        spans: Some(spans.clone()),
        zipkin: None,
        report: Default::default(),
        limits: Default::default(),
    })
    .await
    .unwrap();
    let r = report(&stack).await;
    stack.flush_spans().await;
    stack.stop().await;
    // dataset, 4 models, 4 predictions, models, meta_features, model_full,
    // meta_predictions: each with the default one-hour expiry.
    let keys = server.keys();
    assert_eq!(keys.len(), 13, "{keys:?}");
    for key in &keys {
        assert!(key.starts_with(&r.run_id), "{key}");
        let ttl = server.ttl(key);
        assert!((3500..=3600).contains(&ttl), "{key}: TTL {ttl}");
    }
    let names: Vec<String> = spans
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.name.clone())
        .collect();
    let puts = names
        .iter()
        .filter(|n| n.starts_with("storage put"))
        .count();
    let gets = names
        .iter()
        .filter(|n| n.starts_with("storage get"))
        .count();
    assert!(
        puts >= 13 && gets >= 10,
        "puts {puts}, gets {gets}: {names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_key_is_not_found_and_a_dead_server_unavailable() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    // Once the server is gone the run's cleanup cannot reach it: `stop`
    // waits for it no longer than the drain timeout.
    let stack = start(StackOpts {
        drain_timeout: Duration::from_secs(1),
        ..opts(&server, 4, false)
    })
    .await;
    let mut trainer = TrainerClient::new(channel(stack.trainer).await);
    let request = TrainRequest {
        dataset: Bytes::new(),
        dataset_key: "run-098f6bcd4621d373cade4e832627b4f6/dataset".into(),
        model_config: Bytes::from_static(br#"{"model": "Lasso", "params": {"alpha": 0.1}}"#),
        trainer_id: "0".into(),
        run_id: "run-098f6bcd4621d373cade4e832627b4f6".into(),
    };
    let status = trainer.train(request.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{}", status.message());
    assert!(status
        .message()
        .contains("run-098f6bcd4621d373cade4e832627b4f6/dataset"));

    server.kill();
    let status = stack.say_hello().await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{}", status.message());
    assert!(
        status.message().contains("redis://"),
        "{}",
        status.message()
    );
    let status = trainer.train(request).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{}", status.message());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_over_the_value_limit_is_out_of_range_and_leaves_nothing() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let cfg = RedisConfig {
        max_object_bytes: 1 << 20,
        ..RedisConfig::for_address(&server.address()).unwrap()
    };
    let stack = start(StackOpts {
        store: Some(Arc::new(redis_store::open(&cfg).unwrap())),
        ..opts(&server, 4, false)
    })
    .await;
    // The default dataset is 2.4 MiB.
    let status = stack.say_hello().await.unwrap_err();
    stack.stop().await;
    assert_eq!(status.code(), Code::OutOfRange, "{}", status.message());
    assert!(
        status.message().contains("ELASTICACHE_MAX_OBJECT_MB"),
        "{}",
        status.message()
    );
    assert_eq!(server.key_count(), 0, "{:?}", server.keys());
}
