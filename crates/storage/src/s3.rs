//! Any S3-API server, configured as the original benchmark is: `BUCKET_NAME`
//! (default `vhive-stacking`), `AWS_ACCESS_KEY`, `AWS_SECRET_KEY`,
//! `AWS_REGION`, plus `AWS_ENDPOINT_URL` for S3-compatible servers.
//!
//! Requests are signed (SigV4). Whether the signature also covers the
//! payload is [`PayloadSigning`] (`AWS_UNSIGNED_PAYLOAD`). Timeouts and
//! retries are bounded so that a store that is down turns into an error
//! within [`S3Config::give_up_after`] instead of a hang.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::{BackoffConfig, ClientOptions, RetryConfig};

use crate::store::Chunking;
use crate::{ObjectStoreBackend, StorageError};

/// Bucket when `BUCKET_NAME` is unset (the original's).
pub const DEFAULT_BUCKET: &str = "vhive-stacking";
/// TCP connect to the S3 endpoint.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// One request, body included: an endpoint that accepts and never answers
/// fails here instead of waiting on the client's much longer default.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// No retry starts later than this after the first attempt.
pub const RETRY_BUDGET: Duration = Duration::from_secs(5);
/// Idle connections kept to the endpoint.
pub const POOL_IDLE_CONNECTIONS: usize = 16;
/// How long an idle connection to the endpoint is kept.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Region when `AWS_REGION` is unset.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Whether a request's SigV4 signature covers its payload's SHA-256.
///
/// Hashing costs both ends: the client hashes the body and the server hashes
/// it again to check, which more than doubles a large PUT on loopback. The hash protects the body from being changed in
/// transit, so the default signs it only where something could change it:
/// over plain HTTP to another host. Over HTTPS, TLS protects the body (the
/// AWS SDKs and boto3 send `UNSIGNED-PAYLOAD` there too); to a loopback
/// address the bytes never leave the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PayloadSigning {
    /// Signed over `http://` to another host; unsigned over `https://`
    /// (AWS itself included) and to loopback addresses.
    #[default]
    Auto,
    /// Always hash and sign the payload.
    Signed,
    /// Never: `x-amz-content-sha256: UNSIGNED-PAYLOAD`. Headers are still
    /// signed; the body is protected only by the transport.
    Unsigned,
}

impl PayloadSigning {
    /// The variable that chooses it.
    pub const VAR: &'static str = "AWS_UNSIGNED_PAYLOAD";

    /// From `AWS_UNSIGNED_PAYLOAD`: `true`, `false`, or unset / `auto`.
    pub fn parse(value: Option<&str>) -> Result<Self, StorageError> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("auto") => Ok(Self::Auto),
            Some("true" | "1" | "yes" | "on") => Ok(Self::Unsigned),
            Some("false" | "0" | "no" | "off") => Ok(Self::Signed),
            Some(_) => Err(StorageError::Config(format!(
                "{}={:?} is not allowed; allowed values: auto (default: sign only over http to another host), true, false",
                Self::VAR,
                value.unwrap_or_default()
            ))),
        }
    }

    /// Whether requests to `endpoint` (`None`: AWS, over HTTPS) go unsigned.
    pub fn unsigned_for(self, endpoint: Option<&str>) -> bool {
        match self {
            Self::Signed => false,
            Self::Unsigned => true,
            Self::Auto => endpoint.is_none_or(transport_protects_body),
        }
    }
}

