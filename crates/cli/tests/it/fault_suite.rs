//! The fault suite: a deployment of four function processes with a TCP
//! fault proxy on every link (to the store, S3 or Redis; from the driver to
//! each worker; to Zipkin), and each fault of the proxy injected into one
//! link during one SayHello. After each, the invariants:
//! - the status is one a caller can act on (OK, UNAVAILABLE,
//!   DEADLINE_EXCEEDED), never INTERNAL, UNKNOWN or CANCELLED, and a fault
//!   on the tracing link never fails a call;
//! - the answer comes within the call's deadline and a documented slack;
//! - once the fault is gone, the store holds no object or key of the run;
//! - the next call succeeds;
//! - every process is within its memory bound and idle again.
//!
//! The test command runs a seeded sample, at least one fault on each link
//! (`FAULT_SEED` picks another). The whole suite, every fault on every link
//! of both stores, `FAULT_RUNS` times:
//! `FAULT_RUNS=1 cargo test --release -p stacking --test it fault_suite -- --nocapture`;
//! `FAULT_ONLY=Redis,Store,Stall` keeps the scenarios whose name contains it;
//! `FAULT_LOG_DIR=dir` keeps each function's log there.

use std::process::Command;
use std::time::{Duration, Instant};

use stacking_service::rpc::say_hello;
use stacking_testkit::fault_proxy::{Fault, FaultProxy};
use stacking_testkit::process::{free_port, wait_serving, Proc};
use stacking_testkit::redis::RedisServer;
use stacking_testkit::s3::{S3Server, ACCESS, BUCKET, SECRET};
use stacking_testkit::zipkin::ZipkinCollector;
use tonic::Code;

/// The call's deadline while a fault is on.
const DEADLINE: Duration = Duration::from_secs(6);
/// Beyond the deadline: the driver's answer and the client's own timer.
const SLACK: Duration = Duration::from_secs(3);
/// Idle memory bound of one function after a fault.
const RSS_BOUND_MIB: f64 = 64.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Store {
    S3,
    Redis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Store,
    Trainer,
    Reducer,
    Metatrainer,
    Zipkin,
}

const LINKS: [Link; 5] = [
    Link::Store,
    Link::Trainer,
    Link::Reducer,
    Link::Metatrainer,
    Link::Zipkin,
];

fn faults() -> [Fault; 5] {
    [
        Fault::Latency(Duration::from_millis(200)),
        Fault::Stall,
        Fault::Reset,
        Fault::CutAfter(20_000),
        Fault::SlowClose(Duration::from_secs(2)),
    ]
}

/// The store a deployment uses, for counting what is left in it.
enum StoreServer {
    S3(S3Server),
    Redis(RedisServer),
}

impl StoreServer {
    fn addr(&self) -> std::net::SocketAddr {
        match self {
            StoreServer::S3(s) => s
                .endpoint()
                .trim_start_matches("http://")
                .parse()
                .expect("S3 address"),
            StoreServer::Redis(r) => format!("127.0.0.1:{}", r.port()).parse().expect("address"),
        }
    }

    fn left(&self) -> usize {
        match self {
            StoreServer::S3(s) => s.object_count(),
            StoreServer::Redis(r) => r.key_count() as usize,
        }
    }
}

