//! `cargo bench -p stacking --bench services`: the functions as separate
//! processes on loopback, with a real S3-API server on loopback (the
//! testkit's: s3s with objects in memory, on its own runtime threads; or the
//! server `AWS_ENDPOINT_URL` names),
//! measured against the goals of the services issue, tightened by the
//! performance issue (13) where it set its own:
//!
//! - SayHello median, 4 trainers sequential, S3 (goal <= 100 ms);
//! - SayHello median, 16 trainers concurrent, S3 (goal <= 250 ms);
//! - orchestration overhead = end-to-end minus the same steps' compute run
//!   in-process, embedded store (goal <= 3 ms) and S3 (goal <= 25 ms);
//! - cold start, launch to a healthy gRPC health check (goal <= 5 ms, the
//!   driver <= 8 ms); the driver reports SERVING while it still makes its
//!   dataset, so its first SayHello is also timed against the next ones;
//! - idle PSS of the four functions started from one binary file (goal
//!   <= 4 MiB per worker, <= 8 MiB for the driver, which holds its 2.4 MiB
//!   dataset), with their RSS beside it, and peak RSS under 16 concurrent
//!   (goal <= 60 MiB).
//!
//! The original Python services measured on this kind of machine: 460-1130 ms
//! (4 sequential), 1.6-2.1 s (16 concurrent), cold start 0.6-1.9 s, RSS
//! 88-184 MiB idle and up to 300 MiB under load.
//!
//! S3 is measured twice: as deployed by default (to a loopback server the
//! SigV4 signature does not cover the payload) and with every payload signed
//! (`AWS_UNSIGNED_PAYLOAD=false`, what plain HTTP to another host gets). INLINE (every payload inside
//! the gRPC messages between processes) is measured too; its overhead has no
//! goal. Overheads pair each SayHello with an in-process run of the same
//! compute right after it and take the median of the differences, so slow
//! drift of this shared machine cancels out.
//!
//! ELASTICACHE (Redis) is measured the same way as S3 when `redis-server` is
//! installed (the testkit starts one on loopback), with no goal of its own:
//! it sits beside S3 and INLINE for comparison.
//!
//! It also replays one run's storage traffic (the same objects, sizes and
//! order, no gRPC, no compute) straight against the store: the part of the
//! S3 overhead that is the store's own time.
//!
//! It counts the store's round trips on the critical path ([`rounds`]): for
//! 4 and 16 trainers, sequential and concurrent, the store requests per
//! call and the end-to-end time with every store request held 0, 20 and
//! 200 ms (the testkit S3 server, and Redis through the testkit's fault
//! proxy when redis-server is installed).
//!
//! Options (after `--`): `--runs N` (default 15); `--idle-only`: only the
//! cold starts and the idle memory; `--rounds-only`: only the round trips.

mod harness;
mod rounds;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use stacking_core::config::default_meta;
use stacking_core::dataset::{make_classification, GeneratorParams};
use stacking_core::stack::{meta_features, train_level0_threads, train_level1};
use stacking_core::{npy, serial, Dataset, FullModel, StackConfig};
use stacking_service::local::{LocalOptions, LocalStack};
use stacking_service::Transfer;
use stacking_service::{Route, RunPlan};
use stacking_storage::memory;
use stacking_storage::redis::{self as redis_store, RedisConfig};
use stacking_storage::s3::{self, PayloadSigning, S3Config};
use stacking_testkit::fault_proxy::FaultProxy;
use stacking_testkit::redis::RedisServer;
use stacking_testkit::s3::{S3Server, ACCESS, BUCKET, SECRET};

use self::harness::*;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Each trainer's fit, as the trainer does it: decode the dataset, fit
/// (folds on all cores), encode the model and the out-of-fold predictions.
fn level0_encoded(data: &Bytes, trainers: usize) -> (Vec<Bytes>, Vec<Bytes>) {
    let stack = StackConfig::default();
    (0..trainers)
        .map(|i| {
            let ds = Dataset::from_bytes(data).expect("dataset");
            let out = train_level0_threads(
                stack.model_for_trainer(i),
                ds.x().view(),
                ds.y().view(),
                cpus(),
            )
            .expect("fit");
            (
                Bytes::from(serial::encode_model(&out.model).expect("encode")),
                Bytes::from(npy::encode_f64_1d(&out.oof)),
            )
        })
        .unzip()
}

