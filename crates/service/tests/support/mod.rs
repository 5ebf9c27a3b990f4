//! Test support: a real S3-API server over HTTP (s3s + s3s-fs, in-process,
//! signed requests), an optional second server from `AWS_ENDPOINT_URL`, and
//! local stacks on loopback.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use stacking_core::dataset::{make_classification, GeneratorParams};
use stacking_core::{Dataset, StackConfig};
use stacking_service::local::{LocalOptions, LocalStack};
use stacking_service::Transfer;
use stacking_storage::s3::{self, S3Config};
use stacking_storage::{memory, BlobStore};
use tokio::net::TcpListener;

pub const ACCESS: &str = "stacking-test-access";
pub const SECRET: &str = "stacking-test-secret-key-0123456789";
pub const BUCKET: &str = "vhive-stacking";

/// An in-process S3 server on a loopback port, storing under a temp dir.
pub struct S3Server {
    pub endpoint: String,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl S3Server {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(BUCKET)).unwrap();
        let fs = s3s_fs::FileSystem::new(dir.path()).unwrap();
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS, SECRET));
        let service = builder.build();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                let _ = stream.set_nodelay(true);
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            endpoint,
            _dir: dir,
            task,
        }
    }

    pub fn store(&self) -> Arc<dyn BlobStore> {
        Arc::new(s3::open(&config(&self.endpoint, ACCESS, SECRET)).unwrap())
    }
}

pub fn config(endpoint: &str, access: &str, secret: &str) -> S3Config {
    S3Config {
        bucket: BUCKET.into(),
        region: "us-east-1".into(),
        access_key: Some(access.into()),
        secret_key: Some(secret.into()),
        endpoint: Some(endpoint.into()),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(30),
        give_up_after: Duration::from_secs(2),
    }
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
        }
    }
}

pub async fn start(o: StackOpts) -> LocalStack {
    LocalStack::start(LocalOptions {
        transfer: o.transfer,
        store: o.store,
        trainers: o.trainers,
        concurrent: o.concurrent,
        keep_objects: o.keep_objects,
        stack: StackConfig::default(),
        dataset: o.dataset,
        max_message_bytes: o.max_message_bytes,
        max_jobs: 2,
        threads_per_job: 2,
        spans: None,
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