/// Four function processes and their links, each through a fault proxy.
struct Deployment {
    store: StoreServer,
    _collector: ZipkinCollector,
    proxies: Vec<(Link, FaultProxy)>,
    driver_port: u16,
    processes: Vec<(&'static str, Proc)>,
}

impl Deployment {
    async fn start(store: Store) -> Option<Self> {
        let server = match store {
            Store::S3 => StoreServer::S3(S3Server::start().expect("S3 server")),
            Store::Redis => StoreServer::Redis(RedisServer::start()?),
        };
        let collector = ZipkinCollector::start().expect("collector");
        let ports = [(); 4].map(|_| free_port().expect("port"));
        let local = |port: u16| -> std::net::SocketAddr {
            format!("127.0.0.1:{port}").parse().expect("address")
        };
        let proxy = |to: std::net::SocketAddr| FaultProxy::start(to).expect("proxy");
        let proxies = vec![
            (Link::Store, proxy(server.addr())),
            (Link::Trainer, proxy(local(ports[1]))),
            (Link::Reducer, proxy(local(ports[2]))),
            (Link::Metatrainer, proxy(local(ports[3]))),
            (Link::Zipkin, proxy(collector.addr())),
        ];
        let via = |link: Link| {
            proxies
                .iter()
                .find(|(l, _)| *l == link)
                .map(|(_, p)| p.addr().to_string())
                .expect("proxy")
        };
        let mut env: Vec<(String, String)> = vec![
            ("ENABLE_TRACING".into(), "true".into()),
            ("DRAIN_TIMEOUT_S".into(), "2".into()),
            ("TrainersNum".into(), "4".into()),
            ("CONCURRENT_TRAINING".into(), "true".into()),
            ("RUST_LOG".into(), "error".into()),
        ];
        match store {
            Store::S3 => env.extend([
                ("TRANSFER_TYPE".into(), "S3".into()),
                (
                    "AWS_ENDPOINT_URL".into(),
                    format!("http://{}", via(Link::Store)),
                ),
                ("AWS_ACCESS_KEY".into(), ACCESS.into()),
                ("AWS_SECRET_KEY".into(), SECRET.into()),
                ("BUCKET_NAME".into(), BUCKET.into()),
            ]),
            Store::Redis => env.extend([
                ("TRANSFER_TYPE".into(), "ELASTICACHE".into()),
                ("BUCKET_NAME".into(), via(Link::Store)),
            ]),
        }
        let zipkin = format!("-zipkin=http://{}/api/v2/spans", via(Link::Zipkin));
        // `FAULT_LOG_DIR=dir` keeps each function's log (at info) there.
        let log_dir = std::env::var_os("FAULT_LOG_DIR").map(std::path::PathBuf::from);
        if log_dir.is_some() {
            env.push((
                "RUST_LOG".into(),
                std::env::var("FAULT_LOG").unwrap_or_else(|_| "info".into()),
            ));
        }
        let spawn = |role: &str, port: u16, extra: &[String]| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_stacking"));
            cmd.env_clear()
                .envs(env.iter().map(|(k, v)| (k, v)))
                .args([role, "-host", "127.0.0.1", &format!("-sp={port}"), &zipkin])
                .args(extra);
            match &log_dir {
                Some(dir) => {
                    let log = std::fs::File::create(dir.join(format!("{role}-{port}.log")))
                        .expect("log file");
                    Proc::spawn_logging(&mut cmd, log)
                }
                None => Proc::spawn(&mut cmd),
            }
            .expect("spawn")
        };
        let mut processes = vec![
            ("trainer", spawn("trainer", ports[1], &[])),
            ("reducer", spawn("reducer", ports[2], &[])),
            ("metatrainer", spawn("metatrainer", ports[3], &[])),
        ];
        let peers = [
            format!("-tAddr={}", via(Link::Trainer)),
            format!("-rAddr={}", via(Link::Reducer)),
            format!("-mAddr={}", via(Link::Metatrainer)),
        ];
        processes.insert(0, ("driver", spawn("driver", ports[0], &peers)));
        for port in ports {
            wait_serving(port, Duration::from_secs(20), Duration::from_millis(10))
                .await
                .expect("serving");
        }
        Some(Self {
            store: server,
            _collector: collector,
            proxies,
            driver_port: ports[0],
            processes,
        })
    }

    fn proxy(&self, link: Link) -> &FaultProxy {
        self.proxies
            .iter()
            .find(|(l, _)| *l == link)
            .map(|(_, p)| p)
            .expect("a proxy on every link")
    }