/// HTTPS, or a loopback host. An endpoint that does not parse counts as
/// unprotected (and `open` reports it).
fn transport_protects_body(endpoint: &str) -> bool {
    let Ok(url) = url::Url::parse(endpoint) else {
        return false;
    };
    if url.scheme() == "https" {
        return true;
    }
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// S3 connection settings.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Config {
    /// The bucket every key lives in.
    pub bucket: String,
    /// The bucket's region.
    pub region: String,
    /// Access key id (`AWS_ACCESS_KEY`), unless credentials come from a role.
    pub access_key: Option<String>,
    /// Secret key (`AWS_SECRET_KEY`).
    pub secret_key: Option<String>,
    /// e.g. `http://127.0.0.1:9000`; `None` means AWS itself.
    pub endpoint: Option<String>,
    /// TCP connect bound.
    pub connect_timeout: Duration,
    /// Bound on one request, body included.
    pub request_timeout: Duration,
    /// Retries stop after this long from the first attempt.
    pub give_up_after: Duration,
    /// Whether requests sign their payload's hash.
    pub payload_signing: PayloadSigning,
    /// Session token of temporary keys (`AWS_SESSION_TOKEN`).
    pub session_token: Option<String>,
    /// Where credentials come from when there are no keys: the role
    /// variables that were set (web identity or container credentials), as
    /// `(variable, value)`, handed to the S3 client.
    pub role: Vec<(&'static str, String)>,
}

/// The variables that give credentials through a role instead of keys.
pub const ROLE_VARIABLES: [&str; 6] = [
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
];

impl S3Config {
    /// From the environment variables the original benchmark uses, read
    /// through `get`. The standard `AWS_ACCESS_KEY_ID` /
    /// `AWS_SECRET_ACCESS_KEY` / `AWS_DEFAULT_REGION` are honoured as
    /// fallbacks. A bad `AWS_UNSIGNED_PAYLOAD` is an error that names it.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, StorageError> {
        let var = |names: &[&str]| names.iter().find_map(|n| get(n).filter(|v| !v.is_empty()));
        Ok(Self {
            bucket: var(&["BUCKET_NAME"]).unwrap_or_else(|| DEFAULT_BUCKET.into()),
            region: var(&["AWS_REGION", "AWS_DEFAULT_REGION"])
                .unwrap_or_else(|| DEFAULT_REGION.into()),
            access_key: var(&["AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID"]),
            secret_key: var(&["AWS_SECRET_KEY", "AWS_SECRET_ACCESS_KEY"]),
            endpoint: var(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]),
            connect_timeout: CONNECT_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
            give_up_after: RETRY_BUDGET,
            payload_signing: PayloadSigning::parse(get(PayloadSigning::VAR).as_deref())?,
            session_token: var(&["AWS_SESSION_TOKEN"]),
            role: ROLE_VARIABLES
                .iter()
                .filter_map(|&name| var(&[name]).map(|v| (name, v)))
                .collect(),
        })
    }

    /// Whether credentials come from a role (a web identity or container
    /// credentials) rather than keys.
    pub fn role_credentials(&self) -> bool {
        self.role.iter().any(|(name, _)| {
            matches!(
                *name,
                "AWS_WEB_IDENTITY_TOKEN_FILE"
                    | "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
                    | "AWS_CONTAINER_CREDENTIALS_FULL_URI"
            )
        })
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
            connect_timeout: CONNECT_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
            give_up_after: Duration::from_secs(2),
            payload_signing: PayloadSigning::Auto,
            session_token: None,
            role: Vec::new(),
        }
    }
}

/// A client for the configured bucket. Without keys in the environment and
/// without a role to take credentials from, this refuses to start (the
/// client would otherwise ask the EC2 metadata address and report an error
/// about `169.254.169.254` that never says "credentials").
/// Makes ring the process's rustls provider (once; a provider installed
/// earlier stays). reqwest is built without a provider of its own (so that
/// aws-lc-sys is not built), and panics building any client before this.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Whether every request this client makes goes over plain HTTP: an
/// `http://` endpoint with keys (role credentials are fetched from STS over
/// HTTPS). Such a client never verifies a certificate, so it skips loading
/// the system's trust store, which read ~150 files and took most of a
/// function's start-up (`strace`: 18.6 of the 33 ms from exec to listen).
fn plain_http_only(cfg: &S3Config) -> bool {
    !cfg.role_credentials()
        && cfg
            .endpoint
            .as_deref()
            .and_then(|ep| url::Url::parse(ep).ok())
            .is_some_and(|url| url.scheme() == "http")
}

/// A client for the configured bucket. Nothing is sent until the first call.
/// When the function goes idle, the client is made anew
/// ([`BlobStore::release_idle`]), which lets its pooled connections go.
///
/// [`BlobStore::release_idle`]: crate::BlobStore::release_idle
pub fn open(cfg: &S3Config) -> Result<ObjectStoreBackend, StorageError> {
    let (first, name) = client(cfg)?;
    let cfg = cfg.clone();
    let reconnect: crate::Reconnect = Arc::new(move || {
        client(&cfg).map(|(again, _)| again as Arc<dyn object_store::ObjectStore>)
    });
    Ok(ObjectStoreBackend::new(first, name)
        .with_chunking(Chunking::S3)
        .with_reconnect(reconnect))
}

