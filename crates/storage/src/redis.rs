//! A Redis server as the store: vSwarm's `TRANSFER_TYPE=ELASTICACHE`.
//!
//! The original's storage layer keeps `host:port` of the Redis server in
//! `BUCKET_NAME`, and `put`/`get` are `SET key bytes` / `GET key`. So do we,
//! plus:
//! - `BUCKET_NAME` may also be a `redis://` or `rediss://` (TLS, as
//!   ElastiCache with in-transit encryption) URL, with `user:password@`;
//!   `REDIS_PASSWORD` (and `REDIS_USERNAME`) give credentials without
//!   putting them in the address;
//! - every `SET` carries an expiry (`ELASTICACHE_TTL_S`, default one hour),
//!   so a run that crashes before its cleanup cannot fill the cache;
//! - a value over `ELASTICACHE_MAX_OBJECT_MB` (default 512, Redis's own
//!   `proto-max-bulk-len`) is refused before anything is sent;
//! - connect and each command have time bounds; commands that fail on the
//!   connection are retried (all of them are idempotent: `SET` of the same
//!   bytes, `GET`, `DEL`), at most [`RETRIES`] times with backoff.
//!
//! Keys are validated as the object-store backends validate them, so one
//! key means the same object whichever store holds it.

use std::ops::Range;
use std::time::{Duration, SystemTime};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{ErrorKind, RedisError};
use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::OnceCell;

use crate::{BlobStore, StorageError};

/// Port of a Redis server when the address names none.
pub const DEFAULT_PORT: u16 = 6379;
/// Address when `BUCKET_NAME` is unset (the original's default bucket name
/// is not an address).
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:6379";
/// Expiry of every key a run writes, unless `ELASTICACHE_TTL_S` says otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// Redis refuses bulk strings over 512 MiB (`proto-max-bulk-len`).
pub const REDIS_VALUE_LIMIT: u64 = 512 << 20;
/// TCP connect (and TLS handshake) to the server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// One command, its value included. A 245 MB dataset takes well under a
/// second on loopback; this bounds a server that accepts and never answers.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Retries of a command that failed on the connection.
pub const RETRIES: usize = 2;
/// Keys per `DEL` and per `SCAN` step.
const BATCH: usize = 1000;

/// Redis connection settings.
#[derive(Clone, PartialEq)]
pub struct RedisConfig {
    /// `redis://host:port/db` or `rediss://...`, without credentials.
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub ttl: Duration,
    /// Largest value `put` accepts, in bytes.
    pub max_object_bytes: u64,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
}

impl std::fmt::Debug for RedisConfig {
    // The password never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .field("ttl", &self.ttl)
            .field("max_object_bytes", &self.max_object_bytes)
            .finish()
    }
}

