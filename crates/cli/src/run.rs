//! `stacking run`: the whole workflow here, with no external service.

use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use stacking_service::driver::RunReport;
use stacking_service::local::{LocalOptions, LocalStack};
use stacking_service::settings::DEFAULT_MAX_MESSAGE_MB;
use stacking_service::Transfer;
use stacking_storage::s3::{self, S3Config};
use stacking_storage::{memory, BlobStore};

use crate::args::{RunArgs, StoreArg, TransferArg};
use crate::setup;

pub async fn run(args: RunArgs) -> Result<()> {
    if args.trainers == 0 {
        bail!("--trainers must be at least 1");
    }
    let transfer = match args.transfer {
        TransferArg::Inline => Transfer::Inline,
        TransferArg::S3 => Transfer::S3,
    };
    let store: Option<Arc<dyn BlobStore>> = match (transfer, args.store) {
        (Transfer::Inline, _) => None,
        (Transfer::S3, StoreArg::Memory) => Some(Arc::new(memory::open())),
        (Transfer::S3, StoreArg::S3) => Some(Arc::new(s3::open(&S3Config::from_env()?)?)),
    };
    let store_name = store
        .as_ref()
        .map_or("none (inline)".to_string(), |s| s.describe());
    let dataset = setup::load_dataset(&args.data)?;
    let (n, p) = (dataset.n_samples(), dataset.n_features());
    let spans = args
        .timeline
        .as_ref()
        .map(|_| Arc::new(std::sync::Mutex::new(Vec::new())));
    let stack = LocalStack::start(LocalOptions {
        transfer,
        store,
        trainers: args.trainers,
        concurrent: args.concurrent,
        keep_objects: args.data.keep_objects,
        stack: setup::load_stack(&args.data)?,
        dataset,
        max_message_bytes: DEFAULT_MAX_MESSAGE_MB << 20,
        max_jobs: setup::cpus(),
        threads_per_job: setup::cpus(),
        spans: spans.clone(),
    })
    .await
    .context("starting the local functions")?;
    if !args.json {
        println!(
            "stacking run: {n} x {p} dataset, {} trainers ({}), transfer {}, store {store_name}",
            args.trainers,
            mode(args.concurrent),
            transfer.as_str()
        );
        println!(
            "functions on loopback: driver {}  trainer {}  reducer {}  metatrainer {}",
            stack.driver, stack.trainer, stack.reducer, stack.metatrainer
        );
    }
    let mut totals = Vec::with_capacity(args.invocations);
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
    }
    stack.flush_spans().await;
    stack.stop().await;
    outcome?;
    if let (Some(path), Some(spans)) = (&args.timeline, &spans) {
        let recorded = spans.lock().map(|s| s.clone()).unwrap_or_default();
        crate::timeline::write_svg(
            path,
            &recorded,
            &format!(
                "stacking run: {} trainers ({}), transfer {}",
                args.trainers,
                mode(args.concurrent),
                transfer.as_str()
            ),
        )?;
        if !args.json {
            println!(
                "
timeline of the first invocation: {}",
                path.display()
            );
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

fn mib(b: u64) -> String {
    format!("{:.2} MiB", b as f64 / 1048576.0)
}

fn print_report(message: &str, r: &RunReport) {
    println!("\n{message}");
    println!("\n  trainer  model                     OOF AUC   call ms  compute ms");
    for t in &r.trainers {
        println!(
            "  {:>7}  {:<24} {:>8.4} {:>9.1} {:>11.1}",
            t.id, t.model, t.oof_auc, t.rpc_ms, t.compute_ms
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
        ("cleanup", s.cleanup),
        ("total", s.total),
    ] {
        println!("  {name:<10} {v:>7.1}");
    }
    println!(
        "  compute inside the functions: {:.1} ms; orchestration and transfer: {:.1} ms",
        r.compute_ms,
        (s.total - r.compute_ms).max(0.0)
    );
    let b = &r.bytes;
    println!(
        "\n  bytes moved: inline sent {}, inline received {}, storage written {}, storage read {}",
        mib(b.inline_sent),
        mib(b.inline_received),
        mib(b.storage_written),
        mib(b.storage_read)
    );
}

/// How the trainers are called, as the summaries say it.
fn mode(concurrent: bool) -> &'static str {
    if concurrent {
        "concurrent"
    } else {
        "sequential"
    }
}
