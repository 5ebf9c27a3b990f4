//! `cargo bench -p stacking --bench scaling`: the scaling curve. The four
//! functions as separate processes on loopback, data through a store on
//! loopback (the testkit's S3 server by default), started afresh for every
//! point so that each peak RSS belongs to that point alone:
//!
//! - rows {300, 1k, 3k, 10k, 30k} x 1024 features, the benchmark's 4-model
//!   stack, 4 trainers sequential;
//! - trainers {4, 16, 64, 256}, concurrent, on the 300 x 1024 dataset.
//!
//! Each point prints the SayHello time, the driver's stage times, the peak
//! RSS of every function, and scikit-learn's wall time for the same stack on
//! the same data (`bench/sklearn_scaling.py`, where scikit-learn is
//! installed). A point whose time passes the cap (`--cap-s`, default 120 s;
//! the functions' `INVOCATION_TIMEOUT_S` and `COMPUTE_BUDGET_S` are set to
//! it, so the run is stopped there) ends its series: larger sizes are listed
//! as skipped. scikit-learn gets the same cap.
//!
//! The points are also written as JSON beside the SVG (`PATH.json`), and
//! `--redraw JSON` draws the SVG again from such a file without measuring.
//!
//! `STACKING_BIN=path` runs the functions from another binary (an older
//! build, to compare). Options (after `--`): `--cap-s S`, `--rows 300,1000,...`,
//! `--trainers 4,16,...`, `--transfer s3|elasticache|inline`,
//! `--svg PATH` (default `docs/scaling.svg`), `--no-sklearn`, `--redraw JSON`.

mod draw;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use stacking_service::pb::helloworld::greeter_client::GreeterClient;
use stacking_service::pb::helloworld::HelloRequest;
use stacking_testkit::process::{free_port, wait_serving, Proc};
use stacking_testkit::redis::RedisServer;
use stacking_testkit::s3::{S3Server, ACCESS, BUCKET, SECRET};

use self::draw::draw;

const ROLES: [&str; 4] = ["driver", "trainer", "reducer", "metatrainer"];

struct Options {
    cap: Duration,
    rows: Vec<usize>,
    trainers: Vec<usize>,
    transfer: String,
    svg: PathBuf,
    sklearn: bool,
    redraw: Option<PathBuf>,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let list = |name: &str, default: &[usize]| {
        value(name).map_or(default.to_vec(), |v| {
            v.split(',').filter_map(|x| x.trim().parse().ok()).collect()
        })
    };
    Options {
        cap: Duration::from_secs(value("--cap-s").and_then(|v| v.parse().ok()).unwrap_or(120)),
        rows: list("--rows", &[300, 1000, 3000, 10_000, 30_000]),
        trainers: list("--trainers", &[4, 16, 64, 256]),
        transfer: value("--transfer").unwrap_or_else(|| "s3".into()),
        svg: value("--svg").map_or_else(
            || {
                PathBuf::from(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../../docs/scaling.svg"
                ))
            },
            PathBuf::from,
        ),
        sklearn: !args.iter().any(|a| a == "--no-sklearn"),
        redraw: value("--redraw").map(PathBuf::from),
    }
}

