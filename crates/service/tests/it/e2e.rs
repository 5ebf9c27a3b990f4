//! End-to-end runs over real gRPC on loopback: 4 and 16 trainers, sequential
//! and concurrent, INLINE and S3 (a real S3-API server over HTTP).

use crate::support;

use stacking_core::{npy, serial};
use stacking_service::driver::RunReport;
use stacking_service::Transfer;
use support::*;

/// scikit-learn's ensemble AUC for the default dataset (fixture README), which
/// our exact Newton solver reaches at tight convergence.
const SKLEARN_TIGHT_AUC_4: f64 = 0.786_232_225_256_615_5;

async fn one_run(opts: StackOpts) -> RunReport {
    let stack = start(opts).await;
    let reply = stack.say_hello().await.unwrap();
    stack.stop().await;
    let report: RunReport = serde_json::from_str(&reply.report_json).unwrap();
    assert_eq!(reply.message, report.summary());
    assert!(reply.message.starts_with("run=run-"), "{}", reply.message);
    report
}

fn check_models(report: &RunReport, n: usize) {
    let names = [
        "LinearSVR",
        "Lasso",
        "RandomForestRegressor",
        "KNeighborsRegressor",
    ];
    assert_eq!(report.trainers.len(), n);
    for (i, t) in report.trainers.iter().enumerate() {
        assert_eq!(t.model, names[i % 4], "trainer {i}");
        assert_eq!(t.id, i);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_trainers_inline_match_sklearn() {
    let r = one_run(StackOpts {
        dataset: default_dataset(),
        ..Default::default()
    })
    .await;
    check_models(&r, 4);
    assert!(
        (r.ensemble_auc - SKLEARN_TIGHT_AUC_4).abs() < 1e-9,
        "{}",
        r.ensemble_auc
    );
    assert_eq!(r.transfer, "INLINE");
    assert!(r.bytes.inline_sent > 0 && r.bytes.storage_written == 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_trainers_s3_sequential_and_concurrent() {
    let server = S3Server::start().await;
    for concurrent in [false, true] {
        let r = one_run(StackOpts {
            transfer: Transfer::S3,
            store: Some(server.store()),
            concurrent,
            dataset: default_dataset(),
            ..Default::default()
        })
        .await;
        check_models(&r, 4);
        assert!((r.ensemble_auc - SKLEARN_TIGHT_AUC_4).abs() < 1e-9);
        assert!(r.bytes.storage_written > 0 && r.bytes.inline_sent == 0);
    }
    // Every object of those runs was deleted.
    assert!(server.store().list("").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_trainers_every_mode() {
    let server = S3Server::start().await;
    let mut aucs = Vec::new();
    for (transfer, concurrent) in [
        (Transfer::Inline, false),
        (Transfer::Inline, true),
        (Transfer::S3, false),
        (Transfer::S3, true),
    ] {
        let r = one_run(StackOpts {
            transfer,
            store: (transfer == Transfer::S3).then(|| server.store()),
            trainers: 16,
            concurrent,
            ..Default::default()
        })
        .await;
        check_models(&r, 16);
        aucs.push(r.ensemble_auc);
    }
    // Same data and models: the transfer mode and call order change nothing.
    assert!(aucs.windows(2).all(|w| w[0] == w[1]), "{aucs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_s3_server_when_configured() {
    // `.ci/run` starts a second, independent S3 server and sets AWS_ENDPOINT_URL.
    let Some((endpoint, store)) = external_store() else {
        eprintln!("AWS_ENDPOINT_URL not set: the external S3 server test runs in .ci/run");
        return;
    };
    for (trainers, concurrent) in [(4, false), (16, true)] {
        let r = one_run(StackOpts {
            transfer: Transfer::S3,
            store: Some(store.clone()),
            trainers,
            concurrent,
            ..Default::default()
        })
        .await;
        check_models(&r, trainers);
    }
    let left: Vec<_> = store
        .list("")
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.starts_with("run-"))
        .collect();
    assert!(left.is_empty(), "objects left on {endpoint}: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_invocations_are_isolated() {
    let server = S3Server::start().await;
    let store = server.store();
    let lone = one_run(StackOpts {
        transfer: Transfer::S3,
        store: Some(store.clone()),
        ..Default::default()
    })
    .await;
    let stack = start(StackOpts {
        transfer: Transfer::S3,
        store: Some(store.clone()),
        keep_objects: true,
        ..Default::default()
    })
    .await;
    let replies = futures::future::join_all((0..8).map(|_| stack.say_hello())).await;
    stack.stop().await;
    let run_ids = same_results_as_lone(replies, &lone);
    assert_eq!(run_ids.len(), 8);
    // Each run kept its own complete set of objects, none shared or overwritten:
    // dataset, 4 models, 4 predictions, models, meta_features, model_full, meta_predictions.
    let keys = store.list("").await.unwrap();
    assert_eq!(keys.len(), 8 * 13, "{keys:?}");
    for run in &run_ids {
        let full = store.get(&format!("{run}/model_full")).await.unwrap();
        let model = serial::decode_full(&full).unwrap();
        let names: Vec<_> = model.level0.iter().map(|m| m.name()).collect();
        assert_eq!(
            names,
            [
                "LinearSVR",
                "Lasso",
                "RandomForestRegressor",
                "KNeighborsRegressor"
            ]
        );
        let preds =
            npy::decode_f64_1d(&store.get(&format!("{run}/meta_predictions")).await.unwrap())
                .unwrap();
        assert_eq!(preds.len(), 120);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_full_model_reproduces_in_sample_probabilities() {
    let store = memory_store();
    let dataset = small_dataset();
    let stack = start(StackOpts {
        transfer: Transfer::S3,
        store: Some(store.clone()),
        keep_objects: true,
        dataset: dataset.clone(),
        ..Default::default()
    })
    .await;
    let r: RunReport = serde_json::from_str(&stack.say_hello().await.unwrap().report_json).unwrap();
    stack.stop().await;
    let full = serial::decode_full(
        &store
            .get(&format!("{}/model_full", r.run_id))
            .await
            .unwrap(),
    )
    .unwrap();
    let meta = npy::decode_f64_2d(
        &store
            .get(&format!("{}/meta_features", r.run_id))
            .await
            .unwrap(),
    )
    .unwrap();
    // The meta model inside the stored model, on the stored meta features,
    // gives the metatrainer's in-sample probabilities; and the whole model predicts new rows.
    let proba = full.meta.predict(meta.view()).unwrap();
    let refit = stacking_core::config::default_meta()
        .fit(meta.view(), dataset.y().view())
        .unwrap();
    assert_eq!(proba, refit.predict(meta.view()).unwrap());
    let p = full.predict_proba(dataset.x().view()).unwrap();
    assert!(p.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_trainers_store_each_repeated_model_once() {
    let store = memory_store();
    let mut sizes = Vec::new();
    for trainers in [4, 16] {
        let stack = start(StackOpts {
            transfer: Transfer::S3,
            store: Some(store.clone()),
            keep_objects: true,
            trainers,
            ..Default::default()
        })
        .await;
        let r: RunReport =
            serde_json::from_str(&stack.say_hello().await.unwrap().report_json).unwrap();
        stack.stop().await;
        let get = |name: &str| {
            let key = format!("{}/{name}", r.run_id);
            let store = store.clone();
            async move { store.get(&key).await.unwrap() }
        };
        let (list, full) = (get("models").await, get("model_full").await);
        let models = serial::decode_models(&list).unwrap();
        let full_model = serial::decode_full(&full).unwrap();
        assert_eq!(models.len(), trainers);
        assert_eq!(full_model.level0, models);
        // Trainer i and trainer i + 4 fit the same configuration: one shared model.
        for i in 4..trainers {
            assert!(std::sync::Arc::ptr_eq(&models[i], &models[i - 4]), "{i}");
        }
        sizes.push((list.len(), full.len()));
    }
    // Twelve more trainers add only their indices to the stored objects.
    let ((list4, full4), (list16, full16)) = (sizes[0], sizes[1]);
    assert!(list16 < list4 + 64, "models: {list4} vs {list16} bytes");
    assert!(
        full16 < full4 + 512,
        "model_full: {full4} vs {full16} bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_beyond_the_workers_stream_limit_on_a_new_connection_succeeds() {
    // One job at a time: each worker allows 2 open streams per connection.
    // The driver's first 16 concurrent Train calls go out before the
    // trainer's SETTINGS arrive; the refused ones are retried.
    for _ in 0..3 {
        let r = one_run(StackOpts {
            trainers: 16,
            concurrent: true,
            max_jobs: 1,
            ..Default::default()
        })
        .await;
        check_models(&r, 16);
    }
}
