//! An S3 endpoint that accepts connections and never answers fails every
//! operation with `Unavailable` within the documented bound (2 s connect,
//! 5 s per request, no retry started after 5 s), instead of hanging.

use std::time::{Duration, Instant};

use stacking_storage::s3::{self, S3Config};
use stacking_storage::{BlobStore, StorageError};

/// The configuration the functions would read with `endpoint` and dummy keys.
fn config_for(endpoint: &str) -> S3Config {
    let env = [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY", "a"),
        ("AWS_SECRET_KEY", "s"),
    ];
    S3Config::from_lookup(|k| {
        env.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.to_string())
    })
    .unwrap()
}

#[tokio::test]
async fn a_silent_endpoint_is_unavailable_in_bounded_time() {
    let silent = stacking_testkit::process::silent_peer().await.unwrap();
    let cfg = config_for(&format!("http://{silent}"));
    assert_eq!(cfg.request_timeout, s3::REQUEST_TIMEOUT);
    let store = s3::open(&cfg).unwrap();
    let started = Instant::now();
    let e = store.get("run-x/dataset").await.unwrap_err();
    assert!(matches!(e, StorageError::Unavailable { .. }), "{e}");
    // 30 s before this bound existed; the bound is about 5 s.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

/// `https://` endpoints go through rustls with ring as the provider: a peer
/// that hangs up during the handshake is an error, not a panic for a missing
/// crypto provider.
#[tokio::test]
async fn an_https_endpoint_uses_tls_and_fails_cleanly_when_the_peer_hangs_up() {
    let listener = stacking_testkit::process::bind_loopback().unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16) {
            drop(stream);
        }
    });
    let store = s3::open(&config_for(&format!("https://{addr}"))).unwrap();
    let e = store.get("run-x/dataset").await.unwrap_err();
    assert!(matches!(e, StorageError::Unavailable { .. }), "{e}");
}
