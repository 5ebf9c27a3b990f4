//! What the Redis store adds to the contract, against a real `redis-server`:
//! an expiry on every key, passwords, the size limit, and bounded failure
//! when the server is gone.

use std::time::{Duration, Instant};

use bytes::Bytes;
use stacking_storage::redis::{open, RedisConfig};
use stacking_storage::{BlobStore, StorageError};
use stacking_testkit::process::free_port;
use stacking_testkit::redis::RedisServer;

fn config(pairs: &[(&str, &str)]) -> RedisConfig {
    let env: std::collections::HashMap<&str, &str> = pairs.iter().copied().collect();
    RedisConfig::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap()
}

#[tokio::test]
async fn every_key_written_expires_after_the_configured_ttl() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let addr = server.address();
    let store = open(&config(&[
        ("BUCKET_NAME", &addr),
        ("ELASTICACHE_TTL_S", "120"),
    ]))
    .unwrap();
    for key in ["run-1/dataset", "run-1/trainer-0/model", "run-1/model_full"] {
        store.put(key, Bytes::from_static(b"x")).await.unwrap();
        let ttl = server.ttl(key);
        assert!((110..=120).contains(&ttl), "{key}: TTL {ttl}");
    }
    let default = open(&config(&[("BUCKET_NAME", &addr)])).unwrap();
    default
        .put("run-2/a", Bytes::from_static(b"y"))
        .await
        .unwrap();
    assert!((3590..=3600).contains(&server.ttl("run-2/a")));
    // Rewriting a key renews its expiry rather than dropping it.
    store
        .put("run-2/a", Bytes::from_static(b"z"))
        .await
        .unwrap();
    assert!(server.ttl("run-2/a") <= 120);
    store.delete_many(&server.keys()).await.unwrap();
    assert_eq!(server.key_count(), 0);
}

#[tokio::test]
async fn passwords_come_from_the_url_or_the_environment() {
    let Some(server) = RedisServer::start_with_password("s3cr@t") else {
        return;
    };
    let port = server.port();
    let none = open(&config(&[("BUCKET_NAME", &server.address())])).unwrap();
    match none.probe().await {
        Err(StorageError::PermissionDenied { reason, .. }) => {
            assert!(!reason.contains("s3cr@t"), "{reason}")
        }
        other => panic!("no password: {other:?}"),
    }
    let wrong = open(&config(&[
        ("BUCKET_NAME", &server.address()),
        ("REDIS_PASSWORD", "guess"),
    ]))
    .unwrap();
    assert!(matches!(
        wrong.put("k", Bytes::from_static(b"v")).await,
        Err(StorageError::PermissionDenied { .. })
    ));
    let from_env = open(&config(&[
        ("BUCKET_NAME", &server.address()),
        ("REDIS_PASSWORD", "s3cr@t"),
    ]))
    .unwrap();
    from_env.probe().await.unwrap();
    let url = format!("redis://:s3cr%40t@127.0.0.1:{port}");
    let from_url = open(&config(&[("BUCKET_NAME", &url)])).unwrap();
    from_url.put("k", Bytes::from_static(b"v")).await.unwrap();
    assert_eq!(from_env.get("k").await.unwrap(), "v");
    assert!(
        !from_url.describe().contains("s3cr"),
        "{}",
        from_url.describe()
    );
    from_url.delete("k").await.unwrap();
}

#[tokio::test]
async fn a_value_over_the_limit_is_refused_before_it_is_sent() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = open(&config(&[
        ("BUCKET_NAME", &server.address()),
        ("ELASTICACHE_MAX_OBJECT_MB", "1"),
    ]))
    .unwrap();
    assert_eq!(store.max_object_bytes(), Some(1 << 20));
    store
        .put("run/at-limit", Bytes::from(vec![7u8; 1 << 20]))
        .await
        .unwrap();
    match store
        .put("run/over", Bytes::from(vec![7u8; (1 << 20) + 1]))
        .await
    {
        Err(e @ StorageError::TooLarge { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("ELASTICACHE_MAX_OBJECT_MB") && msg.contains("1048577"),
                "{msg}"
            );
        }
        other => panic!("over the limit: {other:?}"),
    }
    assert_eq!(server.keys(), vec!["run/at-limit"]);
    store.delete("run/at-limit").await.unwrap();
}

