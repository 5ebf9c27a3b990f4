//! What a new user meets in the first hour: `stacking run` reading the same
//! environment as the functions, results kept with `--output`, their own
//! data, convergence warnings, pictures, the one-shot client, and errors
//! that say what is wrong.

use std::path::Path;
use std::process::{Command, Output};

use stacking_testkit::process::{clean_command, free_port, output_text, wait_serving, Proc};

fn stacking() -> Command {
    clean_command(env!("CARGO_BIN_EXE_stacking"))
}

fn run(cmd: &mut Command) -> (Output, String) {
    let o = cmd.output().expect("run the stacking binary");
    let text = output_text(&o);
    (o, text)
}

/// The small dataset these tests run on.
const SMALL: [&str; 4] = ["--n-samples", "100", "--n-features", "32"];

#[test]
fn run_honours_the_environment_flags_win_and_settings_are_printed() {
    let (o, out) = run(stacking()
        .args(["run"])
        .args(SMALL)
        .env("TrainersNum", "2")
        .env("CONCURRENT_TRAINING", "true")
        .env("TRANSFER_TYPE", "INLINE"));
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("2 trainers (concurrent), transfer INLINE"),
        "{out}"
    );
    for shown in [
        "trainers 2 (env TrainersNum)",
        "concurrent true (env CONCURRENT_TRAINING)",
        "transfer INLINE (env TRANSFER_TYPE)",
        "tracing off (default)",
    ] {
        assert!(out.contains(shown), "{shown:?} not in {out}");
    }
    let (o, out) = run(stacking()
        .args([
            "run",
            "--trainers",
            "3",
            "--concurrent=false",
            "--transfer",
            "s3",
        ])
        .args(SMALL)
        .env("TrainersNum", "2")
        .env("CONCURRENT_TRAINING", "true")
        .env("TRANSFER_TYPE", "INLINE"));
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("3 trainers (sequential), transfer S3"),
        "{out}"
    );
    assert!(out.contains("trainers 3 (--trainers)"), "{out}");
    assert!(out.contains("store memory (default)"), "{out}");
}

#[test]
fn a_store_with_inline_transfer_is_not_dropped_silently() {
    let (o, out) = run(stacking()
        .args([
            "run",
            "--transfer",
            "inline",
            "--store",
            "s3",
            "--trainers",
            "1",
        ])
        .args(SMALL));
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("warning: --store s3 has no effect with transfer INLINE"),
        "{out}"
    );
}

fn npy_f64_1d(bytes: &[u8]) -> Vec<f64> {
    stacking_core::npy::decode_f64_1d(bytes).unwrap().to_vec()
}

#[test]
fn output_keeps_model_predictions_and_a_full_report() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("results");
    let (o, out) = run(stacking()
        .args(["run", "--trainers", "4", "--seed", "7", "--output"])
        .arg(&out_dir)
        .args(SMALL));
    assert!(o.status.success(), "{out}");
    let model = std::fs::read(out_dir.join("model_full.msgpack")).unwrap();
    let full = stacking_core::serial::decode_full(&model).unwrap();
    assert_eq!(full.level0.len(), 4);
    let preds = npy_f64_1d(&std::fs::read(out_dir.join("meta_predictions.npy")).unwrap());
    assert_eq!(preds.len(), 100);
    assert!(preds.iter().all(|p| (0.0..=1.0).contains(p)));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["version"], env!("CARGO_PKG_VERSION"));
    let started = report["started_at"].as_str().unwrap();
    assert!(started.len() >= 20 && started.ends_with('Z'), "{started}");
    assert_eq!(report["dataset"]["n_samples"], 100);
    assert_eq!(report["dataset"]["n_features"], 32);
    assert_eq!(report["dataset"]["seed"], 7);
    assert_eq!(report["dataset"]["source"], "make_classification");
    assert_eq!(report["meta_model"]["model"], "LogisticRegression");
    let trainers = report["trainers"].as_array().unwrap();
    for (i, t) in trainers.iter().enumerate() {
        assert_eq!(t["id"], i, "trainer ids are numbers");
        assert!(t["params"].is_object(), "{t}");
        assert!(t["queue_ms"].is_number(), "{t}");
    }
    assert_eq!(trainers[1]["params"]["alpha"], 0.1, "Lasso's alpha");
    // A directory that cannot be made fails before the run.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let (o, out) = run(stacking().args(["run", "--output"]).arg(file.join("sub")));
    assert!(!o.status.success());
    assert!(out.contains("--output"), "{out}");
    assert!(!out.contains("ensemble AUC"), "the run started: {out}");
}

