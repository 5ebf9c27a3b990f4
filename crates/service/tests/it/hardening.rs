//! Requests that would run away, callers that give up, peers that hang, and
//! requests that reach outside their run: each ends in bounded time with the
//! right status, stops its work, and leaves no objects behind. Real gRPC
//! servers and a real S3-API server, all on loopback.

use crate::support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use stacking_service::driver::{Driver, DriverConfig};
use stacking_service::pb::helloworld::greeter_client::GreeterClient;
use stacking_service::pb::helloworld::HelloRequest;
use stacking_service::pb::stacking::reducer_client::ReducerClient;
use stacking_service::pb::stacking::trainer_client::TrainerClient;
use stacking_service::pb::stacking::{ModelPredTuple, ReduceRequest, TrainRequest};
use stacking_service::server::Role;
use stacking_service::settings::Limits;
use stacking_service::{Context, Transfer};
use stacking_service::{Route, RunPlan};
use support::*;
use tonic::Code;

/// Many minutes of dual coordinate descent if nothing stops it.
const RUNAWAY_SVR: &[u8] =
    br#"{"model":"LinearSVR","params":{"max_iter":1000000,"tol":1e-15,"C":1000}}"#;

fn runaway_train() -> TrainRequest {
    TrainRequest {
        dataset: dataset_bytes(300, 256),
        dataset_key: String::new(),
        model_config: Bytes::from_static(RUNAWAY_SVR),
        trainer_id: "0".into(),
        run_id: "run-63c762af1ff110e97f8b7cb925d36bf7".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_train_whose_deadline_passes_stops_its_work_and_frees_its_slot() {
    let ctx = Context::new(Route::Inline, 1, 2);
    let addr = serve_on_loopback(Role::Trainer(ctx.clone())).await;
    let mut trainer = TrainerClient::new(channel(addr).await);
    let mut req = tonic::Request::new(runaway_train());
    req.set_timeout(Duration::from_millis(500));
    let status = trainer.train(req).await.unwrap_err();
    assert!(
        matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{status:?}"
    );
    // The abandoned fit ends within a solver step of its caller leaving.
    assert!(
        eventually(Duration::from_secs(10), || ctx.running_computations() == 0).await,
        "the abandoned fit is still running"
    );
    // Its one admission slot is free: a normal Train goes through.
    let ok = TrainRequest {
        model_config: Bytes::from_static(br#"{"model":"Lasso","params":{"alpha":0.1}}"#),
        ..runaway_train()
    };
    trainer
        .train(ok)
        .await
        .expect("a normal Train after the runaway one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compute_budget_turns_into_deadline_exceeded() {
    let limits = Limits {
        compute_budget: Duration::from_secs(1),
        ..Limits::default()
    };
    let ctx = Context::new(Route::Inline, 1, 2).with_limits(limits);
    let addr = serve_on_loopback(Role::Trainer(ctx.clone())).await;
    let mut trainer = TrainerClient::new(channel(addr).await);
    let status = trainer.train(runaway_train()).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        status.message().contains("COMPUTE_BUDGET_S"),
        "{}",
        status.message()
    );
    assert!(eventually(Duration::from_secs(10), || ctx.running_computations() == 0).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_may_not_write_or_read_outside_their_own_run() {
    let s3 = S3Server::start().await;
    let store = s3.store();
    let dataset = Bytes::from(small_dataset().to_bytes());
    let other = "run-795f3202b17cb6bc3d4b771d8c6c9eaf";
    let other_dataset = format!("{other}/dataset");
    store.put(&other_dataset, dataset.clone()).await.unwrap();
    let ctx = Context::new(Route::s3(store.clone()), 2, 2);
    let addr = serve_on_loopback(Role::Trainer(ctx)).await;
    let mut trainer = TrainerClient::new(channel(addr).await);
    let lasso = Bytes::from_static(br#"{"model":"Lasso","params":{"alpha":0.1}}"#);
    // Without a run id, each call writes under a fresh run prefix of its
    // own, ending in the original names: two such callers never share a
    // key, and gc recognises the prefix. Never another run's.
    let call = || TrainRequest {
        dataset: Bytes::new(),
        dataset_key: other_dataset.clone(),
        model_config: lasso.clone(),
        trainer_id: "0".into(),
        run_id: String::new(),
    };
    let first = trainer.train(call()).await.unwrap().into_inner();
    let second = trainer.train(call()).await.unwrap().into_inner();
    for reply in [&first, &second] {
        let (prefix, name) = reply.model_key.split_once('/').unwrap();
        assert!(
            stacking_service::context::is_run_id(prefix),
            "{}",
            reply.model_key
        );
        assert_eq!(name, "model_0");
        assert!(reply.pred_key.starts_with(prefix) && reply.pred_key.ends_with("/pred_0"));
    }
    assert_ne!(first.model_key, second.model_key);
    assert_eq!(
        store.list(&format!("{other}/")).await.unwrap(),
        vec![other_dataset.clone()]
    );
    // With a run id, a key of another run is refused.
    let status = trainer
        .train(TrainRequest {
            dataset: Bytes::new(),
            dataset_key: other_dataset.clone(),
            model_config: lasso,
            trainer_id: "0".into(),
            run_id: "run-918b81db5e91d031548b963c93845e5b".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("outside run"),
        "{}",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reducer_refuses_predictions_that_are_not_finite() {
    let stack = start(StackOpts::default()).await;
    let mut reducer = ReducerClient::new(channel(stack.reducer).await);
    let model = {
        let ds = small_dataset();
        let spec = stacking_core::config::default_level0()[1].clone();
        let fitted = spec.fit(ds.x().view(), ds.y().view()).unwrap();
        Bytes::from(stacking_core::serial::encode_model(&fitted).expect("encode"))
    };
    for bad in [f64::NAN, f64::INFINITY] {
        let mut preds = ndarray::Array1::<f64>::zeros(120);
        preds[7] = bad;
        let status = reducer
            .reduce(ReduceRequest {
                model_pred_tuples: vec![ModelPredTuple {
                    model_key: String::new(),
                    pred_key: String::new(),
                    model: model.clone(),
                    predictions: Bytes::from(stacking_core::npy::encode_f64_1d(&preds)),
                }],
                run_id: "run-a3d2de7675556553a5f08e4c88d2c228".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("row 7"), "{}", status.message());
    }
}

/// A driver over S3 whose trainer, reducer and metatrainer are at the given
/// addresses, serving on loopback; returns its address.
async fn driver_with(
    store: Arc<dyn stacking_storage::BlobStore>,
    trainer: SocketAddr,
    reducer: SocketAddr,
    metatrainer: SocketAddr,
    trainers: usize,
) -> SocketAddr {
    let plan = RunPlan {
        trainers,
        concurrent: true,
        max_message_bytes: 64 << 20,
        ..RunPlan::default()
    };
    let cfg = DriverConfig::new(
        trainer.to_string(),
        reducer.to_string(),
        metatrainer.to_string(),
        plan,
    );
    let ds = default_dataset();
    let ctx = Context::new(Route::s3(store), 2, 2);
    let driver = Driver::new(cfg, ctx, Bytes::from(ds.to_bytes()), ds.n_samples()).unwrap();
    serve_on_loopback(Role::Driver(Arc::new(driver))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn say_hello_cancelled_by_short_deadlines_leaves_no_objects() {
    let s3 = S3Server::start().await;
    let stack = start(StackOpts {
        transfer: Transfer::S3,
        store: Some(s3.store()),
        ..StackOpts::default()
    })
    .await;
    let driver = driver_with(
        s3.store(),
        stack.trainer,
        stack.reducer,
        stack.metatrainer,
        16,
    )
    .await;
    let mut greeter = GreeterClient::new(channel(driver).await);
    // 16 trainers on the default dataset take well over 50 ms here; the
    // longer deadlines may cut the run anywhere, or let it finish.
    for ms in [50, 150, 300] {
        let mut req = tonic::Request::new(HelloRequest { name: "x".into() });
        req.set_timeout(Duration::from_millis(ms));
        match within(Duration::from_secs(30), greeter.say_hello(req)).await {
            Err(status) => assert!(
                matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded),
                "{ms} ms: {status:?}"
            ),
            Ok(_) => assert_ne!(ms, 50, "16 trainers finished within 50 ms"),
        }
    }
    // Cleanup runs detached from the cancelled requests, then sweeps again.
    let grace = stacking_service::driver::LATE_WRITE_GRACE + Duration::from_secs(10);
    assert!(
        eventually(grace, || s3.object_count() == 0).await,
        "{} objects left",
        s3.object_count()
    );
    // And a full run still works and cleans up after itself.
    let reply = greeter
        .say_hello(HelloRequest { name: "y".into() })
        .await
        .unwrap();
    assert!(reply.into_inner().message.contains("trainers=16"));
    // The cleanup runs after the answer.
    assert!(
        eventually(Duration::from_secs(10), || s3.object_count() == 0).await,
        "{} objects left after a full run",
        s3.object_count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_answers_is_unavailable_in_bounded_time() {
    let s3 = S3Server::start().await;
    let stack = start(StackOpts {
        transfer: Transfer::S3,
        store: Some(s3.store()),
        ..StackOpts::default()
    })
    .await;
    let silent = stacking_testkit::process::silent_peer().await.unwrap();
    let driver = driver_with(s3.store(), stack.trainer, stack.reducer, silent, 4).await;
    let mut greeter = GreeterClient::new(channel(driver).await);
    // Keepalive notices the silence in about 5 s; one retry, then UNAVAILABLE.
    let status = within(
        Duration::from_secs(60),
        greeter.say_hello(HelloRequest { name: "x".into() }),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("Metatrain"),
        "{}",
        status.message()
    );
    let grace = stacking_service::driver::LATE_WRITE_GRACE + Duration::from_secs(10);
    assert!(
        eventually(grace, || s3.object_count() == 0).await,
        "{} objects left",
        s3.object_count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_requests_are_bounded_by_bytes_not_by_count() {
    // Three computing slots, but room for only one 4.9 MB request at a time.
    let limits = Limits {
        memory_budget_bytes: 8 << 20,
        ..Limits::default()
    };
    let ctx = Context::new(Route::Inline, 3, 1).with_limits(limits);
    let addr = serve_on_loopback(Role::Trainer(ctx.clone())).await;
    let trainer = TrainerClient::new(channel(addr).await);
    let lasso = Bytes::from_static(br#"{"model":"Lasso","params":{"alpha":0.1}}"#);
    let request = |dataset: Bytes, id: usize| TrainRequest {
        dataset,
        dataset_key: String::new(),
        model_config: lasso.clone(),
        trainer_id: id.to_string(),
        run_id: "run-2f212049ce79d2b949fd242043004288".into(),
    };

    // A message larger than the whole budget is refused before it is read.
    let status = trainer
        .clone()
        .train(request(dataset_bytes(1100, 1024), 0))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("MEMORY_BUDGET_MB"),
        "{}",
        status.message()
    );

    // Three that fit one at a time all succeed, one after another.
    let most_at_once = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sampling = tokio::spawn({
        let (ctx, most) = (ctx.clone(), Arc::clone(&most_at_once));
        async move {
            loop {
                most.fetch_max(
                    ctx.running_computations(),
                    std::sync::atomic::Ordering::Relaxed,
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    let medium = dataset_bytes(600, 1024);
    let calls = (1..=3).map(|id| {
        let mut client = trainer.clone();
        let req = request(medium.clone(), id);
        async move { client.train(req).await }
    });
    for reply in futures::future::join_all(calls).await {
        reply.expect("a request within the budget");
    }
    sampling.abort();
    assert_eq!(
        most_at_once.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "requests over the memory budget computed at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_call_leaves_no_objects_and_stops_the_work() {
    let s3 = S3Server::start().await;
    let ctx = Context::new(Route::s3(s3.store()), 2, 2);
    let trainer = serve_on_loopback(Role::Trainer(ctx.clone())).await;
    let stack = start(StackOpts {
        transfer: Transfer::S3,
        store: Some(s3.store()),
        ..StackOpts::default()
    })
    .await;
    let driver = driver_with(s3.store(), trainer, stack.reducer, stack.metatrainer, 16).await;
    for after_ms in [30, 120] {
        // Its own connection, dropped with the call: the server sees it close.
        let mut greeter = GreeterClient::new(channel(driver).await);
        let call = tokio::spawn(async move {
            greeter
                .say_hello(HelloRequest {
                    name: "gone".into(),
                })
                .await
        });
        tokio::time::sleep(Duration::from_millis(after_ms)).await;
        call.abort();
        let _ = call.await;
    }
    assert!(
        eventually(Duration::from_secs(10), || ctx.running_computations() == 0).await,
        "abandoned Train work is still running"
    );
    let grace = stacking_service::driver::LATE_WRITE_GRACE + Duration::from_secs(10);
    assert!(
        eventually(grace, || s3.object_count() == 0).await,
        "{} objects left",
        s3.object_count()
    );
}

/// An inline driver of `plan` on the default dataset whose workers' address
/// has nothing listening: any call it made would be `UNAVAILABLE`, so a run
/// that fails otherwise was refused before any work.
fn inline_driver_of_nothing(plan: RunPlan) -> Driver {
    let closed = format!(
        "127.0.0.1:{}",
        stacking_testkit::process::free_port().unwrap()
    );
    let cfg = DriverConfig::new(closed.clone(), closed.clone(), closed, plan);
    let ds = default_dataset();
    let ctx = Context::new(Route::Inline, 2, 2);
    Driver::new(cfg, ctx, Bytes::from(ds.to_bytes()), ds.n_samples()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inline_run_too_large_for_one_message_is_refused_before_any_work() {
    let driver = inline_driver_of_nothing(RunPlan {
        trainers: 512,
        concurrent: true,
        max_message_bytes: 256 << 20,
        ..RunPlan::default()
    });
    let e = driver.run().await.unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange, "{e}");
    let message = e.to_string();
    assert!(
        message.contains("512 trainers") && message.contains("GRPC_MAX_MESSAGE_MB"),
        "{message}"
    );
}

/// The 30,000-row preset's case, scaled down: every message but `Metatrain`
/// (the dataset plus the KNN model, which holds the training rows) fits, so
/// only a check of that message refuses it before the trainers run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inline_metatrain_over_the_limit_is_refused_before_any_work() {
    let dataset = Bytes::from(default_dataset().to_bytes());
    // Train (the dataset) and Reduce (the KNN model and predictions) fit in
    // 4 MiB; Metatrain (both) does not.
    assert!(dataset.len() < 3 << 20 && 2 * dataset.len() > 4 << 20);
    let driver = inline_driver_of_nothing(RunPlan {
        max_message_bytes: 4 << 20,
        ..RunPlan::default()
    });
    let e = driver.run().await.unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange, "{e}");
    let message = e.to_string();
    assert!(
        message.contains("Metatrain")
            && message.contains("300 x 1024")
            && message.contains("ELASTICACHE"),
        "{message}"
    );
}

/// Three concurrent 256-trainer INLINE calls held 788 MB in the driver, and
/// 256 concurrent calls over Redis 1.38 GB. Each run now reserves what it
/// may hold from the driver's MEMORY_BUDGET_MB, waiting for room within its
/// deadline; a run larger than the whole budget is refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_driver_admits_runs_by_the_memory_they_may_hold() {
    let stack = start(StackOpts::default()).await;
    let driver_with_budget = |budget_mib: usize| {
        let cfg = DriverConfig::new(
            stack.trainer.to_string(),
            stack.reducer.to_string(),
            stack.metatrainer.to_string(),
            RunPlan {
                trainers: 8,
                concurrent: true,
                ..RunPlan::default()
            },
        );
        let limits = Limits {
            memory_budget_bytes: budget_mib << 20,
            ..Limits::default()
        };
        let ds = small_dataset();
        Arc::new(
            Driver::new(
                cfg,
                Context::new(Route::Inline, 2, 2).with_limits(limits),
                Bytes::from(ds.to_bytes()),
                ds.n_samples(),
            )
            .unwrap(),
        )
    };
    // 8 trainers inline on 120 x 64: replies and the Metatrain request, a
    // few hundred KiB; a 1 MiB budget takes one run at a time.
    let one_at_a_time = driver_with_budget(1);
    let runs = futures::future::join_all((0..3).map(|_| one_at_a_time.run())).await;
    for run in runs {
        assert!(run.is_ok(), "{run:?}");
    }
    let tiny = Arc::new(
        Driver::new(
            DriverConfig::new(
                stack.trainer.to_string(),
                stack.reducer.to_string(),
                stack.metatrainer.to_string(),
                RunPlan {
                    trainers: 4096,
                    ..RunPlan::default()
                },
            ),
            Context::new(Route::Inline, 2, 2).with_limits(Limits {
                memory_budget_bytes: 1 << 20,
                ..Limits::default()
            }),
            Bytes::from(small_dataset().to_bytes()),
            small_dataset().n_samples(),
        )
        .unwrap(),
    );
    let e = tiny.run().await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e}");
    assert!(e.to_string().contains("MEMORY_BUDGET_MB"), "{e}");
    stack.stop().await;
}
