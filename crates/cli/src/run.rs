//! `stacking run`: the whole workflow here, with no external service.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use stacking_service::driver::{ArtifactSink, Progress, RunArtifacts, RunReport};
use stacking_service::local::{LocalOptions, LocalStack};
use stacking_service::Route;
use stacking_storage::{memory, BlobStore};
use tokio::sync::mpsc;

use crate::args::{RunArgs, StoreArg};
use crate::run_settings::RunSettings;
use crate::setup;

pub async fn run(args: RunArgs) -> Result<()> {
    let settings = RunSettings::resolve(&args, crate::settings::env)?;
    for w in &settings.warnings {
        eprintln!("warning: {w}");
    }
    // Bad output paths fail now, not after the run.
    if let Some(path) = &args.timeline {
        crate::timeline::check_path(path)?;
    }
    if let Some(dir) = &args.output {
        prepare_output(dir)?;
    }
    let store: Option<Arc<dyn BlobStore>> = match settings.store {
        None => None,
        Some(StoreArg::Memory) => Some(Arc::new(memory::open())),
        Some(StoreArg::S3) => Some(Arc::new(setup::open_s3()?)),
        Some(StoreArg::Redis) => Some(Arc::new(setup::open_redis()?)),
    };
    let store_name = store
        .as_ref()
        .map_or("none (inline)".to_string(), |s| s.describe());
    let loaded = setup::load_dataset(&args.data)?;
    let (n, p) = (loaded.dataset.n_samples(), loaded.dataset.n_features());
    let spans = args
        .timeline
        .as_ref()
        .map(|_| Arc::new(std::sync::Mutex::new(Vec::new())));
    let artifacts: Option<ArtifactSink> = args.output.as_ref().map(|_| ArtifactSink::default());
    let show_progress = !args.json && std::io::stderr().is_terminal();
    let (progress_tx, progress_rx) = mpsc::unbounded_channel();
    let mut report = loaded.report;
    report.progress = show_progress.then_some(progress_tx);
    report.artifacts = artifacts.clone();
    let notes = report.dataset_notes.clone();
    let stack = LocalStack::start(LocalOptions {
        route: Route::new(settings.transfer, store)?,
        plan: settings.plan.clone(),
        stack: setup::load_stack(&args.data)?,
        dataset: loaded.dataset,
        max_jobs: settings.common.max_server_threads,
        threads_per_job: setup::cpus(),
        spans: spans.clone(),
        zipkin: settings.zipkin.clone(),
        report,
        limits: settings.common.limits,
    })
    .await
    .context("starting the local functions")?;
    let progress = show_progress.then(|| tokio::spawn(show(progress_rx)));
    if !args.json {
        println!(
            "stacking run: {n} x {p} dataset, {} trainers ({}), transfer {}, store {store_name}",
            settings.plan.trainers,
            mode(settings.plan.concurrent),
            settings.transfer.as_str()
        );
        println!("settings: {}", settings.line());
        for note in &notes {
            println!("dataset: {note}");
        }
        println!(
            "functions on loopback: driver {}  trainer {}  reducer {}  metatrainer {}",
            stack.driver, stack.trainer, stack.reducer, stack.metatrainer
        );
    }
    let mut totals = Vec::with_capacity(args.invocations);
    let mut first_report = None;
    let mut outcome = Ok(());
    for k in 0..args.invocations.max(1) {
        let reply = match stack.say_hello().await {
            Ok(r) => r,
            Err(status) => {
                outcome = Err(anyhow::anyhow!(
                    "SayHello failed: {:?}: {}",
                    status.code(),
                    status.message()
                ));
                break;
            }
        };
        let report: RunReport =
            serde_json::from_str(&reply.report_json).context("decoding the run report")?;
        totals.push(report.stages_ms.total);
        if args.json {
            println!("{}", reply.report_json);
        } else if k == 0 || args.invocations <= 3 {
            print_report(&reply.message, &report);
        } else {
            println!("{}", reply.message);
        }
        first_report.get_or_insert(reply.report_json);
    }
    stack.flush_spans().await;
    stack.stop().await;
    if let Some(task) = progress {
        let _ = task.await;
    }
    outcome?;
    if let (Some(dir), Some(sink), Some(report)) = (&args.output, &artifacts, &first_report) {
        let first = sink.lock().ok().and_then(|s| s.first().cloned());
        let first = first.context("the run stored no results to write")?;
        write_output(dir, &first, report)?;
        if !args.json {
            println!("\nresults of the first invocation in {}: model_full.msgpack, meta_predictions.npy, report.json", dir.display());
        }
    }
    if let (Some(path), Some(spans)) = (&args.timeline, &spans) {
        let recorded = spans.lock().map(|s| s.clone()).unwrap_or_default();
        crate::timeline::write(
            path,
            &recorded,
            &format!(
                "stacking run: {} trainers ({}), transfer {}",
                settings.plan.trainers,
                mode(settings.plan.concurrent),
                settings.transfer.as_str()
            ),
        )?;
        if !args.json {
            println!("\ntimeline of the first invocation: {}", path.display());
        }
    }
    if !args.json && totals.len() > 1 {
        totals.sort_by(f64::total_cmp);
        println!(
            "\n{} invocations: median {:.1} ms, min {:.1} ms, max {:.1} ms",
            totals.len(),
            totals[totals.len() / 2],
            totals[0],
            totals[totals.len() - 1]
        );
    }
    Ok(())
}