fn write_npy<A: ndarray_npy::WriteNpyExt>(path: &Path, a: &A) {
    let mut bytes = Vec::new();
    a.write_npy(&mut bytes).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn float32_features_and_minus_one_plus_one_labels_are_converted_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let ds = stacking_core::dataset::make_classification(&stacking_core::GeneratorParams {
        n_samples: 80,
        n_features: 16,
        seed: 3,
        ..Default::default()
    })
    .unwrap();
    write_npy(&dir.path().join("X.npy"), &ds.x().mapv(|v| v as f32));
    write_npy(
        &dir.path().join("y.npy"),
        &ds.y().mapv(|v| if v == 1.0 { 1i32 } else { -1 }),
    );
    let out_dir = dir.path().join("out");
    let (o, out) = run(stacking()
        .args(["run", "--features"])
        .arg(dir.path().join("X.npy"))
        .arg("--labels")
        .arg(dir.path().join("y.npy"))
        .arg("--output")
        .arg(&out_dir));
    assert!(o.status.success(), "{out}");
    assert!(out.contains("80 x 16 dataset"), "{out}");
    assert!(
        out.contains("dataset: features converted from float32 to float64"),
        "{out}"
    );
    assert!(
        out.contains("dataset: labels (int32) -1 and 1 mapped to 0 and 1"),
        "{out}"
    );
    assert_eq!(out.matches("float32").count(), 1, "said once: {out}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["dataset"]["notes"].as_array().unwrap().len(), 2);
    assert!(report["dataset"]["seed"].is_null());
    // A third label value names its row, once.
    write_npy(
        &dir.path().join("y3.npy"),
        &ndarray::Array1::from_shape_fn(80, |i| (i % 3) as i64),
    );
    let (o, out) = run(stacking()
        .args(["run", "--features"])
        .arg(dir.path().join("X.npy"))
        .arg("--labels")
        .arg(dir.path().join("y3.npy")));
    assert!(!o.status.success());
    assert!(
        out.contains("row 2 has label 2, a third after 0 and 1"),
        "{out}"
    );
    assert_eq!(out.matches("row 2 has label").count(), 1, "{out}");
}

/// Files are read as far as their header declares, and only regular files:
/// `--features /dev/zero` once read without end (6 GB in 12 s), and a FIFO
/// with no writer blocked for good.
#[test]
fn only_regular_files_are_read_and_no_further_than_declared() {
    let dir = tempfile::tempdir().unwrap();
    let y = dir.path().join("y.npy");
    write_npy(&y, &ndarray::Array1::from_shape_fn(40, |i| (i % 2) as i64));
    let fifo = dir.path().join("fifo.npy");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    for features in [Path::new("/dev/zero"), fifo.as_path(), dir.path()] {
        // Bounded: the old binary never ended on these.
        let mut child = stacking()
            .args(["run", "--features"])
            .arg(features)
            .arg("--labels")
            .arg(&y)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > give_up {
                let _ = child.kill();
                panic!("--features {} did not end", features.display());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let o = child.wait_with_output().unwrap();
        let out = output_text(&o);
        assert!(!o.status.success(), "{out}");
        assert!(out.contains("not a regular file"), "{out}");
    }
    // A valid array followed by 64 MiB that its header does not declare.
    let x = dir.path().join("X.npy");
    write_npy(&x, &ndarray::Array2::<f64>::zeros((40, 4)));
    let mut padded = std::fs::read(&x).unwrap();
    padded.resize(padded.len() + (64 << 20), 0);
    let long = dir.path().join("long.npy");
    std::fs::write(&long, padded).unwrap();
    let (o, out) = run(stacking()
        .args(["run", "--features"])
        .arg(&long)
        .arg("--labels")
        .arg(&y));
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("more bytes follow the array than its header declares"),
        "{out}"
    );
    let (o, out) = run(stacking().args(["run", "--models", "/dev/zero"]));
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("--models /dev/zero: not a regular file"),
        "{out}"
    );
}