/// One measured point.
#[derive(Debug, Clone)]
struct Point {
    rows: usize,
    trainers: usize,
    /// SayHello wall time, s; `None` when it failed or passed the cap.
    seconds: Option<f64>,
    stages: BTreeMap<String, f64>,
    /// Peak RSS per role, MiB.
    peak: Vec<(&'static str, f64)>,
    sklearn_s: Option<f64>,
    note: String,
}

/// The environment every function gets for `transfer`.
struct Store {
    env: Vec<(String, String)>,
    _s3: Option<S3Server>,
    _redis: Option<RedisServer>,
}

fn store(transfer: &str, cap: Duration) -> Store {
    let mut env = vec![
        ("COMPUTE_BUDGET_S".to_string(), cap.as_secs().to_string()),
        (
            "INVOCATION_TIMEOUT_S".to_string(),
            cap.as_secs().to_string(),
        ),
        ("RUST_LOG".to_string(), "warn".to_string()),
        // The 30k-row dataset and its KNN model are ~250 MB each.
        ("GRPC_MAX_MESSAGE_MB".to_string(), "1024".to_string()),
        ("MEMORY_BUDGET_MB".to_string(), "4096".to_string()),
    ];
    let (mut s3, mut redis) = (None, None);
    match transfer {
        "elasticache" => {
            let server = RedisServer::start().expect("redis-server for --transfer elasticache");
            env.push(("TRANSFER_TYPE".into(), "ELASTICACHE".into()));
            env.push(("BUCKET_NAME".into(), server.address()));
            redis = Some(server);
        }
        "inline" => env.push(("TRANSFER_TYPE".into(), "INLINE".into())),
        _ => {
            let server = S3Server::start().expect("S3 server");
            for (k, v) in [
                ("TRANSFER_TYPE", "S3"),
                ("AWS_ENDPOINT_URL", server.endpoint()),
                ("AWS_ACCESS_KEY", ACCESS),
                ("AWS_SECRET_KEY", SECRET),
                ("BUCKET_NAME", BUCKET),
            ] {
                env.push((k.into(), v.into()));
            }
            s3 = Some(server);
        }
    }
    Store {
        env,
        _s3: s3,
        _redis: redis,
    }
}

/// The binary the functions run: `STACKING_BIN` when set (an older build,
/// to compare), else the one this bench was built with.
fn function_binary() -> std::path::PathBuf {
    std::env::var_os("STACKING_BIN").map_or_else(
        || std::path::PathBuf::from(env!("CARGO_BIN_EXE_stacking")),
        std::path::PathBuf::from,
    )
}

async fn launch(role: &str, extra: &[String], env: &[(String, String)]) -> (Proc, u16) {
    let port = free_port().expect("free port");
    let proc = Proc::spawn(
        Command::new(function_binary())
            .arg(role)
            .args(["-host", "127.0.0.1", &format!("-sp={port}")])
            .args(extra)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
    )
    .expect("spawn");
    wait_serving(port, Duration::from_secs(120), Duration::from_millis(20))
        .await
        .expect("function never became healthy");
    (proc, port)
}

async fn measure(env: &[(String, String)], rows: usize, trainers: usize, cap: Duration) -> Point {
    let mut workers = Vec::new();
    let mut addrs = Vec::new();
    for (role, flag) in [
        ("trainer", "-tAddr"),
        ("reducer", "-rAddr"),
        ("metatrainer", "-mAddr"),
    ] {
        let (proc, port) = launch(role, &[], env).await;
        addrs.push(flag.to_string());
        addrs.push(format!("127.0.0.1:{port}"));
        workers.push((role, proc));
    }
    let mut driver_args = addrs;
    driver_args.extend([
        "-trainersNum".to_string(),
        trainers.to_string(),
        "--n-samples".into(),
        rows.to_string(),
    ]);
    let mut driver_env = env.to_vec();
    driver_env.push(("CONCURRENT_TRAINING".into(), (trainers > 4).to_string()));
    let (driver, port) = launch("driver", &driver_args, &driver_env).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("uri")
        .timeout(cap + Duration::from_secs(30))
        .connect()
        .await
        .expect("connect driver");
    let mut client = GreeterClient::new(channel).max_decoding_message_size(64 << 20);
    let t = Instant::now();
    let reply = client
        .say_hello(HelloRequest {
            name: "scaling".into(),
        })
        .await;
    let seconds = t.elapsed().as_secs_f64();
    let mut peak = vec![("driver", driver.peak_rss_mib())];
    peak.extend(workers.iter().map(|(role, p)| (*role, p.peak_rss_mib())));
    let mut point = Point {
        rows,
        trainers,
        seconds: None,
        stages: BTreeMap::new(),
        peak,
        sklearn_s: None,
        note: String::new(),
    };
    match reply {
        Ok(reply) => {
            point.seconds = Some(seconds);
            let report: serde_json::Value =
                serde_json::from_str(&reply.get_ref().report_json).unwrap_or_default();
            if let Some(stages) = report["stages_ms"].as_object() {
                for (k, v) in stages {
                    point
                        .stages
                        .insert(k.clone(), v.as_f64().unwrap_or(f64::NAN));
                }
            }
            if report["warnings"].as_array().is_some_and(|w| !w.is_empty()) {
                point.note = "convergence warnings".into();
            }
        }
        Err(status) => {
            point.note = format!("{:?} after {seconds:.1} s", status.code());
        }
    }
    point
}

/// scikit-learn's wall time for the same stack, within the cap.
fn sklearn_seconds(rows: usize, trainers: usize, cap: Duration) -> Option<f64> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../bench/sklearn_scaling.py"
    );
    let mut child = Command::new("timeout")
        .args([&cap.as_secs().to_string(), "python3", script])
        .args(["--n-samples", &rows.to_string()])
        .args(["--trainers", &trainers.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut()?, &mut out).ok()?;
    child.wait().ok()?.success().then_some(())?;
    serde_json::from_str::<serde_json::Value>(&out).ok()?["wall_s"].as_f64()
}