/// The same steps the functions run, in-process, without gRPC or storage:
/// decode the dataset, fit each trainer (folds on all cores), encode and
/// decode models and predictions, fit the meta model, encode and decode the
/// full model.
fn compute_only(data: &Bytes, trainers: usize) -> f64 {
    let t = Instant::now();
    let (models, preds) = level0_encoded(data, trainers);
    let models: Vec<_> = models
        .iter()
        .map(|m| serial::decode_model(m).expect("model"))
        .collect();
    let preds: Vec<_> = preds
        .iter()
        .map(|p| npy::decode_f64_1d(p).expect("preds"))
        .collect();
    let meta = meta_features(&preds).expect("meta");
    let models =
        serial::decode_models(&serial::encode_models(&models).expect("encode")).expect("models");
    let ds = Dataset::from_bytes(data).expect("dataset");
    let out = train_level1(&default_meta(), meta.view(), ds.y().view()).expect("meta fit");
    let full = FullModel::new(models, out.model).expect("full");
    serial::decode_full(&serial::encode_full(&full).expect("encode")).expect("full decode");
    t.elapsed().as_secs_f64() * 1e3
}

/// The rows of one store-backed mode: SayHello 4 sequential and 16
/// concurrent, the orchestration overhead, and how much of it the store took.
fn store_rows(mode: &str, replay: f64, m: &Measured) {
    row(
        &format!("SayHello, 4 trainers sequential, {mode}"),
        m.four.end_to_end,
        "ms",
        100.0,
    );
    row(
        &format!("SayHello, 16 trainers concurrent, {mode}"),
        m.sixteen,
        "ms",
        250.0,
    );
    row(
        &format!("orchestration overhead, {mode}"),
        m.four.overhead,
        "ms",
        25.0,
    );
    println!(
        "  of which the store's own time (one run's traffic replayed directly): {replay:.1} ms; beyond it: {:.1} ms",
        m.four.overhead - replay
    );
}

/// Peak RSS of a function under 16 concurrent calls.
const PEAK_RSS_GOAL_MIB: f64 = 60.0;

fn row(name: &str, value: f64, unit: &str, goal: f64) {
    let verdict = if value <= goal { "ok" } else { "MISSED" };
    println!("{name:<52} {value:>9.1} {unit:<4} goal <= {goal:>5} {unit:<4} {verdict}");
}

fn main() {
    // The same allocator tuning as the functions, so the in-process
    // reference (compute, storage replay) is measured on equal terms.
    stacking_service::malloc::tune_for_requests(|v| std::env::var_os(v).is_some());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(bench());
}