#[test]
fn solvers_that_stop_at_max_iter_are_reported_like_convergence_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models.json");
    std::fs::write(
        &models,
        r#"{"models": [{"model": "LinearSVR", "params": {"max_iter": 2, "tol": 1e-12}},
                       {"model": "Lasso", "params": {"alpha": 0.1}}],
            "meta_model": {"model": "LogisticRegression", "params": {}}}"#,
    )
    .unwrap();
    let (o, out) = run(stacking()
        .args(["run", "--trainers", "2", "--models"])
        .arg(&models)
        .args(SMALL));
    assert!(o.status.success(), "{out}");
    assert!(out.contains("no: 6 of 6 fits hit max_iter"), "{out}");
    assert!(
        out.contains("trainer 0: ConvergenceWarning: LinearSVR (fold 0 fit) stopped at max_iter=2"),
        "{out}"
    );
    // The log line (stdout, not a terminal): no colour codes.
    assert!(out.contains("WARN"), "{out}");
    assert!(
        !out.contains('\u{1b}'),
        "ANSI codes in piped output: {out:?}"
    );
    let (o, json) = run(stacking()
        .args(["run", "--json", "--trainers", "2", "--models"])
        .arg(&models)
        .args(SMALL));
    assert!(o.status.success(), "{json}");
    let line = json.lines().find(|l| l.starts_with('{')).unwrap();
    let report: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(
        report["trainers"][0]["warnings"].as_array().unwrap().len(),
        6
    );
    assert!(report["trainers"][1]["warnings"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(report["warnings"].as_array().unwrap().len(), 6);
}

/// The models added with the model trait run from a `--models` file like
/// the original five, each trainer on its own.
#[test]
fn the_added_models_run_from_a_models_file() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models.json");
    std::fs::write(
        &models,
        r#"{"models": [{"model": "Ridge", "params": {"alpha": 100.0}},
                       {"model": "ElasticNet", "params": {"alpha": 0.1, "l1_ratio": 0.5}},
                       {"model": "DecisionTreeRegressor", "params": {"max_depth": 5, "random_state": 42}}],
            "meta_model": {"model": "LogisticRegression"}}"#,
    )
    .unwrap();
    let (o, json) = run(stacking()
        .args(["run", "--json", "--trainers", "3", "--models"])
        .arg(&models)
        .args(SMALL));
    assert!(o.status.success(), "{json}");
    let line = json.lines().find(|l| l.starts_with('{')).unwrap();
    let report: serde_json::Value = serde_json::from_str(line).unwrap();
    let names: Vec<&str> = report["trainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["model"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Ridge", "ElasticNet", "DecisionTreeRegressor"],
        "{json}"
    );
    assert!(report["ensemble_auc"].as_f64().unwrap() > 0.5, "{json}");
}

#[test]
fn size_presets_and_timeline_checks() {
    let dir = tempfile::tempdir().unwrap();
    let (o, out) = run(stacking().args(["run", "--size", "test", "--trainers", "1"]));
    assert!(o.status.success(), "{out}");
    assert!(out.contains("100 x 64 dataset"), "{out}");
    let (o, out) = run(stacking().args([
        "run",
        "--size",
        "test",
        "--n-features",
        "16",
        "--trainers",
        "1",
    ]));
    assert!(o.status.success(), "{out}");
    assert!(out.contains("100 x 16 dataset"), "{out}");
    let (o, out) = run(stacking()
        .args(["run", "--timeline"])
        .arg(dir.path().join("t.jpg")));
    assert!(!o.status.success());
    assert!(out.contains("must end in .svg"), "{out}");
    assert!(!out.contains("ensemble AUC"), "the run started: {out}");
    let png = dir.path().join("t.png");
    let (o, out) = run(stacking()
        .args(["run", "--size", "test", "--trainers", "2", "--timeline"])
        .arg(&png));
    assert!(!o.status.success());
    assert!(
        out.contains("SVG only") && out.contains("rsvg-convert"),
        "{out}"
    );
    assert!(!out.contains("ensemble AUC"), "the run started: {out}");
    assert!(!png.exists());
    let svg = dir.path().join("t.svg");
    let (o, out) = run(stacking()
        .args(["run", "--size", "test", "--trainers", "2", "--timeline"])
        .arg(&svg));
    assert!(o.status.success(), "{out}");
    let picture = std::fs::read_to_string(&svg).unwrap();
    for needle in [
        "trainer 0 - LinearSVR",
        "trainer 1 - Lasso",
        "storage",
        "fits",
    ] {
        assert!(picture.contains(needle), "{needle} missing");
    }
    // Legend swatches: one filled square per colour.
    for colour in ["#3465A4", "#27AE60", "#E67E22"] {
        assert!(picture.contains(colour), "{colour} missing");
    }
}

