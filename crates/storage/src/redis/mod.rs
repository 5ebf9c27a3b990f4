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
//!   bytes, `GET`, `DEL`) on the one retry policy
//!   ([`crate::retry::REDIS_COMMAND`]).
//!
//! Keys are validated as the object-store backends validate them, so one
//! key means the same object whichever store holds it.

use std::ops::Range;
use std::time::{Duration, SystemTime};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{ErrorKind, RedisError};
use async_trait::async_trait;
use bytes::Bytes;

mod config;

pub use self::config::*;
use crate::store::check_key;
use crate::{BlobStore, StorageError};

/// Keys per `DEL` and per `SCAN` step.
const BATCH: usize = 1000;

/// Bytes of values being written at once. The client copies a value into
/// its command and again into its connection's buffer, and queues commands
/// without bound: 256 concurrent uploads of a 2.4 MiB dataset held 1.17 GB
/// in the driver. Writes beyond this wait their turn; Redis takes commands
/// one at a time anyway.
pub const IN_FLIGHT_WRITE_BYTES: usize = 64 << 20;

/// The in-flight write budget is counted in KiB, so any size fits a semaphore.
const WRITE_UNIT: usize = 1024;

/// The store. Connects on first use (and again after the connection drops),
/// so opening it needs no runtime; [`BlobStore::probe`] connects at start-up.
pub struct RedisStore {
    cfg: RedisConfig,
    client: ::redis::Client,
    /// Connected on first use, and made again in the background by
    /// [`BlobStore::release_idle`].
    connection: std::sync::Arc<tokio::sync::Mutex<Option<ConnectionManager>>>,
    /// [`IN_FLIGHT_WRITE_BYTES`], in KiB.
    writes: std::sync::Arc<tokio::sync::Semaphore>,
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
    // Commands go out as soon as they are written, not held back until the
    // previous segment is acknowledged (Nagle's algorithm), as Redis itself
    // does on its side.
    info = info
        .set_redis_settings(settings)
        .set_tcp_settings(::redis::io::tcp::TcpSettings::default().set_nodelay(true));
    let client = ::redis::Client::open(info)
        .map_err(|e| StorageError::Config(format!("Redis address {}: {e}", cfg.url)))?;
    Ok(RedisStore {
        cfg: cfg.clone(),
        client,
        connection: std::sync::Arc::new(tokio::sync::Mutex::new(None)),
        writes: std::sync::Arc::new(tokio::sync::Semaphore::new(
            IN_FLIGHT_WRITE_BYTES / WRITE_UNIT,
        )),
    })
}

/// Why [`connect`] failed.
enum ConnectError {
    Redis(RedisError),
    /// No connection within this bound.
    Timeout(Duration),
}

/// A connection manager for `client`, bounded as a whole by `cfg`'s connect
/// timeout and the retry policy's attempts.
async fn connect(
    client: &::redis::Client,
    cfg: &RedisConfig,
) -> Result<ConnectionManager, ConnectError> {
    // The client's own reconnects follow the same policy's steps (it
    // jitters them with backon too).
    let policy = crate::retry::REDIS_COMMAND;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(cfg.connect_timeout))
        .set_response_timeout(Some(cfg.response_timeout))
        .set_number_of_retries(policy.max_retries)
        .set_min_delay(policy.first_delay)
        .set_max_delay(policy.max_delay);
    // The manager's own connect retries are not bounded in time by its
    // config; the whole first connect is.
    let bound = cfg.connect_timeout * (policy.max_retries as u32 + 2);
    match tokio::time::timeout(bound, client.get_connection_manager_with_config(config)).await {
        Ok(Ok(manager)) => Ok(manager),
        Ok(Err(e)) => Err(ConnectError::Redis(e)),
        Err(_) => Err(ConnectError::Timeout(bound)),
    }
}

impl RedisStore {
    /// The expiry every written key carries.
    pub fn ttl(&self) -> Duration {
        self.cfg.ttl
    }

    async fn connection(&self) -> Result<ConnectionManager, StorageError> {
        let mut cached = self.connection.lock().await;
        if let Some(manager) = cached.as_ref() {
            return Ok(manager.clone());
        }
        let manager = connect(&self.client, &self.cfg)
            .await
            .map_err(|e| match e {
                ConnectError::Redis(e) => self.map("", e),
                ConnectError::Timeout(bound) => StorageError::Unavailable {
                    store: self.describe(),
                    reason: format!("no connection within {} s", bound.as_secs()),
                },
            })?;
        *cached = Some(manager.clone());
        Ok(manager)
    }

