//! A store recovers from every fault of its link: through a fault proxy, a
//! fault is injected during one operation (which may fail, within the
//! bounds), and once it is gone the next operations succeed: no connection
//! a fault broke is used again, no client state stays poisoned.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use stacking_storage::redis::{self, RedisConfig};
use stacking_storage::s3::{self, S3Config};
use stacking_storage::{BlobStore, StorageError};
use stacking_testkit::fault_proxy::{Fault, FaultProxy};
use stacking_testkit::redis::RedisServer;
use stacking_testkit::s3::{S3Server, ACCESS, BUCKET, SECRET};

/// A failed operation during a fault answers within this.
const FAULTED_BOUND: Duration = Duration::from_secs(20);

fn faults() -> [Fault; 5] {
    [
        Fault::Latency(Duration::from_millis(200)),
        Fault::Stall,
        Fault::Reset,
        Fault::CutAfter(64),
        Fault::SlowClose(Duration::from_secs(1)),
    ]
}

/// One fault during a put and a get, then the same store must work again.
async fn recovers(store: &Arc<dyn BlobStore>, proxy: &FaultProxy, fault: Fault) {
    let value = Bytes::from(vec![7u8; 100_000]);
    store.put("run-r/before", value.clone()).await.unwrap();
    proxy.set(fault);
    let started = Instant::now();
    let during = tokio::join!(
        store.put("run-r/during", value.clone()),
        store.get("run-r/before")
    );
    assert!(
        started.elapsed() < FAULTED_BOUND,
        "{fault:?}: {:?}",
        started.elapsed()
    );
    for outcome in [during.0.err(), during.1.err()].into_iter().flatten() {
        assert!(
            matches!(outcome, StorageError::Unavailable { .. }),
            "{fault:?}: {outcome}"
        );
    }
    proxy.set(Fault::None);
    let started = Instant::now();
    store
        .put("run-r/after", value.clone())
        .await
        .unwrap_or_else(|e| panic!("{fault:?}: put after: {e}"));
    assert_eq!(
        store
            .get("run-r/after")
            .await
            .unwrap_or_else(|e| panic!("{fault:?}: get after: {e}")),
        value
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{fault:?}: recovery took {:?}",
        started.elapsed()
    );
    store
        .delete_many(&[
            "run-r/before".into(),
            "run-r/during".into(),
            "run-r/after".into(),
        ])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_store_recovers_from_every_fault_of_its_link() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    for fault in faults() {
        let proxy = FaultProxy::start(server.address().parse().unwrap()).unwrap();
        let cfg = RedisConfig {
            response_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            ..RedisConfig::for_address(&proxy.addr().to_string()).unwrap()
        };
        let store: Arc<dyn BlobStore> = Arc::new(redis::open(&cfg).unwrap());
        recovers(&store, &proxy, fault).await;
    }
    assert_eq!(server.key_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_store_recovers_from_every_fault_of_its_link() {
    let server = S3Server::start().unwrap();
    let upstream = server
        .endpoint()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    for fault in faults() {
        let proxy = FaultProxy::start(upstream).unwrap();
        let cfg =
            S3Config::for_endpoint(&format!("http://{}", proxy.addr()), BUCKET, ACCESS, SECRET);
        let store: Arc<dyn BlobStore> = Arc::new(s3::open(&cfg).unwrap());
        recovers(&store, &proxy, fault).await;
    }
    assert_eq!(server.object_count(), 0);
}