fn sklearn_available() -> bool {
    Command::new("python3")
        .args(["-c", "import sklearn, threadpoolctl"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn print_header() {
    println!(
        "{:>6} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} | {:>7} {:>7} {:>7} {:>7} | {:>10}  note",
        "rows",
        "trainers",
        "total s",
        "train s",
        "reduce s",
        "meta s",
        "upload s",
        "drv MiB",
        "trn MiB",
        "red MiB",
        "met MiB",
        "sklearn s"
    );
}

fn print_point(p: &Point) {
    let stage = |k: &str| {
        p.stages
            .get(k)
            .map_or("-".to_string(), |v| format!("{:.2}", v / 1e3))
    };
    let rss = |role: &str| {
        p.peak
            .iter()
            .find(|(r, _)| *r == role)
            .map_or(f64::NAN, |(_, v)| *v)
    };
    println!(
        "{:>6} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} | {:>7.1} {:>7.1} {:>7.1} {:>7.1} | {:>10}  {}",
        p.rows,
        p.trainers,
        p.seconds.map_or("-".to_string(), |s| format!("{s:.2}")),
        stage("train"),
        stage("reduce"),
        stage("metatrain"),
        stage("upload"),
        rss("driver"),
        rss("trainer"),
        rss("reducer"),
        rss("metatrainer"),
        p.sklearn_s.map_or("-".to_string(), |s| format!("{s:.2}")),
        p.note
    );
}

fn to_json(p: &Point) -> serde_json::Value {
    serde_json::json!({
        "rows": p.rows,
        "trainers": p.trainers,
        "seconds": p.seconds,
        "stages_ms": p.stages,
        "peak_rss_mib": p.peak.iter().map(|(r, v)| (r.to_string(), *v)).collect::<BTreeMap<_, _>>(),
        "sklearn_s": p.sklearn_s,
        "note": p.note,
    })
}

fn from_json(v: &serde_json::Value) -> Option<Point> {
    Some(Point {
        rows: v["rows"].as_u64()? as usize,
        trainers: v["trainers"].as_u64()? as usize,
        seconds: v["seconds"].as_f64(),
        stages: serde_json::from_value(v["stages_ms"].clone()).unwrap_or_default(),
        peak: ROLES
            .iter()
            .filter_map(|r| Some((*r, v["peak_rss_mib"][*r].as_f64()?)))
            .collect(),
        sklearn_s: v["sklearn_s"].as_f64(),
        note: v["note"].as_str().unwrap_or_default().to_string(),
    })
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(bench());
}

async fn bench() {
    let o = options();
    if let Some(path) = &o.redraw {
        let text = std::fs::read_to_string(path).expect("read the points");
        let v: serde_json::Value = serde_json::from_str(&text).expect("points JSON");
        let points = |k: &str| -> Vec<Point> {
            v[k].as_array()
                .map(|a| a.iter().filter_map(from_json).collect())
                .unwrap_or_default()
        };
        let transfer = v["transfer"].as_str().unwrap_or("s3").to_string();
        draw(
            &o.svg,
            &points("by_rows"),
            &points("by_trainers"),
            &transfer,
        )
        .expect("draw");
        println!("curves: {}", o.svg.display());
        return;
    }
    let sklearn = o.sklearn && sklearn_available();
    let store = store(&o.transfer, o.cap);
    println!(
        "scaling curve: {} transfer, cap {} s per point, scikit-learn {}",
        o.transfer,
        o.cap.as_secs(),
        if sklearn {
            "measured (wall clock, its default threading)"
        } else {
            "not measured (not installed, or --no-sklearn)"
        }
    );
    print_header();
    let mut by_rows = Vec::new();
    let mut capped = false;
    for &rows in &o.rows {
        if capped {
            println!(
                "{rows:>6} {:>8} skipped: the previous size passed the cap",
                4
            );
            continue;
        }
        let mut p = measure(&store.env, rows, 4, o.cap).await;
        if sklearn {
            p.sklearn_s = sklearn_seconds(rows, 4, o.cap);
        }
        capped = p.seconds.is_none_or(|s| s > o.cap.as_secs_f64());
        print_point(&p);
        by_rows.push(p);
    }
    let mut by_trainers = Vec::new();
    capped = false;
    for &trainers in &o.trainers {
        if capped {
            println!(
                "{:>6} {trainers:>8} skipped: the previous count passed the cap",
                300
            );
            continue;
        }
        let mut p = measure(&store.env, 300, trainers, o.cap).await;
        if sklearn {
            p.sklearn_s = sklearn_seconds(300, trainers, o.cap);
        }
        capped = p.seconds.is_none_or(|s| s > o.cap.as_secs_f64());
        print_point(&p);
        by_trainers.push(p);
    }
    let json = serde_json::json!({
        "transfer": o.transfer,
        "cap_s": o.cap.as_secs(),
        "by_rows": by_rows.iter().map(to_json).collect::<Vec<_>>(),
        "by_trainers": by_trainers.iter().map(to_json).collect::<Vec<_>>(),
    });
    let json_path = o.svg.with_extension("json");
    if let Err(e) = std::fs::write(&json_path, format!("{json:#}\n")) {
        eprintln!("could not write {}: {e}", json_path.display());
    }
    match draw(&o.svg, &by_rows, &by_trainers, &o.transfer) {
        Ok(()) => println!("curves: {}", o.svg.display()),
        Err(e) => eprintln!("could not draw {}: {e}", o.svg.display()),
    }
}
