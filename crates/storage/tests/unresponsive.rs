//! An S3 endpoint that accepts connections and never answers fails every
//! operation with `Unavailable` within the documented bound (2 s connect,
//! 5 s per request, no retry started after 5 s), instead of hanging.

use std::time::{Duration, Instant};

use stacking_storage::s3::{self, S3Config};
use stacking_storage::{BlobStore, StorageError};

#[tokio::test]
async fn a_silent_endpoint_is_unavailable_in_bounded_time() {
    let silent = stacking_testkit::process::silent_peer().await.unwrap();
    let endpoint = format!("http://{silent}");
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY", "a"),
        ("AWS_SECRET_KEY", "s"),
    ];
    let cfg = S3Config::from_lookup(|k| {
        env.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.to_string())
    })
    .unwrap();
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