/// A Redis over its `maxmemory` answers `OOM`: that is `Full` (the services
/// answer `RESOURCE_EXHAUSTED`), at once and without retries, since no
/// retry can succeed until memory is freed; the store works again after.
#[tokio::test]
async fn a_full_server_is_full_at_once_not_unavailable() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    server.set_config("maxmemory-policy", "noeviction");
    server.set_config("maxmemory", "2mb");
    let store = open(&config(&[("BUCKET_NAME", &server.address())])).unwrap();
    store.probe().await.unwrap();
    let big = Bytes::from(vec![7u8; 1 << 20]);
    let mut full = None;
    let t = Instant::now();
    for i in 0..8 {
        if let Err(e) = store.put(&format!("oom/{i}"), big.clone()).await {
            full = Some(e);
            break;
        }
    }
    let e = full.expect("a 2 MB server took 8 MiB");
    assert!(matches!(e, StorageError::Full { .. }), "{e:?}");
    assert!(e.to_string().contains("is full"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let keys = store.list("oom/").await.unwrap();
    store.delete_many(&keys).await.unwrap();
    server.set_config("maxmemory", "0");
    store.put("oom/after", big).await.unwrap();
    store.delete("oom/after").await.unwrap();
}

#[tokio::test]
async fn a_server_that_is_gone_is_unavailable_within_the_bounds() {
    // Nothing listens on this port.
    let port = free_port().unwrap();
    let store = open(&RedisConfig::for_address(&format!("127.0.0.1:{port}")).unwrap()).unwrap();
    let started = Instant::now();
    match store.probe().await {
        Err(StorageError::Unavailable { store: name, .. }) => {
            assert!(name.contains(&port.to_string()))
        }
        other => panic!("nothing listening: {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(15));

    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let store = open(&RedisConfig::for_address(&server.address()).unwrap()).unwrap();
    store.put("run/k", Bytes::from_static(b"v")).await.unwrap();
    server.kill();
    let started = Instant::now();
    match store.get("run/k").await {
        Err(StorageError::Unavailable { .. }) => {}
        other => panic!("server killed: {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[tokio::test]
async fn listing_with_times_covers_every_key_under_a_prefix() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = open(&RedisConfig::for_address(&server.address()).unwrap()).unwrap();
    let keys: Vec<String> = (0..2500).map(|i| format!("run-big/{i:05}")).collect();
    for key in &keys {
        store.put(key, Bytes::from_static(b"1")).await.unwrap();
    }
    let listed = store.list_modified("run-big/").await.unwrap();
    assert_eq!(listed.len(), keys.len());
    let now = std::time::SystemTime::now();
    assert!(listed
        .iter()
        .all(|(_, at)| now.duration_since(*at).unwrap_or_default() < Duration::from_secs(60)));
    store.delete_many(&keys).await.unwrap();
    assert_eq!(server.key_count(), 0);
}

#[tokio::test]
async fn a_server_that_accepts_and_never_answers_is_unavailable_within_the_bounds() {
    let peer = stacking_testkit::process::silent_peer().await.unwrap();
    let cfg = RedisConfig {
        connect_timeout: Duration::from_millis(500),
        response_timeout: Duration::from_millis(500),
        ..RedisConfig::for_address(&peer.to_string()).unwrap()
    };
    let store = open(&cfg).unwrap();
    let started = Instant::now();
    for attempt in 0..2 {
        match store.get("run/k").await {
            Err(StorageError::Unavailable { .. }) => {}
            other => panic!("silent peer, attempt {attempt}: {other:?}"),
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// An idle store lets its connection go (its buffers grew with the largest
/// values) and makes a new one at once in the background, so that the next
/// request does not pay the handshake's round trip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_store_reconnects_in_the_background() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = open(&config(&[("BUCKET_NAME", &server.address())])).unwrap();
    // Never connected: letting go makes nothing.
    store.release_idle();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(server.client_ids().is_empty());
    store
        .put("run-1/dataset", Bytes::from(vec![7u8; 3 << 20]))
        .await
        .unwrap();
    let first = server.client_ids();
    assert_eq!(first.len(), 1, "{first:?}");
    store.release_idle();
    // The old connection closes, a new one opens, with no request made.
    let give_up = Instant::now() + Duration::from_secs(5);
    let mut ids = server.client_ids();
    while Instant::now() < give_up && (ids.len() != 1 || ids == first) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        ids = server.client_ids();
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_ne!(ids, first, "the connection was not made again");
    assert_eq!(store.get("run-1/dataset").await.unwrap().len(), 3 << 20);
    assert_eq!(server.client_ids().len(), 1);
    store.delete("run-1/dataset").await.unwrap();
}