impl RedisConfig {
    /// From the environment, as [`RedisConfig::from_lookup`].
    pub fn from_env() -> Result<Self, StorageError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// `BUCKET_NAME` (`host:port`, `host`, or a `redis://` / `rediss://`
    /// URL; unset: [`DEFAULT_ADDRESS`]), `REDIS_USERNAME`, `REDIS_PASSWORD`,
    /// `ELASTICACHE_TTL_S`, `ELASTICACHE_MAX_OBJECT_MB`, read through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, StorageError> {
        let var = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let address = var("BUCKET_NAME").unwrap_or_else(|| DEFAULT_ADDRESS.into());
        let mut cfg = Self::for_address(&address)?;
        if let Some(user) = var("REDIS_USERNAME") {
            cfg.username = Some(user);
        }
        if let Some(password) = var("REDIS_PASSWORD") {
            cfg.password = Some(password);
        }
        if let Some(ttl) = var("ELASTICACHE_TTL_S") {
            let secs = ttl.trim().parse::<u64>().ok().filter(|&s| s > 0).ok_or_else(|| {
                StorageError::Config(format!(
                    "ELASTICACHE_TTL_S={ttl:?} is not allowed; allowed values: whole seconds >= 1 (default {})",
                    DEFAULT_TTL.as_secs()
                ))
            })?;
            cfg.ttl = Duration::from_secs(secs);
        }
        if let Some(max) = var("ELASTICACHE_MAX_OBJECT_MB") {
            let mb = max
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|&mb| mb > 0 && mb << 20 <= REDIS_VALUE_LIMIT)
                .ok_or_else(|| {
                    StorageError::Config(format!(
                        "ELASTICACHE_MAX_OBJECT_MB={max:?} is not allowed; allowed values: 1 to 512 (Redis's proto-max-bulk-len; default 512)"
                    ))
                })?;
            cfg.max_object_bytes = mb << 20;
        }
        Ok(cfg)
    }

    /// A server at `address`: `host:port`, `host` (port 6379), `[v6]:port`,
    /// or a `redis://` / `rediss://` URL whose credentials are taken apart.
    pub fn for_address(address: &str) -> Result<Self, StorageError> {
        let address = address.trim();
        let bad = |why: &str| {
            StorageError::Config(format!(
                "BUCKET_NAME must be a Redis address for TRANSFER_TYPE=ELASTICACHE (host:port, or a redis:// or rediss:// URL): {why}"
            ))
        };
        let with_scheme = if address.contains("://") {
            address.to_string()
        } else {
            format!("redis://{address}")
        };
        let mut url = url::Url::parse(&with_scheme).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "redis" | "rediss") {
            return Err(bad(&format!(
                "scheme {:?} is not redis or rediss",
                url.scheme()
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        let username = (!url.username().is_empty()).then(|| decode(url.username()));
        let password = url.password().map(decode);
        let _ = url.set_username("");
        let _ = url.set_password(None);
        if url.port().is_none() {
            let _ = url.set_port(Some(DEFAULT_PORT));
        }
        Ok(Self {
            url: url.to_string().trim_end_matches('/').to_string(),
            username,
            password,
            ttl: DEFAULT_TTL,
            max_object_bytes: REDIS_VALUE_LIMIT,
            connect_timeout: CONNECT_TIMEOUT,
            response_timeout: RESPONSE_TIMEOUT,
        })
    }
}

fn decode(part: &str) -> String {
    url::form_urlencoded::parse(format!("x={part}").as_bytes())
        .next()
        .map_or_else(|| part.to_string(), |(_, v)| v.into_owned())
}

/// The store. Connects on first use (and again after the connection drops),
/// so opening it needs no runtime; [`BlobStore::probe`] connects at start-up.
pub struct RedisStore {
    cfg: RedisConfig,
    client: ::redis::Client,
    connection: OnceCell<ConnectionManager>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("cfg", &self.cfg)
            .finish()
    }
}

/// A client for the configured server. Nothing is sent until the first call.
pub fn open(cfg: &RedisConfig) -> Result<RedisStore, StorageError> {
    if cfg.url.starts_with("rediss://") {
        crate::s3::install_tls_provider();
    }
    let mut info: ::redis::ConnectionInfo =
        ::redis::IntoConnectionInfo::into_connection_info(cfg.url.as_str())
            .map_err(|e| StorageError::Config(format!("Redis address {}: {e}", cfg.url)))?;
    let mut settings = info.redis_settings().clone();
    if let Some(user) = &cfg.username {
        settings = settings.set_username(user);
    }
    if let Some(password) = &cfg.password {
        settings = settings.set_password(password);
    }
    info = info.set_redis_settings(settings);
    let client = ::redis::Client::open(info)
        .map_err(|e| StorageError::Config(format!("Redis address {}: {e}", cfg.url)))?;
    Ok(RedisStore {
        cfg: cfg.clone(),
        client,
        connection: OnceCell::new(),
    })
}

impl RedisStore {
    /// The expiry every written key carries.
    pub fn ttl(&self) -> Duration {
        self.cfg.ttl
    }

    async fn connection(&self) -> Result<ConnectionManager, StorageError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.cfg.connect_timeout))
            .set_response_timeout(Some(self.cfg.response_timeout))
            .set_number_of_retries(RETRIES)
            .set_max_delay(Duration::from_millis(500));
        self.connection
            .get_or_try_init(|| async {
                // The manager's own connect retries are not bounded in time by
                // its config; the whole first connect is.
                let bound = self.cfg.connect_timeout * (RETRIES as u32 + 2);
                match tokio::time::timeout(
                    bound,
                    self.client.get_connection_manager_with_config(config),
                )
                .await
                {
                    Ok(Ok(manager)) => Ok(manager),
                    Ok(Err(e)) => Err(self.map("", e)),
                    Err(_) => Err(StorageError::Unavailable {
                        store: self.describe(),
                        reason: format!("no connection within {} s", bound.as_secs()),
                    }),
                }
            })
            .await
            .cloned()
    }

    /// Runs `request` (idempotent), retrying failures of the connection.
    async fn run<T: ::redis::FromRedisValue>(
        &self,
        key: &str,
        request: impl Fn() -> Request,
    ) -> Result<T, StorageError> {
        let mut conn = self.connection().await?;
        let mut attempt = 0;
        loop {
            let result = match request() {
                Request::One(cmd) => cmd.query_async::<T>(&mut conn).await,
                Request::Pipe(pipe) => pipe.query_async::<T>(&mut conn).await,
            };
            match result {
                Ok(value) => return Ok(value),
                Err(e) if attempt < RETRIES && is_transient(&e) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50 << (2 * attempt))).await;
                }
                Err(e) => return Err(self.map(key, e)),
            }
        }
    }

    fn map(&self, key: &str, e: RedisError) -> StorageError {
        let store = self.describe();
        let denied = e.kind() == ErrorKind::AuthenticationFailed
            || matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"));
        if denied {
            StorageError::PermissionDenied {
                store,
                reason: e.to_string(),
            }
        } else if key.is_empty() || is_transient(&e) {
            StorageError::Unavailable {
                store,
                reason: e.to_string(),
            }
        } else {
            StorageError::Unavailable {
                store,
                reason: format!("{key:?}: {e}"),
            }
        }
    }
}

