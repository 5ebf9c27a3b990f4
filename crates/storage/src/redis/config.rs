//! Where the Redis server is and how the store talks to it, read from the
//! environment the original's ELASTICACHE transfer uses.

use std::time::Duration;

use crate::StorageError;

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

/// Redis connection settings.
#[derive(Clone, PartialEq)]
pub struct RedisConfig {
    /// `redis://host:port/db` or `rediss://...`, without credentials.
    pub url: String,
    /// Username for `AUTH`, if any.
    pub username: Option<String>,
    /// Password for `AUTH`, if any (never shown).
    pub password: Option<String>,
    /// Expiry of every key written.
    pub ttl: Duration,
    /// Largest value `put` accepts, in bytes.
    pub max_object_bytes: u64,
    /// TCP connect (and TLS handshake) bound.
    pub connect_timeout: Duration,
    /// Bound on one command.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_lookup as lookup;

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
}
