//! One contract, every backend: the in-memory and directory stores, a real
//! S3-API server over HTTP with signed requests (the testkit's s3s server),
//! and the independent server `.ci/run` starts when `AWS_ENDPOINT_URL` is set.

use std::sync::Arc;

use bytes::Bytes;
use stacking_storage::redis::{self as redis_store, RedisConfig};
use stacking_storage::s3::{self, PayloadSigning, S3Config};
use stacking_storage::{fs, memory, BlobStore, Chunking, StorageError};
use stacking_testkit::redis::RedisServer;
use stacking_testkit::s3::{S3Server, ACCESS, BUCKET, SECRET};

/// Checks every operation under a fresh prefix, leaving nothing behind.
async fn contract(store: &dyn BlobStore, prefix: &str) {
    let name = store.describe();
    store.probe().await.unwrap();
    let key = |k: &str| format!("{prefix}/{k}");
    let data = Bytes::from((0..10_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());

    store.put(&key("a"), data.clone()).await.unwrap();
    store
        .put(&key("b"), Bytes::from_static(b"bee"))
        .await
        .unwrap();
    store
        .put(&key("sub/c"), Bytes::from_static(b"c"))
        .await
        .unwrap();
    assert_eq!(store.get(&key("a")).await.unwrap(), data, "{name}");

    let (middle, size) = store.get_range(&key("a"), 100..300).await.unwrap();
    assert_eq!((middle, size), (data.slice(100..300), 10_000), "{name}");
    let (tail, _) = store.get_range(&key("a"), 9_990..20_000).await.unwrap();
    assert_eq!(tail, data.slice(9_990..), "{name}: range end is clipped");
    match store.get_range(&key("b"), 3..10).await {
        Err(StorageError::RangeNotSatisfiable {
            start: 3, size: 3, ..
        }) => {}
        other => panic!("{name}: range past the end gave {other:?}"),
    }
    match store.get_range(&key("missing"), 0..10).await {
        Err(StorageError::NotFound { key: k, .. }) => assert!(k.ends_with("missing")),
        other => panic!("{name}: ranged get of a missing key gave {other:?}"),
    }
    match store.get(&key("missing")).await {
        Err(StorageError::NotFound { .. }) => {}
        other => panic!("{name}: missing key gave {other:?}"),
    }
    let (end, size) = store.get_suffix(&key("a"), 300).await.unwrap();
    assert_eq!((end, size), (data.slice(9_700..), 10_000), "{name}: suffix");
    let (all, size) = store.get_suffix(&key("b"), 300).await.unwrap();
    assert_eq!(
        (&all[..], size),
        (&b"bee"[..], 3),
        "{name}: a suffix longer than the object"
    );
    match store.get_suffix(&key("missing"), 10).await {
        Err(StorageError::NotFound { .. }) => {}
        other => panic!("{name}: suffix of a missing key gave {other:?}"),
    }

    let mut listed = store.list(&format!("{prefix}/")).await.unwrap();
    listed.sort();
    assert_eq!(listed, vec![key("a"), key("b"), key("sub/c")], "{name}");

    store.delete(&key("missing")).await.unwrap();
    store
        .delete_many(&[key("a"), key("missing"), key("sub/c")])
        .await
        .unwrap();
    assert_eq!(
        store.list(&format!("{prefix}/")).await.unwrap(),
        vec![key("b")]
    );
    store.delete(&key("b")).await.unwrap();
    assert!(
        store.list(&format!("{prefix}/")).await.unwrap().is_empty(),
        "{name}"
    );
    bad_keys_are_refused_before_anything_is_sent(store, prefix).await;
    // An idle function lets its client's buffers go; the next request
    // connects again.
    store.release_idle();
    store.put(&key("again"), data.clone()).await.unwrap();
    assert_eq!(store.get(&key("again")).await.unwrap(), data, "{name}");
    store.delete(&key("again")).await.unwrap();
}

/// A key longer than S3's 1024 bytes, or empty, or with a control
/// character, is `InvalidKey` in every operation of every backend (a 64 KiB
/// key once panicked inside the S3 client), and the message shows at most
/// 200 of its characters, escaped.
async fn bad_keys_are_refused_before_anything_is_sent(store: &dyn BlobStore, prefix: &str) {
    let name = store.describe();
    // Segments of at most 200 bytes, so that the directory store's file
    // names stay within the file system's 255.
    let mut longest = prefix.to_string();
    while longest.len() + 2 <= 1024 {
        let room = (1024 - longest.len() - 1).min(200);
        longest.push('/');
        longest.push_str(&"k".repeat(room));
    }
    while longest.len() < 1024 {
        longest.push('k');
    }
    assert_eq!(longest.len(), 1024);
    store.put(&longest, Bytes::from_static(b"x")).await.unwrap();
    assert_eq!(store.get(&longest).await.unwrap(), Bytes::from_static(b"x"));
    store.delete(&longest).await.unwrap();
    let too_long = format!("{prefix}/{}\n{}", "k".repeat(1100), "z".repeat(64 << 10));
    for key in [too_long.as_str(), "", "a/../b", "a\u{1b}[2Jb"] {
        let results = [
            store.put(key, Bytes::from_static(b"x")).await.err(),
            store.get(key).await.err(),
            store.get_range(key, 0..1).await.err(),
            store.delete(key).await.err(),
            store.delete_many(&[key.to_string()]).await.err(),
        ];
        for result in results {
            match result {
                Some(e @ StorageError::InvalidKey { .. }) => {
                    let message = e.to_string();
                    assert!(message.len() < 400, "{name}: {} bytes", message.len());
                    assert!(
                        !message.contains('\n') && !message.contains('\u{1b}'),
                        "{message}"
                    );
                }
                other => panic!("{name}: a bad key ({} bytes) gave {other:?}", key.len()),
            }
        }
    }
    assert!(
        store.list(&format!("{prefix}/")).await.unwrap().is_empty(),
        "{name}"
    );
}

#[tokio::test]
async fn memory_store_keeps_the_contract() {
    contract(&memory::open(), "run-mem").await;
}

#[tokio::test]
async fn directory_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(&fs::open(dir.path()).unwrap(), "run-fs").await;
}

