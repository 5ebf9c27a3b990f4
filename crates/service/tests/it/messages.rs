//! What a status message may repeat of a request: every input goes through
//! one escaping and cutting path, so no header text, key or value can forge a
//! log line, carry a terminal sequence or flood a log, and no context is
//! repeated. Keys longer than the store's limit are the caller's error in
//! every request that names one.

use crate::support;

use bytes::Bytes;
use stacking_service::pb::stacking::metatrainer_client::MetatrainerClient;
use stacking_service::pb::stacking::reducer_client::ReducerClient;
use stacking_service::pb::stacking::trainer_client::TrainerClient;
use stacking_service::Transfer;
use support::requests::*;
use support::*;
use tonic::Code;

/// A `.npy` version-2 array whose header holds `descr` and `shape` as given.
fn crafted_npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({shape}), }}\n");
    let mut out = b"\x93NUMPY\x02\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u32).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend_from_slice(data);
    out
}

/// A message as the promise goes: at most 1024 characters, no control
/// character, no context said twice.
fn assert_clean(status: &tonic::Status) {
    let m = status.message();
    assert!(
        m.chars().count() <= 1024,
        "{} characters",
        m.chars().count()
    );
    assert!(!m.chars().any(char::is_control), "{m:?}");
    for part in m.split(": ") {
        if part.len() > 8 {
            assert_eq!(m.matches(part).count(), 1, "{part:?} repeated in {m:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_npy_headers_come_back_escaped_and_cut() {
    let stack = start(StackOpts::default()).await;
    let mut trainer =
        TrainerClient::new(channel(stack.trainer).await).max_decoding_message_size(64 << 20);
    let forged = format!(
        "<f8\n2026-12-06T00:00:00.000000Z  INFO stacking: forged\u{1b}[2J{}",
        "x".repeat(50 << 10)
    );
    let labels = crafted_npy("<i8", "4,", &[0; 32]);
    for features in [
        crafted_npy(&forged, "4, 2", &[0; 64]),
        crafted_npy("<f8", &format!("4, {}", "9".repeat(1 << 20)), &[0; 64]),
    ] {
        let dataset = [features, labels.clone()].concat();
        let status = trainer
            .train(train_inline(Bytes::from(dataset), lasso()))
            .await
            .expect_err("a hostile header is refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
        assert_clean(&status);
        assert!(status.message().len() < 400, "{}", status.message());
        assert!(
            !status.message().contains("forged\\u"),
            "{}",
            status.message()
        );
    }
    // <U1 labels: an unsupported dtype, named as such.
    let x = crafted_npy("<f8", "4, 2", &[0; 64]);
    let y = crafted_npy("<U1", "4,", &[0x41, 0, 0, 0].repeat(4));
    let status = trainer
        .train(train_inline(Bytes::from([x, y].concat()), lasso()))
        .await
        .expect_err("unicode labels are refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("unsupported dtype <U1"),
        "{}",
        status.message()
    );
    assert_clean(&status);
    let data = Bytes::from(small_dataset().to_bytes());
    trainer.train(train_inline(data, lasso())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_are_shown_in_their_shortest_form_and_keys_once() {
    let stack = start(StackOpts::default()).await;
    let mut trainer =
        TrainerClient::new(channel(stack.trainer).await).max_decoding_message_size(64 << 20);
    let data = Bytes::from(small_dataset().to_bytes());
    let status = trainer
        .train(train_inline(
            data.clone(),
            Bytes::from_static(br#"{"model": "Lasso", "params": {"tol": 1e-300}}"#),
        ))
        .await
        .expect_err("tol below 1e-15");
    assert!(status.message().contains("1e-300"), "{}", status.message());
    assert_clean(&status);
    let status = trainer
        .train(train_inline(
            data,
            Bytes::from_static(br#"{"model": "Lasso", "model": "LinearSVR"}"#),
        ))
        .await
        .expect_err("a key given twice");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("\"model\" is given twice"),
        "{}",
        status.message()
    );
}

/// A key of 64 KiB inside a valid run panicked inside the S3 client and
/// answered CANCELLED; now every request that names one answers
/// INVALID_ARGUMENT, showing at most 200 of its characters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_over_the_stores_limit_are_invalid_in_every_request() {
    let s3 = S3Server::start().await;
    let stack = start(StackOpts {
        transfer: Transfer::S3,
        store: Some(s3.store()),
        ..StackOpts::default()
    })
    .await;
    let run = "run-0123456789abcdef0123456789abcdef";
    let long = format!("{run}/{}", "k".repeat(64 << 10));
    let mut trainer = TrainerClient::new(channel(stack.trainer).await);
    let mut reducer = ReducerClient::new(channel(stack.reducer).await);
    let mut metatrainer = MetatrainerClient::new(channel(stack.metatrainer).await);
    let good = format!("{run}/x");
    let statuses = [
        trainer
            .train(train_stored(run, &long, 0))
            .await
            .expect_err("Train"),
        reducer
            .reduce(reduce_stored(run, &[(&long, &good)]))
            .await
            .expect_err("Reduce"),
        metatrainer
            .metatrain(metatrain_stored(run, &good, &long, &good))
            .await
            .expect_err("Metatrain models_key"),
        metatrainer
            .metatrain(metatrain_stored(run, &long, &good, &good))
            .await
            .expect_err("Metatrain dataset_key"),
    ];
    for status in statuses {
        assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
        assert!(
            status.message().contains("1024-byte limit"),
            "{}",
            status.message()
        );
        assert!(status.message().len() < 600, "{}", status.message().len());
        assert_clean(&status);
    }
    assert_eq!(s3.object_count(), 0);
}
