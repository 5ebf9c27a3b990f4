//! `stacking invoke` against a running local stack, and against nothing.

use std::process::Command;

use stacking_core::dataset::{make_classification, GeneratorParams};
use stacking_core::StackConfig;
use stacking_service::local::{LocalOptions, LocalStack};
use stacking_service::Transfer;

fn invoke(dir: &std::path::Path, port: u16, rps: &str, time: &str, extra: &[&str]) -> String {
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
            "-latf",
            "lat.csv",
        ])
        .args(extra)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn number_after(text: &str, word: &str) -> usize {
    let rest = &text[text
        .find(word)
        .unwrap_or_else(|| panic!("{word:?} not in {text}"))
        + word.len()..];
    rest.split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches(':')
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_rows_equal_completed_requests() {
    let dataset = make_classification(&GeneratorParams {
        n_samples: 120,
        n_features: 64,
        ..Default::default()
    })
    .unwrap();
    let stack = LocalStack::start(LocalOptions {
        transfer: Transfer::Inline,
        store: None,
        trainers: 4,
        concurrent: false,
        keep_objects: false,
        stack: StackConfig::default(),
        dataset,
        max_message_bytes: 64 << 20,
        max_jobs: 2,
        threads_per_job: 1,
        spans: None,
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = stack.driver.port();
    let d = dir.path().to_path_buf();
    let text = tokio::task::spawn_blocking(move || {
        invoke(
            &d,
            port,
            "8",
            "1.5",
            &["--histogram", "hist.svg", "--warmup", "2"],
        )
    })
    .await
    .unwrap();
    stack.stop().await;
    let completed = number_after(&text, "completed");
    let issued = number_after(&text, "issued");
    assert_eq!(issued, 12, "{text}");
    assert_eq!(completed, issued, "{text}");
    let csv = std::fs::read_to_string(dir.path().join("lat.csv")).unwrap();
    let rows: Vec<u64> = csv.lines().map(|l| l.parse().unwrap()).collect();
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
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let text = invoke(dir.path(), port, "10", "0.5", &[]);
    assert_eq!(number_after(&text, "issued"), 5, "{text}");
    assert_eq!(number_after(&text, "completed"), 0, "{text}");
    assert!(
        text.contains("errors by gRPC status: Unavailable: 5"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("lat.csv")).unwrap(),
        ""
    );
}
