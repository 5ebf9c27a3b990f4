//! Tracing across four processes: a Zipkin collector on loopback receives
//! the spans of one SayHello from the driver, trainer, reducer and
//! metatrainer, all in one trace, parent-linked across processes.

use std::collections::{BTreeMap, HashMap};
use std::process::Command;

use std::time::Duration;

use serde_json::Value;
use stacking_service::pb::helloworld::greeter_client::GreeterClient;
use stacking_service::pb::helloworld::HelloRequest;
use stacking_service::{Route, RunPlan};
use stacking_testkit::process::{free_port, wait_serving, Proc};
use stacking_testkit::s3::{S3Server, ACCESS, SECRET};
use stacking_testkit::zipkin::ZipkinCollector;

fn is_hex(s: &str, lens: &[usize]) -> bool {
    lens.contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// The Zipkin v2 span model (zipkin2-api.yaml): required fields and formats.
fn validate_zipkin_v2(span: &Value) {
    let obj = span.as_object().unwrap();
    for key in obj.keys() {
        assert!(
            [
                "traceId",
                "id",
                "parentId",
                "name",
                "kind",
                "timestamp",
                "duration",
                "localEndpoint",
                "remoteEndpoint",
                "annotations",
                "tags",
                "debug",
                "shared"
            ]
            .contains(&key.as_str()),
            "unknown field {key}"
        );
    }
    assert!(
        is_hex(span["traceId"].as_str().unwrap(), &[16, 32]),
        "{span}"
    );
    assert!(is_hex(span["id"].as_str().unwrap(), &[16]), "{span}");
    if let Some(p) = span.get("parentId") {
        assert!(is_hex(p.as_str().unwrap(), &[16]), "{span}");
    }
    assert!(!span["name"].as_str().unwrap().is_empty());
    if let Some(k) = span.get("kind") {
        assert!(
            ["CLIENT", "SERVER", "PRODUCER", "CONSUMER"].contains(&k.as_str().unwrap()),
            "{span}"
        );
    }
    assert!(
        span["timestamp"].as_u64().unwrap() > 1_600_000_000_000_000,
        "{span}"
    );
    assert!(span["duration"].as_u64().unwrap() >= 1, "{span}");
    assert!(!span["localEndpoint"]["serviceName"]
        .as_str()
        .unwrap()
        .is_empty());
    if let Some(tags) = span.get("tags") {
        assert!(
            tags.as_object().unwrap().values().all(Value::is_string),
            "{span}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_per_invocation_across_four_processes() {
    let collector = ZipkinCollector::start().unwrap();
    let zipkin_port = collector.port();
    let s3 = S3Server::start().unwrap();
    let endpoint = s3.endpoint().to_string();
    let zipkin = format!("-zipkin=http://127.0.0.1:{zipkin_port}/api/v2/spans");
    let env = [
        ("ENABLE_TRACING", "true"),
        ("TRANSFER_TYPE", "S3"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY", ACCESS),
        ("AWS_SECRET_KEY", SECRET),
        ("BUCKET_NAME", "vhive-stacking"),
    ];
    let ports: Vec<u16> = (0..4).map(|_| free_port().unwrap()).collect();
    let spawn = |args: Vec<String>| {
        Proc::spawn(
            Command::new(env!("CARGO_BIN_EXE_stacking"))
                .args(&args)
                .envs(env)
                .env_remove("TrainersNum"),
        )
        .unwrap()
    };
    let common = |role: &str, port: u16| {
        vec![
            role.to_string(),
            "-host".into(),
            "127.0.0.1".into(),
            format!("-sp={port}"),
            zipkin.clone(),
        ]
    };
    let mut procs = vec![
        spawn(common("trainer", ports[1])),
        spawn(common("reducer", ports[2])),
        spawn(common("metatrainer", ports[3])),
    ];
    let mut driver = common("driver", ports[0]);
    driver.extend([
        format!("-tAddr=127.0.0.1:{}", ports[1]),
        format!("-rAddr=127.0.0.1:{}", ports[2]),
        format!("-mAddr=127.0.0.1:{}", ports[3]),
        "-trainersNum=2".into(),
        "--n-samples=100".into(),
        "--n-features=32".into(),
    ]);
    procs.insert(0, spawn(driver));
    for &p in &ports {
        wait_serving(p, Duration::from_secs(20), Duration::from_millis(20))
            .await
            .unwrap();
    }
    let ch = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", ports[0]))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let reply = GreeterClient::new(ch)
        .say_hello(HelloRequest {
            name: "trace".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(reply.message.contains("trainers=2"), "{}", reply.message);
    // SIGTERM flushes each process's spans before it exits.
    for p in &mut procs {
        p.sigterm(Duration::from_secs(10)).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let spans = collector.spans();
    for s in &spans {
        validate_zipkin_v2(s);
    }
    let by_id: HashMap<&str, &Value> = spans
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s))
        .collect();
    assert_eq!(by_id.len(), spans.len(), "span ids are unique");
    let traces: std::collections::BTreeSet<&str> = spans
        .iter()
        .map(|s| s["traceId"].as_str().unwrap())
        .collect();
    assert_eq!(traces.len(), 1, "one trace per SayHello: {traces:?}");
    let roots: Vec<&Value> = spans
        .iter()
        .filter(|s| s.get("parentId").is_none())
        .collect();
    assert_eq!(roots.len(), 1);
    assert_eq!(roots[0]["name"], "SayHello");
    assert_eq!(roots[0]["localEndpoint"]["serviceName"], "driver");
    for s in &spans {
        if let Some(p) = s.get("parentId") {
            assert!(by_id.contains_key(p.as_str().unwrap()), "orphan span {s}");
        }
    }
    let service = |s: &Value| {
        s["localEndpoint"]["serviceName"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let mut per_service: BTreeMap<String, usize> = BTreeMap::new();
    for s in &spans {
        *per_service.entry(service(s)).or_default() += 1;
    }
    // N = 2 trainers, S3: driver 8 + N (the cleanup runs after the answer,
    // untraced), trainer 5 per call, reducer 4 + 2N, metatrainer 8
    // (its dataset read is two ranged gets: the features header, then the labels).
    let n = 2;
    let expected: BTreeMap<String, usize> = [
        ("driver", 8 + n),
        ("trainer", 5 * n),
        ("reducer", 4 + 2 * n),
        ("metatrainer", 8),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(per_service, expected, "{spans:#?}");
    // Cross-process links: each server span's parent is the driver's client span for it.
    for (server, client_prefix) in [
        ("Train", "Train "),
        ("Reduce", "Reduce"),
        ("Metatrain", "Metatrain"),
    ] {
        for s in spans
            .iter()
            .filter(|s| s["name"] == server && s["kind"] == "SERVER")
        {
            let parent = by_id[s["parentId"].as_str().unwrap()];
            assert_eq!(service(parent), "driver");
            assert_eq!(parent["kind"], "CLIENT");
            assert!(
                parent["name"].as_str().unwrap().starts_with(client_prefix),
                "{parent}"
            );
        }
    }
    // Storage operations and fits are spans too.
    assert!(spans
        .iter()
        .any(|s| s["name"] == "fit LinearSVR" && service(s) == "trainer"));
    for name in ["storage get dataset header", "storage get dataset end"] {
        assert!(
            spans
                .iter()
                .any(|s| s["name"] == name && service(s) == "metatrainer"),
            "no {name} span from the metatrainer"
        );
    }
    assert!(
        spans
            .iter()
            .filter(|s| s["name"].as_str().unwrap().starts_with("storage put"))
            .count()
            >= 9
    );
}

fn spans_named(collector: &ZipkinCollector) -> Vec<(String, String)> {
    collector
        .spans()
        .iter()
        .map(|s| {
            (
                s["localEndpoint"]["serviceName"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                s["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stacking_run_honours_enable_tracing() {
    let collector = ZipkinCollector::start().unwrap();
    let port = collector.port();
    let url = format!("http://127.0.0.1:{port}/api/v2/spans");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_stacking"))
            .args(["run", "--size", "test", "--trainers", "2", "--zipkin", &url])
            .env("ENABLE_TRACING", "true")
            .env_remove("TrainersNum")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "tracing http://127.0.0.1:{port}/api/v2/spans (--zipkin)"
        )),
        "{text}"
    );
    let seen = spans_named(&collector);
    for service in ["driver", "trainer", "reducer", "metatrainer"] {
        assert!(
            seen.iter().any(|(s, _)| s == service),
            "{service}: {seen:?}"
        );
    }
    for s in &collector.spans() {
        validate_zipkin_v2(s);
    }
    assert!(seen.contains(&("driver".to_string(), "SayHello".to_string())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_invoker_traces_its_requests_with_dash_trace() {
    use stacking_service::local::{LocalOptions, LocalStack};
    let collector = ZipkinCollector::start().unwrap();
    let port = collector.port();
    let stack = LocalStack::start(LocalOptions {
        route: Route::Inline,
        plan: RunPlan {
            trainers: 1,
            concurrent: false,
            keep_objects: false,
            max_message_bytes: 64 << 20,
            ..RunPlan::default()
        },
        stack: stacking_core::StackConfig::default(),
        dataset: stacking_core::dataset::make_classification(&stacking_core::GeneratorParams {
            n_samples: 60,
            n_features: 8,
            ..Default::default()
        })
        .unwrap(),
        max_jobs: 1,
        threads_per_job: 1,
        spans: None,
        zipkin: None,
        report: Default::default(),
        limits: Default::default(),
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("endpoints.json"),
        r#"[{"hostname": "127.0.0.1"}]"#,
    )
    .unwrap();
    let (d, driver_port) = (dir.path().to_path_buf(), stack.driver.port());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_stacking"))
            .current_dir(&d)
            .args(["invoke", "-rps", "4", "-time", "0.5", "-trace", "-zipkin"])
            .arg(format!("http://127.0.0.1:{port}/api/v2/spans"))
            .arg("-port")
            .arg(driver_port.to_string())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    stack.stop().await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let seen = spans_named(&collector);
    let client_spans = seen
        .iter()
        .filter(|(s, n)| s == "invoker" && n == "invoke SayHello")
        .count();
    assert_eq!(client_spans, 2, "{seen:?}");
    for s in &collector.spans() {
        validate_zipkin_v2(s);
        assert_eq!(s["kind"], "CLIENT");
    }
}
