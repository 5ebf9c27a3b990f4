//! `cargo bench -p stacking --bench soak -- [--minutes N] [--rps R] [--transfer s3|inline]
//! [--trainers N]`: the four functions as separate processes on loopback
//! (and the testkit S3 server for `s3`), called open-loop at a fixed rate for
//! N minutes (default 3 at 2 requests/s, 4 concurrent trainers). It prints,
//! per process, RSS after a warm-up minute's first requests and at the end
//! (the drift), the errors by status code, and p50/p99 latency of the first
//! and the last minute. Drift is what it is for: a leak shows as RSS that
//! keeps growing and as a last minute slower than the first.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stacking_service::pb::helloworld::greeter_client::GreeterClient;
use stacking_service::pb::helloworld::HelloRequest;
use stacking_testkit::process::{free_port, wait_serving, Proc};
use stacking_testkit::s3::{S3Server, ACCESS, BUCKET, SECRET};

struct Options {
    minutes: u64,
    rps: f64,
    s3: bool,
    trainers: usize,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    Options {
        minutes: value("--minutes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(3)
            .max(1),
        rps: value("--rps")
            .and_then(|v| v.parse().ok())
            .unwrap_or(2.0f64)
            .max(0.1),
        s3: value("--transfer").is_none_or(|t| t != "inline"),
        trainers: value("--trainers")
            .and_then(|v| v.parse().ok())
            .unwrap_or(4),
    }
}

/// One completed request: when it was issued (from the start), how long it
/// took, and its status code (0 = OK).
struct Sample {
    issued: Duration,
    latency_ms: f64,
    code: i32,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn window(samples: &[Sample], from: Duration, to: Duration) -> (usize, f64, f64) {
    let mut v: Vec<f64> = samples
        .iter()
        .filter(|s| s.code == 0 && s.issued >= from && s.issued < to)
        .map(|s| s.latency_ms)
        .collect();
    v.sort_by(f64::total_cmp);
    (v.len(), percentile(&v, 0.5), percentile(&v, 0.99))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(soak(options()));
}

async fn soak(o: Options) {
    let s3 = if o.s3 {
        Some(S3Server::start().expect("S3 server"))
    } else {
        None
    };
    let mut env: Vec<(String, String)> = vec![
        (
            "TRANSFER_TYPE".into(),
            if o.s3 { "S3" } else { "INLINE" }.into(),
        ),
        ("TrainersNum".into(), o.trainers.to_string()),
        ("CONCURRENT_TRAINING".into(), "true".into()),
        ("RUST_LOG".into(), "warn".into()),
    ];
    if let Some(s3) = &s3 {
        for (k, v) in [
            ("AWS_ENDPOINT_URL", s3.endpoint()),
            ("AWS_ACCESS_KEY", ACCESS),
            ("AWS_SECRET_KEY", SECRET),
            ("BUCKET_NAME", BUCKET),
        ] {
            env.push((k.into(), v.into()));
        }
    }
    let ports = [(); 4].map(|_| free_port().expect("port"));
    let addr = |i: usize| format!("127.0.0.1:{}", ports[i]);
    let roles = ["driver", "trainer", "reducer", "metatrainer"];
    let mut procs = Vec::new();
    for (i, role) in roles.iter().enumerate() {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stacking"));
        cmd.env_clear().envs(env.iter().map(|(k, v)| (k, v))).args([
            *role,
            "-host",
            "127.0.0.1",
            &format!("-sp={}", ports[i]),
        ]);
        if *role == "driver" {
            cmd.args(["-tAddr", &addr(1), "-rAddr", &addr(2), "-mAddr", &addr(3)]);
        }
        procs.push(Proc::spawn(&mut cmd).expect("spawn"));
    }
    for port in ports {
        wait_serving(port, Duration::from_secs(30), Duration::from_millis(10))
            .await
            .expect("serving");
    }
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", addr(0)))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let client = GreeterClient::new(channel);
    println!(
        "soak: {} min at {} rps, {} trainers concurrent, transfer {}",
        o.minutes,
        o.rps,
        o.trainers,
        if o.s3 {
            "S3 (testkit server)"
        } else {
            "INLINE"
        }
    );

    // Warm-up: a few calls, then the starting RSS.
    for _ in 0..5 {
        let _ = client
            .clone()
            .say_hello(HelloRequest {
                name: "warm".into(),
            })
            .await;
    }
    let rss_start: Vec<f64> = procs.iter().map(Proc::rss_mib).collect();

    let samples = Arc::new(Mutex::new(Vec::new()));
    let total = Duration::from_secs(o.minutes * 60);
    let start = Instant::now();
    let mut tasks = Vec::new();
    let mut k: u64 = 0;
    loop {
        let due = Duration::from_secs_f64(k as f64 / o.rps);
        if due >= total {
            break;
        }
        tokio::time::sleep_until(tokio::time::Instant::from_std(start + due)).await;
        let (mut client, samples) = (client.clone(), Arc::clone(&samples));
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let out = client
                .say_hello(HelloRequest {
                    name: "soak".into(),
                })
                .await;
            let code = match out {
                Ok(_) => 0,
                Err(status) => status.code() as i32,
            };
            if let Ok(mut s) = samples.lock() {
                s.push(Sample {
                    issued: due,
                    latency_ms: t.elapsed().as_secs_f64() * 1e3,
                    code,
                });
            }
        }));
        k += 1;
    }
    for t in tasks {
        let _ = t.await;
    }
    let rss_end: Vec<f64> = procs.iter().map(Proc::rss_mib).collect();
    let peak: Vec<f64> = procs.iter().map(Proc::peak_rss_mib).collect();
    let samples = samples
        .lock()
        .map(|mut s| std::mem::take(&mut *s))
        .unwrap_or_default();

    let mut errors: BTreeMap<i32, usize> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.code != 0) {
        *errors.entry(s.code).or_default() += 1;
    }
    println!(
        "\nrequests issued {k}, completed {}, errors {}",
        samples.len(),
        errors.values().sum::<usize>()
    );
    for (code, n) in &errors {
        println!("  {:?}: {n}", tonic::Code::from(*code));
    }
    let minute = Duration::from_secs(60);
    let (n1, p50_1, p99_1) = window(&samples, Duration::ZERO, minute);
    let (n2, p50_2, p99_2) = window(&samples, total - minute, total);
    println!("\n  window        requests   p50 ms   p99 ms");
    println!("  first minute  {n1:>8}  {p50_1:>7.1}  {p99_1:>7.1}");
    println!("  last minute   {n2:>8}  {p50_2:>7.1}  {p99_2:>7.1}");
    println!("\n  process      RSS start MiB   RSS end MiB   drift MiB   peak MiB");
    for (i, role) in roles.iter().enumerate() {
        println!(
            "  {role:<12} {:>13.1} {:>13.1} {:>+11.1} {:>10.1}",
            rss_start[i],
            rss_end[i],
            rss_end[i] - rss_start[i],
            peak[i]
        );
    }
    if let Some(s3) = &s3 {
        println!("\nobjects left in the bucket: {}", s3.object_count());
    }
    for p in procs.iter_mut() {
        let _ = p.sigterm(Duration::from_secs(30));
    }
}
