//! `stacking invoke` against a running local stack, and against nothing.

use std::process::Command;

use stacking_core::dataset::{make_classification, GeneratorParams};
use stacking_core::StackConfig;
use stacking_service::local::{LocalOptions, LocalStack};
use stacking_service::{Route, RunPlan};

/// Runs `stacking invoke`; returns whether it exited 0, and its stdout.
fn invoke_status(
    dir: &std::path::Path,
    port: u16,
    rps: &str,
    time: &str,
    extra: &[&str],
) -> (bool, String) {
    std::fs::write(
        dir.join("endpoints.json"),
        r#"[{"hostname": "127.0.0.1"}, {"hostname": "localhost"}]"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stacking"))
        .current_dir(dir)
        .args([
            "invoke",
            "-port",
            &port.to_string(),
            "-rps",
            rps,
            "-time",
            time,
        ])
        .args(extra)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn invoke(dir: &std::path::Path, port: u16, rps: &str, time: &str, extra: &[&str]) -> String {
    let (ok, text) = invoke_status(dir, port, rps, time, extra);
    assert!(ok, "{text}");
    text
}

/// A file of one number per line (the invoker's CSVs).
fn read_column(path: &std::path::Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

/// vSwarm's "Issued / completed requests: A, B" line, as numbers.
fn issued_completed(text: &str) -> (usize, usize) {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("Issued / completed requests: "))
        .unwrap_or_else(|| panic!("no vSwarm counts line in {text}"));
    let (a, b) = line.split_once(", ").unwrap();
    (a.trim().parse().unwrap(), b.trim().parse().unwrap())
}

/// vSwarm's "Real / target RPS: X / Y" line, as numbers.
fn real_and_target(text: &str) -> (f64, f64) {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("Real / target RPS: "))
        .unwrap_or_else(|| panic!("no vSwarm rate line in {text}"));
    let (a, b) = line.split_once(" / ").unwrap();
    (a.trim().parse().unwrap(), b.trim().parse().unwrap())
}

async fn small_stack() -> LocalStack {
    let dataset = make_classification(&GeneratorParams {
        n_samples: 120,
        n_features: 64,
        ..Default::default()
    })
    .unwrap();
    LocalStack::start(LocalOptions {
        route: Route::Inline,
        plan: RunPlan {
            trainers: 4,
            concurrent: false,
            keep_objects: false,
            max_message_bytes: 64 << 20,
            ..RunPlan::default()
        },
        stack: StackConfig::default(),
        dataset,
        max_jobs: 2,
        threads_per_job: 1,
        spans: None,
        zipkin: None,
        report: Default::default(),
        limits: Default::default(),
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_rows_equal_completed_requests() {
    let stack = small_stack().await;
    let dir = tempfile::tempdir().unwrap();
    let port = stack.driver.port();
    let d = dir.path().to_path_buf();
    let text = tokio::task::spawn_blocking(move || {
        invoke(
            &d,
            port,
            "8",
            "1.5",
            &[
                "-latf",
                "lat.csv",
                "--histogram",
                "hist.svg",
                "--warmup",
                "2",
            ],
        )
    })
    .await
    .unwrap();
    stack.stop().await;
    let (issued, completed) = issued_completed(&text);
    assert_eq!(issued, 12, "{text}");
    assert_eq!(completed, issued, "{text}");
    let rows = read_column(&dir.path().join("lat.csv"));
    assert_eq!(rows.len(), completed);
    assert!(rows.iter().all(|&us| us > 0));
    assert!(
        text.contains("p50") && text.contains("errors: none"),
        "{text}"
    );
    let svg = std::fs::read_to_string(dir.path().join("hist.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("SayHello latency, 12 requests"),
        "{}",
        &svg[..200.min(svg.len())]
    );
}

#[test]
fn errors_are_counted_when_the_target_is_down() {
    let port = stacking_testkit::process::free_port().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (ok, text) = invoke_status(dir.path(), port, "10", "0.5", &[]);
    assert!(!ok, "every request failed, yet exit 0: {text}");
    assert_eq!(issued_completed(&text), (5, 0), "{text}");
    assert!(
        text.contains("errors by gRPC status: Unavailable: 5"),
        "{text}"
    );
    assert!(text.contains("every request failed"), "{text}");
    // vSwarm's name for the file, with the observed rate.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("rps0.00_lat.csv")).unwrap(),
        ""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vswarm_file_name_log_lines_profile_and_debug() {
    let stack = small_stack().await;
    let dir = tempfile::tempdir().unwrap();
    let port = stack.driver.port();
    let d = dir.path().to_path_buf();
    let text = tokio::task::spawn_blocking(move || {
        invoke(
            &d,
            port,
            "1",
            "3",
            &["-dbg", "-profile", "-durf", "durations.csv"],
        )
    })
    .await
    .unwrap();
    stack.stop().await;
    assert_eq!(issued_completed(&text), (3, 3), "{text}");
    let (real, target) = real_and_target(&text);
    assert_eq!(target, 1.0, "{text}");
    assert!(real <= 1.0 && real > 0.3, "{text}");
    let name = format!("rps{real:.2}_lat.csv");
    assert!(
        text.contains(&format!("The measured latencies are saved in {name}")),
        "{text}"
    );
    let latencies = read_column(&dir.path().join(&name));
    assert_eq!(latencies.len(), 3);
    // -profile: the driver's own time, never more than the client saw.
    let durations = read_column(&dir.path().join("durations.csv"));
    assert_eq!(durations.len(), 3, "{text}");
    assert!(durations.iter().all(|&d| d > 0));
    assert!(
        durations.iter().max() <= latencies.iter().max(),
        "{durations:?} {latencies:?}"
    );
    // -dbg names the outcome, never Rust's "None".
    assert_eq!(text.matches(": OK in ").count(), 3, "{text}");
    assert!(!text.contains("None"), "{text}");
}