async fn bench() {
    let args: Vec<String> = std::env::args().collect();
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let dataset = make_classification(&GeneratorParams::default()).expect("dataset");
    let data = Bytes::from(dataset.to_bytes());
    compute_only(&data, 4);

    // Embedded store, all four in this process.
    let local = LocalStack::start(LocalOptions {
        route: Route::new(Transfer::S3, Some(Arc::new(memory::open()))).unwrap(),
        plan: RunPlan {
            trainers: 4,
            concurrent: false,
            keep_objects: false,
            max_message_bytes: 256 << 20,
            ..RunPlan::default()
        },
        stack: StackConfig::default(),
        dataset: dataset.clone(),
        max_jobs: cpus(),
        threads_per_job: cpus(),
        spans: None,
        zipkin: None,
        report: Default::default(),
        limits: Default::default(),
    })
    .await
    .expect("local stack");
    let embedded = paired(local.driver.port(), &data, runs).await;
    local.stop().await;

    // Separate processes with S3 on loopback: the S3-API server named by
    // AWS_ENDPOINT_URL (its bucket must exist), else the testkit server.
    let var = |k: &str, d: &str| {
        std::env::var(k)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| d.to_string())
    };
    let (s3_name, endpoint, access, secret, _s3) = match std::env::var("AWS_ENDPOINT_URL") {
        Ok(e) if !e.is_empty() => (
            format!("external {e}"),
            e,
            var("AWS_ACCESS_KEY", "testing"),
            var("AWS_SECRET_KEY", "testing"),
            None,
        ),
        _ => {
            let s3 = S3Server::start().expect("S3 server");
            (
                "testkit s3s server (objects in memory, own runtime threads)".to_string(),
                s3.endpoint().to_string(),
                ACCESS.to_string(),
                SECRET.to_string(),
                Some(s3),
            )
        }
    };
    let bucket = var("BUCKET_NAME", BUCKET);
    let s3_env: Vec<(String, String)> = [
        ("TRANSFER_TYPE", "S3"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY", access.as_str()),
        ("AWS_SECRET_KEY", secret.as_str()),
        ("BUCKET_NAME", bucket.as_str()),
        ("AWS_REGION", "us-east-1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    // Redis through a fault proxy that adds the latency, when installed.
    let redis_for_rounds = RedisServer::start().map(|server| {
        let upstream = ([127, 0, 0, 1], server.port()).into();
        let proxy = FaultProxy::start(upstream).expect("fault proxy");
        (server, proxy)
    });
    let round_trips = |latency_ms: u64, runs: usize| {
        let (s3, env, redis) = (_s3.as_ref(), &s3_env, redis_for_rounds.as_ref());
        async move {
            let latency = std::time::Duration::from_millis(latency_ms);
            let mut out = Vec::new();
            if let Some(s3) = s3 {
                out.extend(rounds::measure(rounds::Delayed::S3(s3), env, latency, runs).await);
            }
            if let Some((_, proxy)) = redis {
                let env = vec![
                    ("TRANSFER_TYPE".to_string(), "ELASTICACHE".to_string()),
                    ("BUCKET_NAME".to_string(), proxy.addr().to_string()),
                ];
                out.extend(
                    rounds::measure(rounds::Delayed::Redis(proxy), &env, latency, runs).await,
                );
            }
            out
        }
    };
    if args.iter().any(|a| a == "--rounds-only") {
        print_rounds(&round_trips(20, runs).await);
        print_rounds(&round_trips(200, runs.div_ceil(3)).await);
        return;
    }
    let cold = cold_starts(&s3_env).await;
    let idle = idle_four(&s3_env).await;
    if args.iter().any(|a| a == "--idle-only") {
        println!("functions: {}", harness::function_binary().display());
        print_cold_and_idle(&cold, &idle);
        return;
    }

    // S3 as deployed by default (to a loopback server the payload goes
    // unsigned), then with every payload signed (AWS_UNSIGNED_PAYLOAD=false),
    // as over plain HTTP to another host.
    let mut s3_modes = Vec::new();
    for signing in [PayloadSigning::Auto, PayloadSigning::Signed] {
        let store = s3::open(&S3Config {
            payload_signing: signing,
            ..S3Config::for_endpoint(&endpoint, &bucket, &access, &secret)
        })
        .expect("S3 store");
        storage_replay_ms(&store, &data, 4).await;
        let mut replays = Vec::new();
        for _ in 0..runs {
            replays.push(storage_replay_ms(&store, &data, 4).await);
        }
        let mut env = s3_env.clone();
        if signing == PayloadSigning::Signed {
            env.push(("AWS_UNSIGNED_PAYLOAD".into(), "false".into()));
        }
        s3_modes.push((signing, median(replays), measure(&env, &data, runs).await));
    }

    // The same processes with INLINE transfer: no store in the path.
    let inline_env = vec![("TRANSFER_TYPE".to_string(), "INLINE".to_string())];
    let inline = measure(&inline_env, &data, runs).await;

    // ELASTICACHE through a redis-server on loopback, if one is installed.
    let redis = RedisServer::start();
    let mut elasticache = None;
    if let Some(server) = &redis {
        let cfg = RedisConfig::for_address(&server.address()).expect("Redis address");
        let store = redis_store::open(&cfg).expect("Redis store");
        storage_replay_ms(&store, &data, 4).await;
        let mut replays = Vec::new();
        for _ in 0..runs {
            replays.push(storage_replay_ms(&store, &data, 4).await);
        }
        let env = vec![
            ("TRANSFER_TYPE".to_string(), "ELASTICACHE".to_string()),
            ("BUCKET_NAME".to_string(), server.address()),
        ];
        elasticache = Some((median(replays), measure(&env, &data, runs).await));
    }

    println!(
        "stacking services on loopback, 300 x 1024 dataset, {} cores, medians of {runs} calls",
        cpus()
    );
    println!("S3 server: {s3_name}");
    println!("functions: {}", harness::function_binary().display());
    println!(
        "compute of the 4-trainer steps in-process: {:.1} ms (run after each SayHello; overheads are medians of the per-call differences)",
        embedded.compute
    );
    for (signing, replay, m) in &s3_modes {
        let mode = match signing {
            PayloadSigning::Signed => "S3, payloads signed",
            _ => "S3",
        };
        store_rows(mode, *replay, m);
    }
    row(
        "SayHello, 4 trainers sequential, INLINE",
        inline.four.end_to_end,
        "ms",
        100.0,
    );
    row(
        "SayHello, 16 trainers concurrent, INLINE",
        inline.sixteen,
        "ms",
        250.0,
    );
    match &elasticache {
        Some((replay, m)) => store_rows("ELASTICACHE", *replay, m),
        None => println!("ELASTICACHE: not measured (no redis-server installed)"),
    }
    row(
        "orchestration overhead, embedded store",
        embedded.overhead,
        "ms",
        3.0,
    );
    println!(
        "{:<52} {:>9.1} ms   (no goal: every payload crosses gRPC between processes)",
        "orchestration overhead, INLINE", inline.four.overhead
    );
    print_cold_and_idle(&cold, &idle);
    if let Some((_, _, m)) = s3_modes.first() {
        for (role, peak) in &m.peak {
            row(
                &format!("peak RSS {role}, 16 concurrent, S3"),
                *peak,
                "MiB",
                PEAK_RSS_GOAL_MIB,
            );
        }
    }
    for (role, peak) in &inline.peak {
        row(
            &format!("peak RSS {role}, 16 concurrent, INLINE"),
            *peak,
            "MiB",
            PEAK_RSS_GOAL_MIB,
        );
    }
    if let Some((_, m)) = &elasticache {
        for (role, peak) in &m.peak {
            row(
                &format!("peak RSS {role}, 16 concurrent, ELASTICACHE"),
                *peak,
                "MiB",
                PEAK_RSS_GOAL_MIB,
            );
        }
    }
    println!(
        "(embedded store, 4 sequential, end to end: {:.1} ms)",
        embedded.end_to_end
    );
    print_rounds(&round_trips(20, runs).await);
    print_rounds(&round_trips(200, runs.div_ceil(3)).await);
}

fn print_rounds(rounds: &[rounds::Rounds]) {
    if rounds.is_empty() {
        println!(
            "store round trips: not measured (only against the testkit S3 server and redis-server)"
        );
    }
    for r in rounds {
        r.print();
    }
}

fn print_cold_and_idle(cold: &[ColdStart], idle: &[Idle]) {
    for c in cold {
        row(
            &format!("cold start {} (launch to healthy)", c.role),
            c.healthy_ms,
            "ms",
            if c.role == "driver" { 8.0 } else { 5.0 },
        );
        if let Some(extra) = c.first_call_extra_ms {
            println!(
                "{:<52} {:>9.1} ms   (no goal: the first SayHello against the next ones, incl. its dataset wait)",
                "driver: first SayHello after launch, extra", extra
            );
        }
    }
    println!(
        "idle, the four functions started from one binary file (PSS splits their shared pages):"
    );
    for i in idle {
        let goal = if i.role == "driver" { 8.0 } else { 4.0 };
        row(&format!("idle PSS {}", i.role), i.pss_mib, "MiB", goal);
        println!(
            "{:<52} {:>9.1} MiB  (no goal: counts the shared code in every process)",
            format!("idle RSS {}", i.role),
            i.rss_mib
        );
    }
    for i in idle {
        if let Some(m) = i.by_mapping {
            println!(
                "  idle RSS {} by mapping: binary {:.1}, shared libraries {:.1}, heap/stacks/anonymous {:.1} MiB",
                i.role, m.binary_mib, m.other_files_mib, m.anonymous_mib
            );
        }
    }
}
