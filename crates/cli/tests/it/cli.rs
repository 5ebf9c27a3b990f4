//! The binary as users run it: `stacking run`, and the four functions as
//! separate processes talking gRPC on loopback, stopped by SIGTERM.

use crate::support;

use std::process::Command;
use std::time::Duration;

use stacking_service::rpc::say_hello;
use stacking_testkit::process::{free_port, wait_serving, Proc};
use support::{run, stacking, text};

/// Bound on one invocation in these tests.
const TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn main_job_prints_a_readable_summary() {
    let o = run(stacking().arg("run"));
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    for needle in [
        "4 trainers (sequential), transfer S3, store memory",
        "LinearSVR",
        "RandomForestRegressor",
        "ensemble AUC (labels vs meta-model probability): 0.786232",
        "the original benchmark would log: 0.922975",
        "stage",
        "bytes moved",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
}

#[test]
fn run_json_and_options() {
    let o = run(stacking().args([
        "run",
        "--json",
        "--transfer",
        "inline",
        "--trainers",
        "3",
        "--concurrent",
        "--invocations",
        "2",
        "--n-samples",
        "100",
        "--n-features",
        "32",
    ]));
    assert!(o.status.success(), "{}", text(&o));
    let lines: Vec<_> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["trainers"].as_array().unwrap().len(), 3);
        assert_eq!(v["transfer"], "INLINE");
        assert_eq!(v["concurrent"], true);
    }
}