    async fn call(&self, deadline: Duration) -> (Result<String, tonic::Status>, Duration) {
        let url = format!("http://127.0.0.1:{}", self.driver_port);
        let started = Instant::now();
        let reply = say_hello(&url, "fault suite", deadline)
            .await
            .map(|r| r.message);
        (reply, started.elapsed())
    }
}

/// One fault on one link during one call, and every invariant after it.
async fn scenario(store: Store, link: Link, fault: Fault) -> Option<String> {
    let deployment = Deployment::start(store).await?;
    let what = format!("{store:?}, {link:?}, {fault:?}");
    let (warm, _) = deployment.call(Duration::from_secs(30)).await;
    assert!(warm.is_ok(), "{what}: the call before the fault: {warm:?}");
    deployment.proxy(link).set(fault);
    let (faulted, took) = deployment.call(DEADLINE).await;
    deployment.proxy(link).set(Fault::None);
    let code = faulted.as_ref().err().map_or(Code::Ok, tonic::Status::code);
    assert!(
        matches!(code, Code::Ok | Code::Unavailable | Code::DeadlineExceeded),
        "{what}: {faulted:?}"
    );
    if link == Link::Zipkin {
        assert_eq!(code, Code::Ok, "{what}: tracing failed a call: {faulted:?}");
    }
    assert!(took <= DEADLINE + SLACK, "{what}: answered after {took:?}");
    // The run's objects are gone once the store is back (a refused cleanup
    // is retried with backoff).
    let give_up = Instant::now() + Duration::from_secs(40);
    while deployment.store.left() > 0 && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(deployment.store.left(), 0, "{what}: objects left");
    let (next, _) = deployment.call(Duration::from_secs(30)).await;
    assert!(next.is_ok(), "{what}: the call after the fault: {next:?}");
    // Bounded afterwards: memory, and idle again.
    let before: Vec<f64> = deployment
        .processes
        .iter()
        .map(|(_, p)| p.cpu_seconds())
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    for ((role, p), cpu) in deployment.processes.iter().zip(before) {
        let rss = p.rss_mib();
        assert!(rss <= RSS_BOUND_MIB, "{what}: {role} holds {rss:.1} MiB");
        let busy = p.cpu_seconds() - cpu;
        assert!(
            busy < 0.2,
            "{what}: {role} used {busy:.2} s of CPU in 1 s idle"
        );
    }
    Some(format!(
        "{what}: {code:?} in {:.1} s, 0 objects left",
        took.as_secs_f64()
    ))
}

/// A SplitMix64 step: the sample's seed.
fn mix(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_on_every_link_keeps_the_invariants() {
    let runs: usize = std::env::var("FAULT_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut seed: u64 = std::env::var("FAULT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20261206);
    let mut plan = Vec::new();
    if runs == 0 {
        // The short run: each link once, S3 and Redis in turn, a fault
        // drawn from the seed.
        for (i, link) in LINKS.into_iter().enumerate() {
            let store = if i % 2 == 0 { Store::S3 } else { Store::Redis };
            let fault = faults()[(mix(&mut seed) % 5) as usize];
            plan.push((store, link, fault));
        }
    } else {
        for _ in 0..runs {
            for store in [Store::S3, Store::Redis] {
                for link in LINKS {
                    for fault in faults() {
                        plan.push((store, link, fault));
                    }
                }
            }
        }
    }
    // `FAULT_ONLY=Redis,Store,Stall` repeats the scenarios whose name
    // contains that text (store, link, fault, as the lines print them).
    let only = std::env::var("FAULT_ONLY").unwrap_or_default();
    plan.retain(|(store, link, fault)| {
        format!("{store:?},{link:?},{fault:?}").contains(only.as_str())
    });
    let mut done = 0;
    for (store, link, fault) in plan {
        if let Some(line) = scenario(store, link, fault).await {
            eprintln!("fault suite: {line}");
            done += 1;
        }
    }
    eprintln!("fault suite: {done} faults injected, every invariant held");
    assert!(done > 0);
}