/// A real `redis-server` (vSwarm's ELASTICACHE transfer); the keys are
/// gone afterwards.
#[tokio::test]
async fn redis_store_keeps_the_contract() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = redis_store::open(&RedisConfig::for_address(&server.address()).unwrap()).unwrap();
    contract(&store, "run-redis").await;
    assert_eq!(server.key_count(), 0);
    // Glob characters in a prefix are matched literally.
    store
        .put("run-[x]/a", Bytes::from_static(b"1"))
        .await
        .unwrap();
    store
        .put("run-x/a", Bytes::from_static(b"2"))
        .await
        .unwrap();
    assert_eq!(store.list("run-[x]/").await.unwrap(), vec!["run-[x]/a"]);
    store
        .delete_many(&["run-[x]/a".into(), "run-x/a".into()])
        .await
        .unwrap();
    assert_eq!(server.key_count(), 0);
}

/// Writes and reads back an object of `size` bytes, and deletes it.
async fn large_objects_move_in_parts(store: &dyn BlobStore, prefix: &str, size: usize) {
    let data = Bytes::from((0..size).map(|i| (i % 253) as u8).collect::<Vec<_>>());
    let key = format!("{prefix}/large");
    store.put(&key, data.clone()).await.unwrap();
    let back = store.get(&key).await.unwrap();
    assert!(
        back == data,
        "{} of {size} bytes read back differ",
        back.len()
    );
    let (tail, total) = store
        .get_range(&key, size as u64 - 10..size as u64)
        .await
        .unwrap();
    assert_eq!((tail, total), (data.slice(size - 10..), size as u64));
    store
        .put(&format!("{prefix}/empty"), Bytes::new())
        .await
        .unwrap();
    assert!(store
        .get(&format!("{prefix}/empty"))
        .await
        .unwrap()
        .is_empty());
    store
        .delete_many(&[key, format!("{prefix}/empty")])
        .await
        .unwrap();
}

/// A store on the testkit server moving objects over `part` bytes in parts,
/// four at a time.
fn chunked_store(server: &S3Server, part: usize) -> stacking_storage::ObjectStoreBackend {
    s3::open(&testkit_config(server, SECRET, PayloadSigning::Auto))
        .unwrap()
        .with_chunking(Chunking {
            part,
            concurrency: 4,
        })
}

/// Objects over the part size go up as multipart uploads and come back in
/// ranged reads, byte for byte, leaving no upload open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_large_objects_move_in_parts() {
    let server = S3Server::start().unwrap();
    let part = 64 << 10;
    let store = chunked_store(&server, part);
    large_objects_move_in_parts(&store, "run-large", 20 * part + 7).await;
    // One object at exactly the part size is a single PUT.
    store
        .put("run-large/one", Bytes::from(vec![1u8; part]))
        .await
        .unwrap();
    assert_eq!(server.completed_multipart_count(), 1);
    assert_eq!(server.pending_multipart_count(), 0);
    assert_eq!(store.get("run-large/one").await.unwrap().len(), part);
    store.delete("run-large/one").await.unwrap();
    assert_eq!(server.object_count(), 0);
}

/// A multipart upload whose part fails is aborted: no upload is left
/// open (its parts would stay stored, unseen) and no object appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_a_failed_multipart_upload_is_aborted() {
    let server = S3Server::start().unwrap();
    let part = 64 << 10;
    let store = chunked_store(&server, part);
    server.refuse_later_parts(true);
    match store
        .put("run-fail/large", Bytes::from(vec![3u8; 10 * part]))
        .await
    {
        Err(StorageError::PermissionDenied { .. }) => {}
        other => panic!("a refused part gave {other:?}"),
    }
    assert_eq!(server.pending_multipart_count(), 0);
    assert_eq!(server.completed_multipart_count(), 0);
    assert_eq!(server.object_count(), 0);
    server.refuse_later_parts(false);
    store
        .put("run-fail/large", Bytes::from(vec![3u8; 10 * part]))
        .await
        .unwrap();
    assert_eq!(server.completed_multipart_count(), 1);
    store.delete("run-fail/large").await.unwrap();
}

