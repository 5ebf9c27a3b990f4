//! Connection floods and slowloris against a real trainer on loopback: the
//! connections are capped, a connection that never starts a request is
//! closed after the handshake timeout, an idle one after the idle timeout or
//! when the cap needs its place, and a caller with work is served all along.
//! (20,000 idle connections once used up a trainer's descriptors, and a
//! normal Train failed.)

use crate::support;

use std::time::Duration;

use bytes::Bytes;
use stacking_service::connections::ConnectionLimits;
use stacking_service::pb::stacking::trainer_client::TrainerClient;
use stacking_service::server::Role;
use stacking_service::settings::Limits;
use stacking_service::{Context, Route};
use support::requests::*;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMITS: ConnectionLimits = ConnectionLimits {
    max: 16,
    handshake: Duration::from_secs(1),
    idle: Duration::from_secs(3),
};

async fn trainer() -> (std::net::SocketAddr, Context) {
    let limits = Limits {
        connections: LIMITS,
        ..Limits::default()
    };
    let ctx = Context::new(Route::Inline, 2, 2).with_limits(limits);
    (serve_on_loopback(Role::Trainer(ctx.clone())).await, ctx)
}

/// A Train on a new connection, within `bound`.
async fn train_within(addr: std::net::SocketAddr, bound: Duration) {
    let data = Bytes::from(small_dataset().to_bytes());
    let call = async {
        let mut client = TrainerClient::new(channel(addr).await);
        client.train(train_inline(data, lasso())).await
    };
    within(bound, call).await.expect("a Train during the flood");
}

/// Open file descriptors of this process (the server runs in it).
fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_silent_connections_is_capped_and_closed() {
    let (addr, _ctx) = trainer().await;
    let before = open_descriptors();
    // 200 connections that never send a byte, 12 times the cap.
    let mut silent = Vec::new();
    for _ in 0..200 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    // A caller with work is served: each silent one is closed after its
    // handshake timeout, making room.
    train_within(addr, Duration::from_secs(30)).await;
    // Every silent connection is closed by the server in the end.
    let mut closed = 0;
    for mut conn in silent {
        // The server's SETTINGS frame may come first; then the end.
        let mut sink = Vec::new();
        match tokio::time::timeout(Duration::from_secs(20), conn.read_to_end(&mut sink)).await {
            Ok(_) => closed += 1,
            Err(_) => panic!("a silent connection was kept"),
        }
    }
    assert_eq!(closed, 200);
    assert!(
        eventually(Duration::from_secs(5), || open_descriptors() <= before + 8).await,
        "{} descriptors open, {before} before the flood",
        open_descriptors()
    );
}

/// Slowloris: the HTTP/2 preface, then headers a byte at a time. No request
/// ever starts, so the handshake timeout closes the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_completes_a_request_is_closed() {
    let (addr, _ctx) = trainer().await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut closed = false;
    let mut buf = [0u8; 256];
    while started.elapsed() < Duration::from_secs(15) {
        // A byte of a frame header every 200 ms; read what the server sends.
        let _ = slow.write_all(&[0]).await;
        match tokio::time::timeout(Duration::from_millis(200), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            _ => {}
        }
    }
    assert!(closed, "a connection trickling its first request was kept");
    train_within(addr, Duration::from_secs(10)).await;
}

/// Idle HTTP/2 connections that did real work fill the cap; a new caller is
/// served at once (the connection idle longest makes room), and idle ones
/// are closed after the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_make_room_for_callers_with_work() {
    let (addr, _ctx) = trainer().await;
    let data = Bytes::from(small_dataset().to_bytes());
    let mut idle = Vec::new();
    for _ in 0..LIMITS.max {
        let mut client = TrainerClient::new(channel(addr).await);
        client
            .train(train_inline(data.clone(), lasso()))
            .await
            .unwrap();
        idle.push(client);
    }
    // The cap is full of idle connections; a new one is served well before
    // any of them would time out.
    train_within(addr, LIMITS.idle / 2).await;
    // A client whose connection was closed for idleness connects again on
    // its next call.
    tokio::time::sleep(LIMITS.idle + Duration::from_secs(2)).await;
    let mut again = idle.pop().unwrap();
    within(
        Duration::from_secs(10),
        again.train(train_inline(data, lasso())),
    )
    .await
    .expect("a call after the idle close");
}
