//! Any S3-API server, configured as the original benchmark is: `BUCKET_NAME`
//! (default `vhive-stacking`), `AWS_ACCESS_KEY`, `AWS_SECRET_KEY`,
//! `AWS_REGION`, plus `AWS_ENDPOINT_URL` for S3-compatible servers.
//!
//! Requests are signed (SigV4). Timeouts and retries are bounded so that a
//! store that is down turns into an error within [`S3Config::give_up_after`]
//! instead of a hang.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::{BackoffConfig, ClientOptions, RetryConfig};

use crate::{ObjectStoreBackend, StorageError};

pub const DEFAULT_BUCKET: &str = "vhive-stacking";
pub const DEFAULT_REGION: &str = "us-east-1";

/// S3 connection settings.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    /// e.g. `http://127.0.0.1:9000`; `None` means AWS itself.
    pub endpoint: Option<String>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Retries stop after this long from the first attempt.
    pub give_up_after: Duration,
}

impl S3Config {
    /// From the environment variables the original benchmark uses. The
    /// standard `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_DEFAULT_REGION`
    /// are honoured as fallbacks.
    pub fn from_env() -> Self {
        let var = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
        };
        Self {
            bucket: var(&["BUCKET_NAME"]).unwrap_or_else(|| DEFAULT_BUCKET.into()),
            region: var(&["AWS_REGION", "AWS_DEFAULT_REGION"])
                .unwrap_or_else(|| DEFAULT_REGION.into()),
            access_key: var(&["AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID"]),
            secret_key: var(&["AWS_SECRET_KEY", "AWS_SECRET_ACCESS_KEY"]),
            endpoint: var(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(30),
            give_up_after: Duration::from_secs(5),
        }
    }
}

impl S3Config {
    /// An S3-compatible server at `endpoint` (e.g. `http://127.0.0.1:9000`)
    /// with static credentials, region `us-east-1`, and a 2 s retry budget.
    pub fn for_endpoint(endpoint: &str, bucket: &str, access_key: &str, secret_key: &str) -> Self {
        Self {
            bucket: bucket.into(),
            region: DEFAULT_REGION.into(),
            access_key: Some(access_key.into()),
            secret_key: Some(secret_key.into()),
            endpoint: Some(endpoint.into()),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(30),
            give_up_after: Duration::from_secs(2),
        }
    }
}

pub fn open(cfg: &S3Config) -> Result<ObjectStoreBackend, StorageError> {
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&cfg.bucket)
        .with_region(&cfg.region)
        .with_client_options(
            ClientOptions::new()
                .with_connect_timeout(cfg.connect_timeout)
                .with_timeout(cfg.request_timeout)
                .with_allow_http(true),
        )
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_millis(500),
                base: 2.0,
            },
            max_retries: 3,
            retry_timeout: cfg.give_up_after,
        });
    if let Some(k) = &cfg.access_key {
        builder = builder.with_access_key_id(k);
    }
    if let Some(s) = &cfg.secret_key {
        builder = builder.with_secret_access_key(s);
    }
    let name = match &cfg.endpoint {
        Some(ep) => {
            // Path-style addressing: S3-compatible servers on an IP or
            // localhost have no per-bucket host names.
            builder = builder
                .with_endpoint(ep)
                .with_virtual_hosted_style_request(false);
            format!("s3://{} at {ep}", cfg.bucket)
        }
        None => format!("s3://{}", cfg.bucket),
    };
    let s3 = builder
        .build()
        .map_err(|e| StorageError::Config(format!("S3 ({name}): {e}")))?;
    Ok(ObjectStoreBackend::new(Arc::new(s3), name))
}
