//! Test support: a real S3-API server over HTTP (the testkit's s3s server,
//! signed requests), an optional second server from `AWS_ENDPOINT_URL`, and
//! local stacks on loopback.

pub mod requests;

use std::sync::Arc;

use stacking_core::dataset::{make_classification, GeneratorParams};
use stacking_core::{Dataset, StackConfig};
use stacking_service::local::{LocalOptions, LocalStack};
use stacking_service::Transfer;
use stacking_service::{Route, RunPlan};
use stacking_storage::s3::{self, S3Config};
use stacking_storage::{memory, BlobStore};

pub use stacking_testkit::s3::{ACCESS, BUCKET, SECRET};

/// A real S3-API server on loopback (s3s, signed requests, objects in memory).
pub struct S3Server(stacking_testkit::s3::S3Server);

impl S3Server {
    pub async fn start() -> Self {
        Self(stacking_testkit::s3::S3Server::start().unwrap())
    }

    pub fn store(&self) -> Arc<dyn BlobStore> {
        Arc::new(s3::open(&config(self.0.endpoint(), ACCESS, SECRET)).unwrap())
    }

    pub fn object_count(&self) -> usize {
        self.0.object_count()
    }

    pub fn request_count(&self) -> usize {
        self.0.request_count()
    }

    /// Holds every request `latency` before it is handled.
    pub fn set_latency(&self, latency: std::time::Duration) {
        self.0.set_latency(latency);
    }
}

pub fn config(endpoint: &str, access: &str, secret: &str) -> S3Config {
    S3Config::for_endpoint(endpoint, BUCKET, access, secret)
}

/// The second, independent S3 server `.ci/run` starts (moto), if configured.
pub fn external_store() -> Option<(String, Arc<dyn BlobStore>)> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|e| !e.is_empty())?;
    let cfg = S3Config {
        bucket: std::env::var("BUCKET_NAME").unwrap_or_else(|_| BUCKET.into()),
        ..config(
            &endpoint,
            &std::env::var("AWS_ACCESS_KEY").unwrap_or_else(|_| "testing".into()),
            &std::env::var("AWS_SECRET_KEY").unwrap_or_else(|_| "testing".into()),
        )
    };
    Some((endpoint, Arc::new(s3::open(&cfg).unwrap())))
}

pub fn small_dataset() -> Dataset {
    make_classification(&GeneratorParams {
        n_samples: 120,
        n_features: 64,
        ..GeneratorParams::default()
    })
    .unwrap()
}

pub fn default_dataset() -> Dataset {
    make_classification(&GeneratorParams::default()).unwrap()
}

pub struct StackOpts {
    pub transfer: Transfer,
    pub store: Option<Arc<dyn BlobStore>>,
    pub trainers: usize,
    pub concurrent: bool,
    pub keep_objects: bool,
    pub dataset: Dataset,
    pub max_message_bytes: usize,
    /// Requests each function computes at once (`MAX_SERVER_THREADS`).
    pub max_jobs: usize,
    /// How long `stop` waits for in-flight work and the driver's cleanups
    /// (`DRAIN_TIMEOUT_S`).
    pub drain_timeout: std::time::Duration,
}

impl Default for StackOpts {
    fn default() -> Self {
        Self {
            transfer: Transfer::Inline,
            store: None,
            trainers: 4,
            concurrent: false,
            keep_objects: false,
            dataset: small_dataset(),
            max_message_bytes: 64 << 20,
            max_jobs: 2,
            drain_timeout: stacking_service::settings::DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

pub async fn start(o: StackOpts) -> LocalStack {
    LocalStack::start(LocalOptions {
        route: Route::new(o.transfer, o.store).unwrap(),
        plan: RunPlan {
            trainers: o.trainers,
            concurrent: o.concurrent,
            keep_objects: o.keep_objects,
            max_message_bytes: o.max_message_bytes,
            ..RunPlan::default()
        },
        stack: StackConfig::default(),
        dataset: o.dataset,
        max_jobs: o.max_jobs,
        threads_per_job: 2,
        spans: None,
        zipkin: None,
        report: Default::default(),
        limits: stacking_service::settings::Limits {
            drain_timeout: o.drain_timeout,
            ..Default::default()
        },
    })
    .await
    .unwrap()
}

pub fn memory_store() -> Arc<dyn BlobStore> {
    Arc::new(memory::open())
}

/// A connected gRPC channel to a loopback address.
pub async fn channel(addr: std::net::SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// Parses the reports of concurrent `SayHello` replies, checks each equals
/// `lone` (ensemble and every trainer's model and OOF AUC), and returns
/// their run ids, sorted and deduplicated.
pub fn same_results_as_lone(
    replies: Vec<Result<stacking_service::pb::helloworld::HelloReply, tonic::Status>>,
    lone: &stacking_service::driver::RunReport,
) -> Vec<String> {
    let mut run_ids = Vec::new();
    for reply in replies {
        let reply = reply.unwrap();
        let r: stacking_service::driver::RunReport =
            serde_json::from_str(&reply.report_json).unwrap();
        assert_eq!(r.ensemble_auc, lone.ensemble_auc);
        for (a, b) in r.trainers.iter().zip(&lone.trainers) {
            assert_eq!((a.model.as_str(), a.oof_auc), (b.model.as_str(), b.oof_auc));
        }
        run_ids.push(r.run_id);
    }
    run_ids.sort();
    run_ids.dedup();
    run_ids
}

/// A generated dataset of `rows` x `cols` in its wire form.
pub fn dataset_bytes(rows: usize, cols: usize) -> bytes::Bytes {
    let ds = make_classification(&GeneratorParams {
        n_samples: rows,
        n_features: cols,
        ..GeneratorParams::default()
    })
    .unwrap();
    bytes::Bytes::from(ds.to_bytes())
}

/// Serves `role` on a loopback port until the test ends.
pub async fn serve_on_loopback(role: stacking_service::server::Role) -> std::net::SocketAddr {
    let listener = stacking_testkit::process::bind_loopback_tokio().unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(stacking_service::server::serve(
        listener,
        role,
        64 << 20,
        std::future::pending(),
    ));
    addr
}

/// Polls `done` every 20 ms for at most `bound`; whether it became true.
pub async fn eventually(bound: std::time::Duration, mut done: impl FnMut() -> bool) -> bool {
    let give_up = tokio::time::Instant::now() + bound;
    while tokio::time::Instant::now() < give_up {
        if done() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    done()
}

/// Runs `call` and fails the test if it takes longer than `bound`.
pub async fn within<T>(
    bound: std::time::Duration,
    call: impl std::future::Future<Output = T>,
) -> T {
    tokio::time::timeout(bound, call)
        .await
        .expect("the call did not end within its bound")
}