    /// `GETRANGE key first last` (offsets as Redis reads them, negative from
    /// the end) and the value's whole size, in one round trip; a missing
    /// key is [`StorageError::NotFound`]. Values are never rewritten in
    /// place, so the three commands of the pipeline see the same value.
    async fn getrange(
        &self,
        key: &str,
        first: i64,
        last: i64,
    ) -> Result<(u64, Vec<u8>), StorageError> {
        check_key(key)?;
        let (exists, size, part): (bool, u64, Vec<u8>) = self
            .run(key, || {
                let mut p = ::redis::pipe();
                p.cmd("EXISTS").arg(key);
                p.cmd("STRLEN").arg(key);
                p.cmd("GETRANGE").arg(key).arg(first).arg(last);
                Request::Pipe(p)
            })
            .await?;
        if !exists {
            return Err(StorageError::NotFound {
                key: key.into(),
                store: self.describe(),
            });
        }
        Ok((size, part))
    }

    /// Runs `request` (idempotent), retrying failures of the connection.
    async fn run<T: ::redis::FromRedisValue>(
        &self,
        key: &str,
        request: impl Fn() -> Request,
    ) -> Result<T, StorageError> {
        let mut delays = crate::retry::REDIS_COMMAND.delays();
        loop {
            let mut conn = self.connection().await?;
            let result = match request() {
                Request::One(cmd) => cmd.query_async::<T>(&mut conn).await,
                Request::Pipe(pipe) => pipe.query_async::<T>(&mut conn).await,
            };
            match result {
                Ok(value) => return Ok(value),
                Err(e) if is_transient(&e) => {
                    // The manager reconnects only after an I/O error it
                    // sees itself; after a timed-out command or reconnect
                    // it kept answering "timed out" for good, even once the
                    // server was back. The next attempt gets a new one.
                    self.forget_connection().await;
                    match delays.next() {
                        Some(delay) => tokio::time::sleep(delay).await,
                        None => return Err(self.map(key, e)),
                    }
                }
                Err(e) => return Err(self.map(key, e)),
            }
        }
    }

    /// Drops the cached connection manager: the next request connects anew.
    async fn forget_connection(&self) {
        *self.connection.lock().await = None;
    }

    fn map(&self, key: &str, e: RedisError) -> StorageError {
        let store = self.describe();
        let denied = e.kind() == ErrorKind::AuthenticationFailed
            || matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"));
        let reason = crate::store::shown_reason(&e.to_string());
        if denied {
            StorageError::PermissionDenied { store, reason }
        } else if e.code() == Some("OOM") {
            StorageError::Full { store, reason }
        } else if key.is_empty() || is_transient(&e) {
            StorageError::Unavailable { store, reason }
        } else {
            StorageError::Unavailable {
                store,
                reason: format!("{}: {reason}", crate::shown_key(key)),
            }
        }
    }
}

fn is_transient(e: &RedisError) -> bool {
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal()
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
        // The value's two copies in the client, within the write budget (a
        // larger value waits for the whole budget and goes alone).
        let units = (data.len().saturating_mul(2) / WRITE_UNIT)
            .clamp(1, IN_FLIGHT_WRITE_BYTES / WRITE_UNIT);
        let _writing = self
            .writes
            .acquire_many(u32::try_from(units).unwrap_or(u32::MAX))
            .await
            .map_err(|_| StorageError::Unavailable {
                store: self.describe(),
                reason: "the store is closing".into(),
            })?;
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
        let last = range.end.saturating_sub(1).min(i64::MAX as u64) as i64;
        let first = range.start.min(i64::MAX as u64) as i64;
        let (size, part) = self.getrange(key, first, last).await?;
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

    async fn get_suffix(&self, key: &str, len: u64) -> Result<(Bytes, u64), StorageError> {
        if len == 0 {
            return self.get_range(key, 0..0).await;
        }
        // GETRANGE counts a negative offset from the end and clips it to
        // the start.
        let from = -i64::try_from(len).unwrap_or(i64::MAX);
        let (size, part) = self.getrange(key, from, -1).await?;
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

    /// Drops the connection: its read and write buffers keep the size of the
    /// largest values that went through it (9 MiB in a driver after 64
    /// concurrent calls). Requests in flight keep their clone of it.
    ///
    /// A new connection, its buffers small, is made at once in the
    /// background: made by the next request instead, it cost that request a
    /// round trip to the server for the handshake, on every call that came
    /// after a quiet second (measured in docs/benchmarks.md, "Store round
    /// trips").
    fn release_idle(&self) {
        let Ok(mut cached) = self.connection.try_lock() else {
            return;
        };
        if cached.take().is_none() {
            // Never connected, or already let go: nothing to make again.
            return;
        }
        drop(cached);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (slot, client, cfg) = (
            self.connection.clone(),
            self.client.clone(),
            self.cfg.clone(),
        );
        // Bounded by the connect timeout; a failure leaves the slot empty,
        // and the next request connects (and reports) as it always did.
        runtime.spawn(async move {
            if let Ok(manager) = connect(&client, &cfg).await {
                let mut cached = slot.lock().await;
                if cached.is_none() {
                    *cached = Some(manager);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_patterns_match_only_the_prefix() {
        assert_eq!(scan_pattern("run-1/"), "run-1/*");
        assert_eq!(scan_pattern("a*b?[c]\\/"), "a\\*b\\?\\[c\\]\\\\/*");
    }
}