#[test]
fn check_config_prints_every_setting_and_clear_errors() {
    let (o, out) = run(stacking().args(["check-config", "--offline", "trainer"]));
    assert!(o.status.success(), "{out}");
    for var in [
        "TRANSFER_TYPE",
        "MAX_SERVER_THREADS",
        "GRPC_MAX_MESSAGE_MB",
        "COMPUTE_BUDGET_S",
        "MEMORY_BUDGET_MB",
        "DRAIN_TIMEOUT_S",
        "--sp",
    ] {
        assert!(out.contains(var), "{var} not printed: {out}");
    }
    // A trainer does not read the driver's variables; the driver does.
    assert!(!out.contains("INVOCATION_TIMEOUT_S"), "{out}");
    let (o, out) = run(stacking()
        .args(["check-config", "--offline", "driver", "-sp", "7000"])
        .env("TRANSFER_TYPE", "ELASTICACHE")
        .env("BUCKET_NAME", "rediss://:hunter2@cache:6379")
        .env("REDIS_PASSWORD", "hunter3"));
    assert!(o.status.success(), "{out}");
    for shown in [
        "INVOCATION_TIMEOUT_S",
        "TrainersNum",
        "7000 (command line)",
        "0.0.0.0 (default)",
        "REDIS_PASSWORD                         <set>",
    ] {
        assert!(out.contains(shown), "{shown} not printed: {out}");
    }
    assert!(!out.contains("hunter"), "a secret was printed: {out}");
    let (o, out) = run(stacking().args(["check-config", "trainer", "-foo", "1"]));
    assert!(!o.status.success());
    assert!(out.contains("'-foo'"), "{out}");
    assert!(!out.contains("--foo"), "{out}");
    assert!(!out.contains("error: error:"), "{out}");
    let (o, out) = run(stacking().args(["trainer", "-foo"]));
    assert!(!o.status.success());
    assert!(out.contains("'-foo'") && !out.contains("'--foo'"), "{out}");
}

#[test]
fn health_and_client_name_the_address_they_cannot_reach() {
    let port = free_port().unwrap();
    let addr = format!("127.0.0.1:{port}");
    let (o, out) = run(stacking().args(["health", "--addr", &addr]));
    assert!(!o.status.success());
    assert!(out.contains(&format!("cannot connect to {addr}")), "{out}");
    let (o, out) = run(stacking().args(["client", "-addr", &addr]));
    assert!(!o.status.success());
    assert!(out.contains(&format!("cannot connect to {addr}")), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_one_shot_client_calls_a_driver_and_a_trainer() {
    let ports: Vec<u16> = (0..4).map(|_| free_port().unwrap()).collect();
    let serve = |role: &str, port: u16| {
        let mut c = stacking();
        c.args([role, "-host", "127.0.0.1"])
            .arg(format!("-sp={port}"));
        c
    };
    let mut procs = vec![
        Proc::spawn(&mut serve("trainer", ports[1])).unwrap(),
        Proc::spawn(&mut serve("reducer", ports[2])).unwrap(),
        Proc::spawn(&mut serve("metatrainer", ports[3])).unwrap(),
        Proc::spawn(
            serve("driver", ports[0])
                .arg(format!("-tAddr=127.0.0.1:{}", ports[1]))
                .arg(format!("-rAddr=127.0.0.1:{}", ports[2]))
                .arg(format!("-mAddr=127.0.0.1:{}", ports[3]))
                .arg("-trainersNum=2")
                .args(SMALL),
        )
        .unwrap(),
    ];
    for &p in &ports {
        wait_serving(
            p,
            std::time::Duration::from_secs(20),
            std::time::Duration::from_millis(20),
        )
        .await
        .unwrap();
    }
    let (d, t) = (
        format!("127.0.0.1:{}", ports[0]),
        format!("127.0.0.1:{}", ports[1]),
    );
    let out = tokio::task::spawn_blocking(move || {
        let mut all = String::new();
        for (args, ok) in [
            (vec!["client", "-addr", &d], true),
            (vec!["client", "-addr", &t, "-method", "train"], true),
            (vec!["client", "-addr", &t, "-method", "health"], true),
            (vec!["client", "-addr", &t], false),
        ] {
            let (o, out) = run(stacking().args(&args));
            assert_eq!(o.status.success(), ok, "{args:?}: {out}");
            all.push_str(&out);
        }
        all
    })
    .await
    .unwrap();
    assert!(out.contains("Greeting: run=run-"), "{out}");
    assert!(out.contains("trainers=2 auc="), "{out}");
    assert!(out.contains("Trained LinearSVR: out-of-fold AUC"), "{out}");
    assert!(out.contains("Health: SERVING"), "{out}");
    assert_eq!(out.matches("time: ").count(), 3, "{out}");
    // SayHello on a trainer: the role is named.
    assert!(
        out.contains("this process is the trainer function: it serves stacking.Trainer"),
        "{out}"
    );
    for p in &mut procs {
        p.sigterm(std::time::Duration::from_secs(10)).unwrap();
    }
}