/// The S3 client for `cfg`, and the store's name for messages.
fn client(cfg: &S3Config) -> Result<(Arc<object_store::aws::AmazonS3>, String), StorageError> {
    install_tls_provider();
    if (cfg.access_key.is_none() || cfg.secret_key.is_none()) && !cfg.role_credentials() {
        let missing = match (&cfg.access_key, &cfg.secret_key) {
            (None, None) => "AWS_ACCESS_KEY and AWS_SECRET_KEY",
            (None, Some(_)) => "AWS_ACCESS_KEY",
            _ => "AWS_SECRET_KEY",
        };
        return Err(StorageError::Config(format!(
            "no S3 credentials: set {missing} (or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), or give the function a web-identity or container role"
        )));
    }
    let mut builder = AmazonS3Builder::new()
        .with_unsigned_payload(cfg.payload_signing.unsigned_for(cfg.endpoint.as_deref()))
        .with_bucket_name(&cfg.bucket)
        .with_region(&cfg.region)
        .with_client_options(
            ClientOptions::new()
                .with_connect_timeout(cfg.connect_timeout)
                .with_timeout(cfg.request_timeout)
                .with_allow_http(true)
                .with_no_system_certificates(plain_http_only(cfg))
                // A burst opens a connection per concurrent request; keep a
                // few for the next calls and let the rest go (256 idle
                // connections kept 10 MiB of buffers in a driver).
                .with_pool_max_idle_per_host(POOL_IDLE_CONNECTIONS)
                .with_pool_idle_timeout(POOL_IDLE_TIMEOUT),
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
    if let Some(t) = &cfg.session_token {
        builder = builder.with_token(t);
    }
    for (name, value) in &cfg.role {
        // object_store's keys are the variables' names in lower case.
        let key = name
            .to_ascii_lowercase()
            .parse::<object_store::aws::AmazonS3ConfigKey>()
            .map_err(|e| StorageError::Config(format!("{name}: {e}")))?;
        builder = builder.with_config(key, value);
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
    Ok((Arc::new(s3), name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An environment holding only `pairs`.
    use crate::test_lookup as lookup;

    #[test]
    fn only_a_plain_http_endpoint_with_keys_skips_the_trust_store() {
        let with = |endpoint: Option<&str>, role: bool| {
            let mut cfg = S3Config::for_endpoint("http://127.0.0.1:9000", "b", "k", "s");
            cfg.endpoint = endpoint.map(str::to_string);
            cfg.role = if role {
                vec![("AWS_WEB_IDENTITY_TOKEN_FILE", "/token".to_string())]
            } else {
                Vec::new()
            };
            plain_http_only(&cfg)
        };
        assert!(with(Some("http://127.0.0.1:9000"), false));
        assert!(with(Some("http://minio.storage.svc:9000"), false));
        assert!(!with(Some("https://s3.example.com"), false));
        assert!(!with(Some("not a url"), false));
        assert!(!with(None, false));
        assert!(!with(Some("http://127.0.0.1:9000"), true));
    }

    #[test]
    fn payload_is_signed_by_default_only_over_http_to_another_host() {
        let auto = S3Config::from_lookup(lookup(&[])).unwrap().payload_signing;
        assert_eq!(auto, PayloadSigning::Auto);
        for signed in [
            "http://minio.default.svc.cluster.local:9000",
            "http://10.0.0.5:9000",
            "http://[fd00::1]:9000",
            "not a url",
        ] {
            assert!(!auto.unsigned_for(Some(signed)), "{signed}");
        }
        for unsigned in [
            "HTTPS://minio.example:9000",
            "http://127.0.0.1:9000",
            "http://127.8.0.1:9000",
            "http://localhost:9000",
            "http://[::1]:9000",
        ] {
            assert!(auto.unsigned_for(Some(unsigned)), "{unsigned}");
        }
        assert!(auto.unsigned_for(None));
        let remote = Some("http://10.0.0.5:9000");
        for (value, unsigned) in [
            ("true", true),
            ("1", true),
            ("false", false),
            ("OFF", false),
        ] {
            let cfg = S3Config::from_lookup(lookup(&[(PayloadSigning::VAR, value)])).unwrap();
            assert_eq!(
                cfg.payload_signing.unsigned_for(remote),
                unsigned,
                "{value}"
            );
            assert_eq!(cfg.payload_signing.unsigned_for(None), unsigned, "{value}");
        }
    }

    #[test]
    fn role_variables_reach_the_client_in_place_of_keys() {
        for name in ROLE_VARIABLES {
            assert!(
                name.to_ascii_lowercase()
                    .parse::<object_store::aws::AmazonS3ConfigKey>()
                    .is_ok(),
                "{name} is not an object_store key"
            );
        }
        let cfg = S3Config::from_lookup(lookup(&[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token"),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
        ]))
        .unwrap();
        assert!(cfg.role_credentials());
        assert_eq!(cfg.role.len(), 2);
        assert!(open(&cfg).is_ok());
        // The role's session name alone is no source of credentials.
        let cfg = S3Config::from_lookup(lookup(&[("AWS_ROLE_SESSION_NAME", "s")])).unwrap();
        assert!(!cfg.role_credentials());
        assert!(open(&cfg).is_err());
    }

    #[test]
    fn a_bad_unsigned_payload_value_names_the_variable() {
        let e = S3Config::from_lookup(lookup(&[(PayloadSigning::VAR, "sometimes")])).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("AWS_UNSIGNED_PAYLOAD")
                && msg.contains("\"sometimes\"")
                && msg.contains("auto"),
            "{msg}"
        );
    }

    #[test]
    fn the_original_variables_are_read() {
        let cfg = S3Config::from_lookup(lookup(&[
            ("BUCKET_NAME", "b"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY", "a"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
        ]))
        .unwrap();
        assert_eq!(cfg.bucket, "b");
        assert_eq!(cfg.region, "eu-west-1");
        assert_eq!(cfg.access_key.as_deref(), Some("a"));
        assert_eq!(cfg.secret_key.as_deref(), Some("s"));
        assert_eq!(cfg.endpoint.as_deref(), Some("http://127.0.0.1:1"));
        let defaults = S3Config::from_lookup(lookup(&[])).unwrap();
        assert_eq!(defaults.bucket, DEFAULT_BUCKET);
        assert_eq!(defaults.region, DEFAULT_REGION);
    }
}