#[test]
fn run_on_user_npy_files() {
    let dir = std::env::temp_dir().join(format!("stacking-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ds = stacking_core::dataset::make_classification(&stacking_core::GeneratorParams {
        n_samples: 80,
        n_features: 16,
        seed: 3,
        ..Default::default()
    })
    .unwrap();
    std::fs::write(dir.join("X.npy"), ds.x_npy()).unwrap();
    std::fs::write(dir.join("y.npy"), ds.y_npy()).unwrap();
    let o = run(stacking()
        .args(["run", "--features"])
        .arg(dir.join("X.npy"))
        .arg("--labels")
        .arg(dir.join("y.npy")));
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("80 x 16 dataset"), "{}", text(&o));
    // labels that are not 0/1
    std::fs::write(
        dir.join("bad.npy"),
        stacking_core::npy::encode_f64_1d(&ndarray::Array1::from_elem(80, 2.0)),
    )
    .unwrap();
    let o = run(stacking()
        .args(["run", "--features"])
        .arg(dir.join("X.npy"))
        .arg("--labels")
        .arg(dir.join("bad.npy")));
    assert!(!o.status.success());
    assert!(
        text(&o).contains("both classes must be present; all 80 labels are 2"),
        "{}",
        text(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_environment_names_the_variable() {
    let o = run(stacking()
        .args(["trainer", "-sp", "1"])
        .env("TRANSFER_TYPE", "FTP"));
    assert!(!o.status.success());
    let out = text(&o);
    assert!(
        out.contains("TRANSFER_TYPE") && out.contains("INLINE (default), S3, ELASTICACHE"),
        "{out}"
    );
    let o = run(stacking()
        .args(["check-config", "reducer"])
        .env("TRANSFER_TYPE", "XDT"));
    assert!(!o.status.success());
    assert!(
        text(&o).contains("use TRANSFER_TYPE=INLINE, S3 or ELASTICACHE"),
        "{}",
        text(&o)
    );
    let o = run(stacking()
        .args(["check-config", "driver"])
        .env("CONCURRENT_TRAINING", "sometimes"));
    assert!(!o.status.success());
    assert!(text(&o).contains("CONCURRENT_TRAINING"), "{}", text(&o));
    let o = run(stacking()
        .args(["check-config", "driver"])
        .env("TrainersNum", "0"));
    assert!(!o.status.success());
    assert!(text(&o).contains("TrainersNum"), "{}", text(&o));
    let o = run(stacking()
        .args(["check-config", "trainer"])
        .env("TRANSFER_TYPE", "S3")
        .env("AWS_UNSIGNED_PAYLOAD", "sometimes"));
    assert!(!o.status.success());
    assert!(
        text(&o).contains("AWS_UNSIGNED_PAYLOAD=\"sometimes\""),
        "{}",
        text(&o)
    );
}

/// A generated dataset too large for memory stops `run` with an error that
/// names its shape (the allocation failure aborted the process before), and
/// `check-config driver` refuses a size that overflows without making
/// anything.
#[test]
fn a_dataset_too_large_for_memory_is_an_error_not_an_abort() {
    // 2^45 rows: the labels alone would need 256 TiB.
    let o = run(stacking().args(["run", "--n-samples", "35184372088832", "--n-features", "2"]));
    assert!(o.status.code().is_some_and(|c| c != 0), "{o:?}");
    assert!(
        text(&o).contains("the generated dataset of 35184372088832 x 2 is too large"),
        "{}",
        text(&o)
    );
    let o = run(stacking().args([
        "check-config",
        "--offline",
        "driver",
        "--n-samples",
        &(usize::MAX / 4).to_string(),
    ]));
    assert!(!o.status.success());
    assert!(text(&o).contains("x 1024 is too large"), "{}", text(&o));
}

/// `KEEP_OBJECTS` is read with every other setting: it reaches the driver's
/// plan (as does `--keep-objects`), and a bad value names the variable.
#[test]
fn keep_objects_comes_from_the_environment_or_the_flag() {
    let keeps = |o: &std::process::Output| {
        let out = text(o);
        assert!(o.status.success(), "{out}");
        out.lines().any(|l| {
            l.trim_start().starts_with("run plan") && l.trim_end().ends_with("objects kept")
        })
    };
    assert!(!keeps(&run(stacking().args(["check-config", "driver"]))));
    assert!(keeps(&run(stacking()
        .args(["check-config", "driver"])
        .env("KEEP_OBJECTS", "true"))));
    assert!(keeps(&run(stacking().args([
        "check-config",
        "driver",
        "--keep-objects"
    ]))));
    let o = run(stacking()
        .args(["check-config", "driver"])
        .env("KEEP_OBJECTS", "maybe"));
    assert!(!o.status.success());
    assert!(text(&o).contains("KEEP_OBJECTS"), "{}", text(&o));
}

#[test]
fn original_flags_pass_the_config_check() {
    let o = run(stacking().args([
        "check-config",
        "driver",
        "-tAddr",
        "trainer.default.svc.cluster.local:80",
        "-rAddr=reducer:80",
        "--mAddr=metatrainer:80",
        "-trainersNum",
        "16",
        "-sp=50051",
        "-zipkin",
        "http://zipkin:9411/api/v2/spans",
        "-dockerCompose",
    ]));
    assert!(o.status.success(), "{}", text(&o));
    let help = text(&run(stacking().arg("--help")));
    for var in [
        "TRANSFER_TYPE",
        "BUCKET_NAME",
        "AWS_ENDPOINT_URL",
        "TrainersNum",
        "CONCURRENT_TRAINING",
        "MAX_SERVER_THREADS",
        "ENABLE_TRACING",
        "AWS_UNSIGNED_PAYLOAD",
    ] {
        assert!(help.contains(var), "--help lacks {var}");
    }
}

fn spawn(args: &[&str], env: &[(&str, &str)]) -> Proc {
    Proc::spawn(stacking().args(args).envs(env.iter().copied())).expect("spawn stacking")
}

async fn wait_healthy(port: u16) {
    wait_serving(port, Duration::from_secs(20), Duration::from_millis(20))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_inline_then_graceful_sigterm() {
    let ports: Vec<u16> = (0..4).map(|_| free_port().unwrap()).collect();
    let env = [
        ("TRANSFER_TYPE", "INLINE"),
        ("TrainersNum", "6"),
        ("CONCURRENT_TRAINING", "true"),
    ];
    let sp = |i: usize| format!("-sp={}", ports[i]);
    let mut procs = vec![
        spawn(&["trainer", "-host", "127.0.0.1", &sp(1)], &env),
        spawn(&["reducer", "-host", "127.0.0.1", &sp(2)], &env),
        spawn(&["metatrainer", "-host", "127.0.0.1", &sp(3)], &env),
    ];
    let (t, r, m) = (
        format!("127.0.0.1:{}", ports[1]),
        format!("127.0.0.1:{}", ports[2]),
        format!("127.0.0.1:{}", ports[3]),
    );
    procs.push(spawn(
        &[
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
            "-trainersNum",
            "2",
            "--n-samples",
            "120",
            "--n-features",
            "64",
        ],
        &env,
    ));
    for &p in &ports {
        wait_healthy(p).await;
    }
    let reply = say_hello(&format!("127.0.0.1:{}", ports[0]), "test", TIMEOUT)
        .await
        .unwrap();
    // TrainersNum=6 from the environment overrides -trainersNum 2.
    assert!(reply.message.contains("trainers=6"), "{}", reply.message);
    let report: serde_json::Value = serde_json::from_str(&reply.report_json).unwrap();
    assert_eq!(report["concurrent"], true);
    // The health subcommand (the image's health check) agrees.
    let ok = run(stacking().args(["health", "--addr", &format!("127.0.0.1:{}", ports[1])]));
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).contains("SERVING"));
    // A URL names the same function; it used to be prefixed a second time
    // and fail with a DNS error for a host named "http".
    let url = run(stacking().args([
        "health",
        "--addr",
        &format!("http://127.0.0.1:{}", ports[1]),
    ]));
    assert!(url.status.success(), "{}", text(&url));
    let closed = free_port().unwrap();
    let down = run(stacking().args([
        "health",
        "--addr",
        &format!("127.0.0.1:{closed}"),
        "--timeout",
        "0.5",
    ]));
    assert!(!down.status.success());
    for p in procs.iter_mut() {
        let status = p.sigterm(Duration::from_secs(10)).unwrap();
        assert!(status.success(), "exit after SIGTERM: {status:?}");
    }
}

#[test]
fn run_draws_a_timeline_from_its_spans() {
    let dir = std::env::temp_dir().join(format!("stacking-timeline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("timeline.svg");
    let o = run(stacking()
        .args([
            "run",
            "--trainers",
            "3",
            "--n-samples",
            "100",
            "--n-features",
            "32",
            "--timeline",
        ])
        .arg(&svg));
    assert!(o.status.success(), "{}", text(&o));
    let picture = std::fs::read_to_string(&svg).unwrap();
    assert!(picture.starts_with("<svg"));
    let labels: Vec<&str> = picture
        .split('>')
        .filter_map(|t| t.split('<').next())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    for row in [
        "driver",
        "trainer 0 - LinearSVR",
        "trainer 1 - Lasso",
        "trainer 2 - RandomForestRegressor",
        "reducer",
        "metatrainer",
    ] {
        assert!(labels.contains(&row), "row {row} missing from {labels:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn storage_mistakes_stop_start_up_with_a_clear_message() {
    let s3 = stacking_testkit::s3::S3Server::start().unwrap();
    let with_store = |cmd: &mut Command| {
        cmd.env("TRANSFER_TYPE", "S3")
            .env("AWS_ENDPOINT_URL", s3.endpoint())
            .env("AWS_ACCESS_KEY", stacking_testkit::s3::ACCESS)
            .env("AWS_SECRET_KEY", stacking_testkit::s3::SECRET)
            .env("BUCKET_NAME", stacking_testkit::s3::BUCKET);
    };
    // A missing bucket: check-config and start-up both stop, naming it.
    let mut check = stacking();
    check.args(["check-config", "trainer"]);
    with_store(&mut check);
    let o = run(check.env("BUCKET_NAME", "no-such-bucket"));
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("no-such-bucket") && text(&o).contains("does not exist"),
        "{}",
        text(&o)
    );
    let mut serve = stacking();
    serve.args(["trainer", "-sp", "0"]);
    with_store(&mut serve);
    let o = run(serve.env("BUCKET_NAME", "no-such-bucket"));
    assert!(!o.status.success());
    assert!(text(&o).contains("no-such-bucket"), "{}", text(&o));
    // The bucket that exists passes.
    let mut check = stacking();
    check.args(["check-config", "reducer"]);
    with_store(&mut check);
    let o = run(&mut check);
    assert!(o.status.success(), "{}", text(&o));
    // No credentials: the message names the variables, not 169.254.169.254.
    let o = run(stacking()
        .args(["check-config", "--offline", "metatrainer"])
        .env("TRANSFER_TYPE", "S3")
        .env_remove("AWS_ACCESS_KEY")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_KEY")
        .env_remove("AWS_SECRET_ACCESS_KEY"));
    assert!(!o.status.success());
    let out = text(&o);
    assert!(
        out.contains("AWS_ACCESS_KEY and AWS_SECRET_KEY") && !out.contains("169.254"),
        "{out}"
    );
}

/// `stacking run` bounds its functions as the distributed ones are bounded:
/// a fit longer than `COMPUTE_BUDGET_S` is stopped (LinearSVR on 3,000 rows
/// runs for seconds), where the embedded run once kept the default 120 s.
#[test]
fn run_honours_the_compute_budget_from_the_environment() {
    let started = std::time::Instant::now();
    let o = run(stacking()
        .args(["run", "--size", "large"])
        .env("COMPUTE_BUDGET_S", "1"));
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("DeadlineExceeded") && out.contains("COMPUTE_BUDGET_S"),
        "{out}"
    );
    assert!(started.elapsed() < Duration::from_secs(15), "{out}");
}

/// `stacking gc --older-than 2s` deleted a live run's dataset 3 s into the
/// run. No age below the longest a run can last is taken: the objects of a
/// run that may be live stay, and an age past it collects only older runs.
#[test]
fn gc_never_reaches_a_run_that_may_be_live() {
    let s3 = stacking_testkit::s3::S3Server::start().unwrap();
    let gc = |age: &str| {
        let o = run(stacking()
            .args(["gc", "--older-than", age])
            .env("TRANSFER_TYPE", "S3")
            .env("AWS_ENDPOINT_URL", s3.endpoint())
            .env("AWS_ACCESS_KEY", stacking_testkit::s3::ACCESS)
            .env("AWS_SECRET_KEY", stacking_testkit::s3::SECRET)
            .env("BUCKET_NAME", stacking_testkit::s3::BUCKET));
        (o.status.success(), text(&o))
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = stacking_storage::s3::open(&stacking_storage::s3::S3Config::for_endpoint(
        s3.endpoint(),
        stacking_testkit::s3::BUCKET,
        stacking_testkit::s3::ACCESS,
        stacking_testkit::s3::SECRET,
    ))
    .unwrap();
    let live = "run-0123456789abcdef0123456789abcdef/dataset";
    rt.block_on(stacking_storage::BlobStore::put(
        &store,
        live,
        bytes::Bytes::from_static(b"x"),
    ))
    .unwrap();
    std::thread::sleep(Duration::from_millis(2100));
    for age in ["2s", "5m"] {
        let (ok, out) = gc(age);
        assert!(!ok, "{out}");
        assert!(
            out.contains("could delete runs that are still live")
                && out.contains("INVOCATION_TIMEOUT_S (300 s)")
                && out.contains("use 6m or more"),
            "{out}"
        );
    }
    assert_eq!(s3.object_count(), 1);
    let (ok, out) = gc("6m");
    assert!(ok, "{out}");
    assert!(out.contains("deleted 0 runs"), "{out}");
    assert_eq!(s3.object_count(), 1);
}
