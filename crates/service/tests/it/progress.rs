//! The driver's progress events (what `stacking run` draws on a terminal)
//! and its results sink (what `--output` writes).

use stacking_core::dataset::{make_classification, GeneratorParams};
use stacking_core::StackConfig;
use stacking_service::driver::{ArtifactSink, Progress, ReportOptions};
use stacking_service::local::{LocalOptions, LocalStack};
use stacking_service::{Route, RunPlan};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_trainer_reports_progress_and_each_run_leaves_its_results() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let artifacts = ArtifactSink::default();
    for concurrent in [false, true] {
        let stack = LocalStack::start(LocalOptions {
            route: Route::Inline,
            plan: RunPlan {
                trainers: 5,
                concurrent,
                keep_objects: false,
                max_message_bytes: 64 << 20,
                ..RunPlan::default()
            },
            stack: StackConfig::default(),
            dataset: make_classification(&GeneratorParams {
                n_samples: 60,
                n_features: 8,
                ..Default::default()
            })
            .unwrap(),
            max_jobs: 2,
            threads_per_job: 1,
            spans: None,
            zipkin: None,
            report: ReportOptions {
                progress: Some(tx.clone()),
                artifacts: Some(artifacts.clone()),
                ..ReportOptions::default()
            },
            limits: Default::default(),
        })
        .await
        .unwrap();
        let reply = stack.say_hello().await.unwrap();
        stack.stop().await;
        let mut events = Vec::new();
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        assert_eq!(events[0], Progress::Training { trainers: 5 });
        let mut done: Vec<usize> = events
            .iter()
            .filter_map(|e| match e {
                Progress::TrainerDone { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        if !concurrent {
            assert_eq!(done, [0, 1, 2, 3, 4]);
        }
        done.sort_unstable();
        assert_eq!(done, [0, 1, 2, 3, 4]);
        assert_eq!(
            &events[6..],
            [
                Progress::Stage("reduce"),
                Progress::Stage("metatrain"),
                Progress::Stage("read back")
            ]
        );
        let kept = artifacts.lock().unwrap().last().cloned().unwrap();
        assert!(reply.message.contains(&kept.run_id), "{}", reply.message);
        let full = stacking_core::serial::decode_full(&kept.model_full).unwrap();
        assert_eq!(full.level0.len(), 5);
    }
    assert_eq!(artifacts.lock().unwrap().len(), 2);
}