fn testkit_config(server: &S3Server, secret: &str, signing: PayloadSigning) -> S3Config {
    S3Config {
        payload_signing: signing,
        ..S3Config::for_endpoint(server.endpoint(), BUCKET, ACCESS, secret)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_with_signed_payloads_keeps_the_contract() {
    let server = S3Server::start().unwrap();
    let store = s3::open(&testkit_config(&server, SECRET, PayloadSigning::Signed)).unwrap();
    contract(&store, "run-s3").await;
    assert_eq!(server.object_count(), 0);
    assert_eq!(server.unsigned_put_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_with_unsigned_payloads_keeps_the_contract() {
    let server = S3Server::start().unwrap();
    // The default, to a loopback endpoint, leaves payloads unsigned.
    let store = s3::open(&testkit_config(&server, SECRET, PayloadSigning::Auto)).unwrap();
    contract(&store, "run-s3-unsigned").await;
    assert_eq!(server.object_count(), 0);
    assert!(server.unsigned_put_count() > 0);
    // The headers are still signed: a wrong secret is refused.
    let wrong = s3::open(&testkit_config(&server, "wrong", PayloadSigning::Unsigned)).unwrap();
    match wrong.put("run-x/a", Bytes::from_static(b"a")).await {
        Err(StorageError::PermissionDenied { .. }) => {}
        other => panic!("a bad signature gave {other:?}"),
    }
    assert_eq!(server.object_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_listing_and_bulk_delete_span_pages() {
    // S3 pages listings and bulk deletes at 1000 keys.
    let server = S3Server::start().unwrap();
    let store: Arc<dyn BlobStore> =
        Arc::new(s3::open(&testkit_config(&server, SECRET, PayloadSigning::Auto)).unwrap());
    let keys: Vec<String> = (0..1_005).map(|i| format!("run-many/k{i:04}")).collect();
    let puts = keys.iter().map(|k| store.put(k, Bytes::from_static(b"x")));
    for r in futures::future::join_all(puts).await {
        r.unwrap();
    }
    assert_eq!(store.list("run-many/").await.unwrap().len(), 1_005);
    store.delete_many(&keys).await.unwrap();
    assert_eq!(server.object_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_wrong_secret_is_permission_denied() {
    let server = S3Server::start().unwrap();
    let store = s3::open(&testkit_config(&server, "wrong", PayloadSigning::Signed)).unwrap();
    match store.put("run-x/a", Bytes::from_static(b"a")).await {
        Err(StorageError::PermissionDenied { .. }) => {}
        other => panic!("a bad signature gave {other:?}"),
    }
    assert_eq!(server.object_count(), 0);
}

/// The second, independent server (`.ci/run` starts moto and sets
/// `AWS_ENDPOINT_URL`); skipped with a note when it is not configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_s3_server_keeps_the_contract() {
    let Some(endpoint) = std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|e| !e.is_empty())
    else {
        eprintln!("AWS_ENDPOINT_URL not set: external S3 contract not run");
        return;
    };
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.into());
    for signing in [PayloadSigning::Signed, PayloadSigning::Unsigned] {
        let store = s3::open(&S3Config {
            payload_signing: signing,
            ..S3Config::for_endpoint(
                &endpoint,
                &env("BUCKET_NAME", BUCKET),
                &env("AWS_ACCESS_KEY", "testing"),
                &env("AWS_SECRET_KEY", "testing"),
            )
        })
        .unwrap();
        let prefix = format!("contract-{}-{signing:?}", std::process::id());
        contract(&store, &prefix).await;
    }
    // A large object: a multipart upload and ranged reads of S3's real part size.
    let store = s3::open(&S3Config::for_endpoint(
        &endpoint,
        &env("BUCKET_NAME", BUCKET),
        &env("AWS_ACCESS_KEY", "testing"),
        &env("AWS_SECRET_KEY", "testing"),
    ))
    .unwrap();
    let prefix = format!("contract-{}-large", std::process::id());
    large_objects_move_in_parts(&store, &prefix, Chunking::S3.part * 2 + 12345).await;
    let missing = s3::open(&S3Config::for_endpoint(
        &endpoint,
        "no-such-bucket-stacking",
        &env("AWS_ACCESS_KEY", "testing"),
        &env("AWS_SECRET_KEY", "testing"),
    ))
    .unwrap();
    let e = missing.probe().await.unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_fails_the_probe_naming_it() {
    let server = S3Server::start().unwrap();
    let store = s3::open(&S3Config::for_endpoint(
        server.endpoint(),
        "no-such-bucket",
        ACCESS,
        SECRET,
    ))
    .unwrap();
    let e = store.probe().await.unwrap_err();
    assert!(
        matches!(e, StorageError::Config(_)) && e.to_string().contains("no-such-bucket"),
        "{e}"
    );
}
