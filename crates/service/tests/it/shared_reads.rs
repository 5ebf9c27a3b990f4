//! Concurrent requests that need the same stored object of a run read it
//! once (`Context::fetch`), against the in-process S3 server, which counts
//! the requests it answers and holds each one for a set latency so that the
//! reads overlap.

use std::time::Duration;

use bytes::Bytes;
use stacking_service::context::{new_run_id, Moved};
use stacking_service::trace::Span;
use stacking_service::{Context, Route};
use tonic::Code;

use crate::support::S3Server;

const LATENCY: Duration = Duration::from_millis(300);

/// `n` concurrent fetches of `key`, each with its result and bytes read.
async fn fetch_at_once(ctx: &Context, key: &str, n: usize) -> Vec<(Result<Bytes, Code>, u64)> {
    let fetches = (0..n).map(|_| async {
        let mut moved = Moved::default();
        let got = ctx
            .fetch(&Bytes::new(), key, "dataset", &mut moved, &Span::none())
            .await
            .map_err(|e| e.code());
        (got, moved.read)
    });
    futures::future::join_all(fetches).await
}

/// A server holding `data` (if any) under a fresh run's dataset key, its
/// requests held [`LATENCY`] from now on, and a trainer's context on it.
async fn run_object(data: Option<Bytes>) -> (S3Server, Context, String) {
    let s3 = S3Server::start().await;
    let store = s3.store();
    let key = format!("{}/dataset", new_run_id());
    if let Some(data) = data {
        store.put(&key, data).await.unwrap();
    }
    s3.set_latency(LATENCY);
    (s3, Context::new(Route::s3(store), 2, 2), key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_of_a_run_object_make_one_request_and_later_ones_read_anew() {
    let data = Bytes::from(vec![7u8; 100_000]);
    let (s3, ctx, key) = run_object(Some(data.clone())).await;

    let before = s3.request_count();
    let got = fetch_at_once(&ctx, &key, 8).await;
    assert_eq!(s3.request_count() - before, 1, "8 concurrent reads");
    let mut reads = Vec::new();
    for (bytes, read) in got {
        assert_eq!(bytes.unwrap(), data);
        reads.push(read);
    }
    reads.sort_unstable();
    let mut expected = vec![0; 7];
    expected.push(data.len() as u64);
    assert_eq!(
        reads, expected,
        "the bytes count once, for the request that read them"
    );

    // A finished read is not kept: the next request reads again.
    let before = s3.request_count();
    fetch_at_once(&ctx, &key, 1).await[0].0.as_ref().unwrap();
    fetch_at_once(&ctx, &key, 1).await[0].0.as_ref().unwrap();
    assert_eq!(
        s3.request_count() - before,
        2,
        "2 reads one after the other"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_outside_a_run_are_read_by_each_request() {
    let s3 = S3Server::start().await;
    let store = s3.store();
    let ctx = Context::new(Route::s3(store.clone()), 2, 2);
    // The original driver's kind of key: another caller may rewrite it.
    let key = "dataset";
    store.put(key, Bytes::from_static(b"x")).await.unwrap();
    s3.set_latency(LATENCY);
    let before = s3.request_count();
    for (bytes, _) in fetch_at_once(&ctx, key, 4).await {
        assert_eq!(bytes.unwrap(), Bytes::from_static(b"x"));
    }
    assert_eq!(s3.request_count() - before, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_read_that_fails_fails_every_waiter_with_the_store_error() {
    let (s3, ctx, key) = run_object(None).await;
    let before = s3.request_count();
    for (got, read) in fetch_at_once(&ctx, &key, 4).await {
        assert_eq!(got, Err(Code::NotFound));
        assert_eq!(read, 0);
    }
    assert_eq!(s3.request_count() - before, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_whose_requests_all_went_away_stops_and_is_not_joined() {
    let (s3, ctx, key) = run_object(Some(Bytes::from_static(b"data"))).await;
    let before = s3.request_count();
    let abandoned = {
        let (ctx, key) = (ctx.clone(), key.clone());
        tokio::spawn(async move { fetch_at_once(&ctx, &key, 2).await })
    };
    tokio::time::sleep(LATENCY / 3).await;
    abandoned.abort();
    let _ = abandoned.await;
    assert_eq!(
        s3.request_count() - before,
        1,
        "the abandoned read was sent"
    );
    // Were the abandoned read still going, this request would join it.
    let got = fetch_at_once(&ctx, &key, 1).await;
    assert_eq!(got[0].0, Ok(Bytes::from_static(b"data")));
    assert_eq!(s3.request_count() - before, 2);
}
