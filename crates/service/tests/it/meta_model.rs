//! The meta model under a request that names thousands of meta features:
//! cheap to send, and once O(p^3) time and O(p^2) memory per Newton step
//! (60 x 8,000 took 1.26 GB and ran 18 s past a 2 s deadline; 65,536
//! columns panicked on a 34 GB allocation). Now a fit that would hold more
//! than the function's memory budget is refused before it starts, a wide
//! one is solved without forming its Newton system, and a deadline stops a
//! fit mid-step.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ndarray::Array2;
use stacking_core::{npy, serial};
use stacking_service::pb::stacking::metatrainer_client::MetatrainerClient;
use stacking_service::pb::stacking::MetaTrainRequest;
use stacking_service::server::Role;
use stacking_service::settings::Limits;
use stacking_service::{Context, Route};
use support::*;
use tonic::Code;

/// An inline Metatrain of `rows` x `cols` meta features over a dataset of
/// `rows` x 4, with `cols` copies of one fitted model.
fn wide_request(rows: usize, cols: usize, config: &'static [u8]) -> MetaTrainRequest {
    let ds = stacking_core::dataset::make_classification(&stacking_core::GeneratorParams {
        n_samples: rows,
        n_features: 4,
        ..Default::default()
    })
    .unwrap();
    let model = Arc::new(
        stacking_core::config::default_level0()[1]
            .fit(ds.x().view(), ds.y().view())
            .unwrap(),
    );
    let models = serial::encode_models(&vec![model; cols]).unwrap();
    let meta = Array2::from_shape_fn((rows, cols), |(i, j)| {
        ((i * 31 + j * 7) % 101) as f64 / 50.0
    });
    MetaTrainRequest {
        dataset: Bytes::from(ds.to_bytes()),
        models: Bytes::from(models),
        meta_features: Bytes::from(npy::encode_f64_2d(&meta)),
        model_config: Bytes::from_static(config),
        run_id: "run-5b1d3b3c2e1f4a0b9c8d7e6f5a4b3c2d".into(),
        ..Default::default()
    }
}

const DEFAULT_META: &[u8] = br#"{"model": "LogisticRegression"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fit_over_the_memory_budget_is_refused_before_it_starts() {
    let limits = Limits {
        memory_budget_bytes: 64 << 20,
        ..Limits::default()
    };
    let ctx = Context::new(Route::Inline, 1, 2).with_limits(limits);
    let addr = serve_on_loopback(Role::Metatrainer(ctx.clone())).await;
    let mut meta = MetatrainerClient::new(channel(addr).await).max_decoding_message_size(256 << 20);
    // 2,000 x 3,000: a 48 MB message the budget admits, whose fit would
    // hold 128 MB more.
    let status = meta
        .metatrain(wide_request(2_000, 3_000, DEFAULT_META))
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::ResourceExhausted,
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("MEMORY_BUDGET_MB") && status.message().contains("2000 x 3000"),
        "{}",
        status.message()
    );
    assert_eq!(ctx.running_computations(), 0);
}

/// 60 rows and 8,000 meta features, the request that once took 1.26 GB and
/// ran 18 s past its 2 s deadline, now fits within it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wide_meta_model_fits_well_within_its_deadline() {
    let ctx = Context::new(Route::Inline, 1, 2);
    let addr = serve_on_loopback(Role::Metatrainer(ctx)).await;
    let mut meta = MetatrainerClient::new(channel(addr).await).max_decoding_message_size(256 << 20);
    let mut request = tonic::Request::new(wide_request(60, 8_000, DEFAULT_META));
    request.set_timeout(Duration::from_secs(20));
    let reply = meta.metatrain(request).await.unwrap().into_inner();
    assert!(reply.score.parse::<f64>().unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_stops_a_meta_fit_mid_step() {
    let ctx = Context::new(Route::Inline, 1, 2);
    let addr = serve_on_loopback(Role::Metatrainer(ctx.clone())).await;
    let mut meta = MetatrainerClient::new(channel(addr).await).max_decoding_message_size(256 << 20);
    let slow = br#"{"model": "LogisticRegression", "params": {"tol": 1e-15, "max_iter": 1000000}}"#;
    let mut request = tonic::Request::new(wide_request(1_500, 2_500, slow));
    request.set_timeout(Duration::from_millis(700));
    let status = meta.metatrain(request).await.unwrap_err();
    assert!(
        matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{status:?}"
    );
    // The abandoned fit stops within a panel of its factorisation.
    assert!(
        eventually(Duration::from_secs(3), || ctx.running_computations() == 0).await,
        "the abandoned meta fit is still running"
    );
}