/// Draws the driver's progress events on the terminal (stderr) until the
/// stack stops.
async fn show(mut rx: mpsc::UnboundedReceiver<Progress>) {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let (mut done, mut total) = (0, 0);
    while let Some(event) = rx.recv().await {
        match event {
            Progress::Training { trainers } => {
                (done, total) = (0, trainers);
                bar.set_message(format!("training: 0/{total} trainers done"));
            }
            Progress::TrainerDone { id, model } => {
                done += 1;
                bar.set_message(format!(
                    "training: {done}/{total} trainers done (trainer {id}, {model})"
                ));
            }
            Progress::Stage(stage) => bar.set_message(stage.to_string()),
        }
    }
    bar.finish_and_clear();
}

/// Creates `dir` if needed and proves it is writable, before the run.
fn prepare_output(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("--output {}", dir.display()))?;
    let probe = dir.join(".stacking-write-test");
    std::fs::write(&probe, b"")
        .with_context(|| format!("--output {} is not writable", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

fn write_output(dir: &Path, a: &RunArtifacts, report_json: &str) -> Result<()> {
    let files: [(&str, &[u8]); 3] = [
        ("model_full.msgpack", &a.model_full),
        ("meta_predictions.npy", &a.meta_predictions),
        ("report.json", report_json.as_bytes()),
    ];
    for (name, bytes) in files {
        let path: PathBuf = dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn mib(b: u64) -> String {
    format!("{:.2} MiB", b as f64 / 1048576.0)
}

fn print_report(message: &str, r: &RunReport) {
    println!("\n{message}");
    println!(
        "\n  trainer  model                     OOF AUC   call ms  queue ms  compute ms  converged"
    );
    for t in &r.trainers {
        println!(
            "  {:>7}  {:<24} {:>8.4} {:>9.1} {:>9.1} {:>11.1}  {}",
            t.id,
            t.model,
            t.oof_auc,
            t.rpc_ms,
            t.queue_ms,
            t.compute_ms,
            if t.warnings.is_empty() {
                "yes".to_string()
            } else {
                format!("no: {} of 6 fits hit max_iter", t.warnings.len())
            }
        );
    }
    println!(
        "\n  ensemble AUC (labels vs meta-model probability): {:.6}",
        r.ensemble_auc
    );
    if let Some(v) = r.auc_as_reported_by_original {
        println!("  the original benchmark would log: {v:.6} (roc_auc(hard predictions, labels), arguments swapped; not a valid score)");
    }
    let s = &r.stages_ms;
    println!("\n  stage        ms");
    for (name, v) in [
        ("upload", s.upload),
        ("train", s.train),
        ("reduce", s.reduce),
        ("metatrain", s.metatrain),
        ("read back", s.readback),
        ("total", s.total),
    ] {
        println!("  {name:<10} {v:>7.1}");
    }
    // Sequential waits add up; concurrent ones overlap, and the longest is
    // what the run waited.
    let waits = r.trainers.iter().map(|t| t.queue_ms);
    let (queue, how) = if r.concurrent {
        (waits.fold(0.0, f64::max), "longest")
    } else {
        (waits.sum(), "summed")
    };
    println!("  compute inside the functions: {:.1} ms", r.compute_ms);
    println!("  queueing for a trainer's compute slot ({how}): {queue:.1} ms");
    println!(
        "  other orchestration and transfer: {:.1} ms",
        (s.total - r.compute_ms - queue).max(0.0)
    );
    let b = &r.bytes;
    println!(
        "\n  bytes moved: inline sent {}, inline received {}, storage written {}, storage read {}",
        mib(b.inline_sent),
        mib(b.inline_received),
        mib(b.storage_written),
        mib(b.storage_read)
    );
    if !r.warnings.is_empty() {
        println!("\n  warnings:");
        for w in &r.warnings {
            println!("    {w}");
        }
    }
}

/// How the trainers are called, as the summaries say it.
fn mode(concurrent: bool) -> &'static str {
    if concurrent {
        "concurrent"
    } else {
        "sequential"
    }
}