fn is_transient(e: &RedisError) -> bool {
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal()
}

/// The same keys the object-store backends accept.
fn check_key(key: &str) -> Result<(), StorageError> {
    if key.is_empty() {
        return Err(StorageError::InvalidKey {
            key: key.into(),
            reason: "empty key".into(),
        });
    }
    object_store::path::Path::parse(key)
        .map(|_| ())
        .map_err(|e| StorageError::InvalidKey {
            key: key.into(),
            reason: e.to_string(),
        })
}

/// `prefix` as a `SCAN MATCH` pattern matching exactly the keys under it.
fn scan_pattern(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('*');
    pattern
}

/// One command, or several in one round trip. A single command is sent
/// alone so that its server error (`NOAUTH`, ...) reaches [`RedisStore::map`]
/// unwrapped.
enum Request {
    One(::redis::Cmd),
    Pipe(::redis::Pipeline),
}

fn one(name: &str) -> ::redis::Cmd {
    ::redis::cmd(name)
}

#[async_trait]
impl BlobStore for RedisStore {
    async fn put(&self, key: &str, data: Bytes) -> Result<(), StorageError> {
        check_key(key)?;
        let size = data.len() as u64;
        if size > self.cfg.max_object_bytes {
            return Err(StorageError::TooLarge {
                key: key.into(),
                size,
                limit: self.cfg.max_object_bytes,
                store: self.describe(),
                setting: "ELASTICACHE_MAX_OBJECT_MB",
            });
        }
        let ttl = self.cfg.ttl.as_secs().max(1);
        self.run::<()>(key, || {
            let mut set = one("SET");
            set.arg(key).arg(data.as_ref()).arg("EX").arg(ttl);
            Request::One(set)
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        check_key(key)?;
        let value: Option<Vec<u8>> = self
            .run(key, || {
                let mut get = one("GET");
                get.arg(key);
                Request::One(get)
            })
            .await?;
        value
            .map(Bytes::from)
            .ok_or_else(|| StorageError::NotFound {
                key: key.into(),
                store: self.describe(),
            })
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<(Bytes, u64), StorageError> {
        check_key(key)?;
        // Values are never rewritten in place, so three commands in one
        // round trip see the same value.
        let last = range.end.saturating_sub(1).min(i64::MAX as u64);
        let (exists, size, part): (bool, u64, Vec<u8>) = self
            .run(key, || {
                let mut p = ::redis::pipe();
                p.cmd("EXISTS").arg(key);
                p.cmd("STRLEN").arg(key);
                p.cmd("GETRANGE")
                    .arg(key)
                    .arg(range.start.min(i64::MAX as u64))
                    .arg(last);
                Request::Pipe(p)
            })
            .await?;
        if !exists {
            return Err(StorageError::NotFound {
                key: key.into(),
                store: self.describe(),
            });
        }
        if range.is_empty() {
            return Ok((Bytes::new(), size));
        }
        if range.start >= size {
            return Err(StorageError::RangeNotSatisfiable {
                key: key.into(),
                start: range.start,
                size,
            });
        }
        Ok((Bytes::from(part), size))
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.delete_many(&[key.to_string()]).await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<(), StorageError> {
        for key in keys {
            check_key(key)?;
        }
        for chunk in keys.chunks(BATCH) {
            self.run::<()>("", || {
                let mut del = one("DEL");
                del.arg(chunk);
                Request::One(del)
            })
            .await?;
        }
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let pattern = scan_pattern(prefix);
        let mut cursor = 0u64;
        let mut keys = Vec::new();
        loop {
            let (next, batch): (u64, Vec<String>) = self
                .run(prefix, || {
                    let mut scan = one("SCAN");
                    scan.arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(BATCH);
                    Request::One(scan)
                })
                .await?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        // SCAN may return a key more than once.
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    /// Redis keeps no write time; a key's last access (`OBJECT IDLETIME`)
    /// stands in for it, which for the garbage collector means "untouched
    /// since". Under an LFU eviction policy Redis has no idle time and the
    /// key counts as touched now (its TTL still removes it).
    async fn list_modified(&self, prefix: &str) -> Result<Vec<(String, SystemTime)>, StorageError> {
        let keys = self.list(prefix).await?;
        let now = SystemTime::now();
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH) {
            let idle: Vec<Option<u64>> = match self
                .run(prefix, || {
                    let mut p = ::redis::pipe();
                    for key in chunk {
                        p.cmd("OBJECT").arg("IDLETIME").arg(key);
                    }
                    Request::Pipe(p)
                })
                .await
            {
                Ok(idle) => idle,
                Err(StorageError::Unavailable { reason, .. }) if reason.contains("LFU") => {
                    vec![Some(0); chunk.len()]
                }
                Err(e) => return Err(e),
            };
            for (key, idle) in chunk.iter().zip(idle) {
                // A key that expired between SCAN and OBJECT is gone: skip it.
                if let Some(secs) = idle {
                    let at = now.checked_sub(Duration::from_secs(secs)).unwrap_or(now);
                    out.push((key.clone(), at));
                }
            }
        }
        Ok(out)
    }

    async fn probe(&self) -> Result<(), StorageError> {
        let pong: String = self.run("", || Request::One(one("PING"))).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StorageError::Unavailable {
                store: self.describe(),
                reason: "PING was not answered with PONG".into(),
            })
        }
    }

    fn describe(&self) -> String {
        self.cfg.url.clone()
    }

    fn max_object_bytes(&self) -> Option<u64> {
        Some(self.cfg.max_object_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let env: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| env.get(k).cloned()
    }

    #[test]
    fn addresses_in_the_originals_form_and_as_urls() {
        for (address, url) in [
            ("10.0.0.7:6380", "redis://10.0.0.7:6380"),
            ("cache.internal", "redis://cache.internal:6379"),
            ("[::1]:7000", "redis://[::1]:7000"),
            (
                "rediss://c.cache.amazonaws.com:6379",
                "rediss://c.cache.amazonaws.com:6379",
            ),
            ("redis://127.0.0.1:6379/2", "redis://127.0.0.1:6379/2"),
        ] {
            assert_eq!(
                RedisConfig::for_address(address).unwrap().url,
                url,
                "{address}"
            );
        }
        let with_password = RedisConfig::for_address("rediss://app:p%40ss@c.example:6379").unwrap();
        assert_eq!(with_password.url, "rediss://c.example:6379");
        assert_eq!(with_password.username.as_deref(), Some("app"));
        assert_eq!(with_password.password.as_deref(), Some("p@ss"));
        assert!(!format!("{with_password:?}").contains("p@ss"));
        for bad in ["http://x:1", "redis://", "host:notaport"] {
            let e = RedisConfig::for_address(bad).unwrap_err().to_string();
            assert!(
                e.contains("BUCKET_NAME") && e.contains("ELASTICACHE"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn environment_sets_credentials_ttl_and_limit() {
        let cfg = RedisConfig::from_lookup(lookup(&[
            ("BUCKET_NAME", "127.0.0.1:7001"),
            ("REDIS_PASSWORD", "secret"),
            ("ELASTICACHE_TTL_S", "60"),
            ("ELASTICACHE_MAX_OBJECT_MB", "8"),
        ]))
        .unwrap();
        assert_eq!(cfg.url, "redis://127.0.0.1:7001");
        assert_eq!(cfg.password.as_deref(), Some("secret"));
        assert_eq!(cfg.ttl, Duration::from_secs(60));
        assert_eq!(cfg.max_object_bytes, 8 << 20);
        let defaults = RedisConfig::from_lookup(lookup(&[])).unwrap();
        assert_eq!(defaults.url, "redis://127.0.0.1:6379");
        assert_eq!(defaults.ttl, DEFAULT_TTL);
        assert_eq!(defaults.max_object_bytes, REDIS_VALUE_LIMIT);
        for (var, value) in [
            ("ELASTICACHE_TTL_S", "0"),
            ("ELASTICACHE_TTL_S", "1h"),
            ("ELASTICACHE_MAX_OBJECT_MB", "513"),
        ] {
            let e = RedisConfig::from_lookup(lookup(&[(var, value)]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(var) && e.contains(value), "{e}");
        }
    }

    #[test]
    fn scan_patterns_match_only_the_prefix() {
        assert_eq!(scan_pattern("run-1/"), "run-1/*");
        assert_eq!(scan_pattern("a*b?[c]\\/"), "a\\*b\\?\\[c\\]\\\\/*");
    }
}
