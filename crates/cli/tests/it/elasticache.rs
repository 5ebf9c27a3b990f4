//! `TRANSFER_TYPE=ELASTICACHE` as users run it: the original's environment
//! (`BUCKET_NAME=host:port`) on four processes, `check-config`, and
//! `stacking run --store redis`, against a real `redis-server` on loopback.

use crate::support;

use std::time::Duration;

use stacking_service::rpc::say_hello;
use stacking_testkit::process::{free_port, wait_serving, Proc};
use stacking_testkit::redis::RedisServer;
use support::{run, stacking, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_with_the_originals_environment() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let address = redis.address();
    let ports: Vec<u16> = (0..4).map(|_| free_port().unwrap()).collect();
    let env = [
        ("TRANSFER_TYPE", "ELASTICACHE"),
        ("BUCKET_NAME", address.as_str()),
        ("CONCURRENT_TRAINING", "true"),
    ];
    let sp = |i: usize| format!("-sp={}", ports[i]);
    let addr = |i: usize| format!("127.0.0.1:{}", ports[i]);
    let spawn = |args: &[&str]| {
        Proc::spawn(stacking().args(args).envs(env.iter().copied())).expect("spawn stacking")
    };
    let mut procs = vec![
        spawn(&["trainer", "-host", "127.0.0.1", &sp(1)]),
        spawn(&["reducer", "-host", "127.0.0.1", &sp(2)]),
        spawn(&["metatrainer", "-host", "127.0.0.1", &sp(3)]),
    ];
    let (t, r, m) = (addr(1), addr(2), addr(3));
    procs.push(spawn(&[
        "driver",
        "-host",
        "127.0.0.1",
        &sp(0),
        "-tAddr",
        &t,
        "-rAddr",
        &r,
        "-mAddr",
        &m,
    ]));
    for &p in &ports {
        wait_serving(p, Duration::from_secs(20), Duration::from_millis(20))
            .await
            .unwrap();
    }
    for _ in 0..2 {
        let reply = say_hello(&addr(0), "test", Duration::from_secs(120))
            .await
            .unwrap();
        let report: serde_json::Value = serde_json::from_str(&reply.report_json).unwrap();
        assert_eq!(report["transfer"], "ELASTICACHE");
        assert!(report["bytes"]["storage_written"].as_u64().unwrap() > 2_000_000);
        // The cleanup runs after the answer.
        let give_up = std::time::Instant::now() + Duration::from_secs(10);
        while redis.key_count() > 0 && std::time::Instant::now() < give_up {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(redis.key_count(), 0, "{:?}", redis.keys());
    }
    for p in procs.iter_mut() {
        let status = p.sigterm(Duration::from_secs(10)).unwrap();
        assert!(status.success(), "exit after SIGTERM: {status:?}");
    }
}

#[test]
fn check_config_pings_the_server_and_names_bad_addresses() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let address = redis.address();
    let check = |bucket: &str| {
        run(stacking()
            .args(["check-config", "trainer"])
            .env("TRANSFER_TYPE", "ELASTICACHE")
            .env("BUCKET_NAME", bucket))
    };
    let ok = check(&address);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(
        text(&ok).contains(&format!("redis://{address}: answers PING")),
        "{}",
        text(&ok)
    );
    let bad = check("http://cache:1");
    assert!(!bad.status.success());
    assert!(text(&bad).contains("BUCKET_NAME"), "{}", text(&bad));
    redis.kill();
    let down = check(&address);
    assert!(!down.status.success());
    assert!(
        text(&down).contains(&format!("redis://{address}")),
        "{}",
        text(&down)
    );
}

#[test]
fn stacking_run_through_redis_leaves_no_keys() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    for args in [
        &["run", "--transfer", "elasticache"][..],
        &[
            "run",
            "--store",
            "redis",
            "--trainers",
            "16",
            "--concurrent",
        ][..],
    ] {
        let o = run(stacking().args(args).env("BUCKET_NAME", redis.address()));
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        let out = text(&o);
        assert!(
            out.contains(&format!("store redis://{}", redis.address())),
            "{out}"
        );
        assert_eq!(redis.key_count(), 0, "{args:?}: {:?}", redis.keys());
    }
}
