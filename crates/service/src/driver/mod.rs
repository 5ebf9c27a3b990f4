//! The driver: `helloworld.Greeter/SayHello` runs the whole workflow once.
//!
//! 1. store the dataset (or pass it inline), under a key scoped by a fresh run id;
//! 2. `Trainer.Train` for trainers `0..N` with `models[i % len]`, one after
//!    another or all at once (`CONCURRENT_TRAINING`);
//! 3. `Reducer.Reduce` with every trainer's keys in trainer order;
//! 4. `Metatrainer.Metatrain` with the meta model's config;
//! 5. read the full model and meta predictions back and check they decode;
//! 6. reply, then delete the run's objects (unless asked to keep them) on a
//!    task of its own, so that the deletes are no round trip of the caller.
//!
//! The whole invocation has one deadline (the caller's `grpc-timeout`, at
//! most `INVOCATION_TIMEOUT_S`); each call downstream gets what remains of
//! it ([`crate::rpc`]). Whatever happens — success, a failed stage, the
//! caller cancelling, the deadline, SIGTERM — the run's objects are deleted
//! by a task detached from the request: every key the run can write is known
//! from its run id, and the run's prefix is listed as well. After a failed
//! run a last sweep follows [`LATE_WRITE_GRACE`] later, for a write a
//! worker had in flight when the run gave up; a cleanup the store refuses
//! (an outage at the end of a run) is retried with backoff until it
//! answers, for at most 15 minutes.

mod cleanup;
mod plan;
mod reduce_call;
mod stages;

use std::time::{Duration, Instant};

use bytes::Bytes;
use stacking_core::params::excerpt;
use stacking_core::{DatasetError, StackConfig};
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tonic::transport::Channel;

pub use self::cleanup::LATE_WRITE_GRACE;
use self::cleanup::{run_keys, CleanupGuard};
use self::stages::RunState;
use crate::context::Context;
use crate::error::StepError;
use crate::pb::stacking::metatrainer_client::MetatrainerClient;
use crate::pb::stacking::trainer_client::TrainerClient;
pub use crate::report::{
    ArtifactSink, ByteCounts, DatasetReport, Progress, ReportOptions, RunArtifacts, RunReport,
    Stages, TrainerReport,
};
use crate::rpc::{self, Deadline};
use crate::settings::{RunPlan, Transfer};
use crate::trace::Span;

/// Everything the driver is configured with.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// Address of the trainers (`-tAddr`).
    pub trainer_addr: String,
    /// Address of the reducer (`-rAddr`).
    pub reducer_addr: String,
    /// Address of the metatrainer (`-mAddr`).
    pub metatrainer_addr: String,
    /// Trainers, concurrency, object keeping, message limit, call bound.
    pub plan: RunPlan,
    /// The level-0 models and the meta model.
    pub stack: StackConfig,
    /// The dataset's provenance, progress events and results beyond the reply.
    pub report: ReportOptions,
}

impl DriverConfig {
    /// A driver of the functions at these addresses, running `plan` with
    /// the benchmark's models and no report beyond the reply.
    pub fn new(
        trainer_addr: String,
        reducer_addr: String,
        metatrainer_addr: String,
        plan: RunPlan,
    ) -> Self {
        Self {
            trainer_addr,
            reducer_addr,
            metatrainer_addr,
            plan,
            stack: StackConfig::default(),
            report: ReportOptions::default(),
        }
    }
}

/// The dataset in its wire form and its row count.
#[derive(Debug, Clone)]
pub struct LoadedDataset {
    /// `X.npy` then `y.npy`, as sent to the trainers.
    pub bytes: Bytes,
    /// Rows of the dataset.
    pub n_samples: usize,
}

/// Why the driver has no dataset to run with.
#[derive(Debug, thiserror::Error)]
pub enum DatasetUnavailable {
    /// The generator refused its parameters.
    #[error("making the dataset failed: {0}")]
    Failed(#[from] DatasetError),
    /// The generator's thread ended without a dataset.
    #[error("the dataset generator stopped before it finished")]
    GeneratorStopped,
    /// No dataset was given.
    #[error("the driver was started without a dataset")]
    Missing,
}

/// A dataset still being made (on another thread) when the driver starts.
pub type PendingDataset = tokio::sync::oneshot::Receiver<Result<LoadedDataset, DatasetUnavailable>>;

/// The driver's state: configuration, the dataset made at start-up, clients.
#[derive(Debug)]
pub struct Driver {
    cfg: DriverConfig,
    ctx: Context,
    dataset: tokio::sync::OnceCell<Result<LoadedDataset, DatasetUnavailable>>,
    pending: std::sync::Mutex<Option<PendingDataset>>,
    trainer: TrainerClient<Channel>,
    /// The reducer's channel: `Reduce` sends its request as segments
    /// ([`reduce_call`]).
    reducer: Channel,
    metatrainer: MetatrainerClient<Channel>,
    /// Cleanup tasks still running; a draining driver waits for them.
    cleanups: TaskTracker,
    /// `MEMORY_BUDGET_MB` in KiB: each run reserves what it may hold
    /// ([`Driver::admit`]).
    budget: Arc<Semaphore>,
}

/// The driver's budget is counted in KiB, so any size fits a semaphore.
const BUDGET_UNIT: u64 = 1024;

/// `bytes` in units of the driver's budget, at least one.
fn budget_units(bytes: u64) -> usize {
    usize::try_from(
        bytes
            .div_ceil(BUDGET_UNIT)
            .clamp(1, u64::from(u32::MAX >> 3)),
    )
    .unwrap_or(1)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1e3
}
impl Driver {
    /// `dataset` is the wire form (`X.npy` then `y.npy`), made once at start-up.
    pub fn new(
        cfg: DriverConfig,
        ctx: Context,
        dataset: Bytes,
        n_samples: usize,
    ) -> Result<Self, StepError> {
        let d = Self::with_pending(cfg, ctx, None)?;
        let _ = d.dataset.set(Ok(LoadedDataset {
            bytes: dataset,
            n_samples,
        }));
        Ok(d)
    }

    /// A driver whose dataset is still being generated: it serves at once,
    /// and its runs wait for the dataset, so that generating it overlaps the
    /// process start-up and the time until the first call.
    pub fn new_pending(
        cfg: DriverConfig,
        ctx: Context,
        pending: PendingDataset,
    ) -> Result<Self, StepError> {
        Self::with_pending(cfg, ctx, Some(pending))
    }

    /// Whether the dataset is already made (without waiting).
    pub fn is_ready_now(&self) -> bool {
        matches!(self.dataset.get(), Some(Ok(_)))
    }

    /// Waits for the dataset; false if making it failed.
    pub async fn ready(&self) -> bool {
        self.dataset().await.is_ok()
    }

    async fn dataset(&self) -> Result<&LoadedDataset, StepError> {
        let loaded = self
            .dataset
            .get_or_init(|| async {
                let pending = self.pending.lock().ok().and_then(|mut p| p.take());
                match pending {
                    Some(rx) => rx
                        .await
                        .unwrap_or(Err(DatasetUnavailable::GeneratorStopped)),
                    None => Err(DatasetUnavailable::Missing),
                }
            })
            .await;
        loaded
            .as_ref()
            .map_err(|e| StepError::Precondition(format!("the driver has no dataset: {e}")))
    }

    /// The dataset, waited for at most until `deadline`: a run that arrives
    /// while it is still being made (the driver reports SERVING before).
    async fn dataset_by(&self, deadline: Deadline) -> Result<&LoadedDataset, StepError> {
        let expired = || StepError::Downstream {
            context: "the driver's dataset".into(),
            status: tonic::Status::deadline_exceeded(
                "it was still being made when the invocation's deadline passed",
            ),
        };
        let remaining = deadline.remaining().ok_or_else(expired)?;
        tokio::time::timeout(remaining, self.dataset())
            .await
            .map_err(|_| expired())?
    }

    fn with_pending(
        cfg: DriverConfig,
        ctx: Context,
        pending: Option<PendingDataset>,
    ) -> Result<Self, StepError> {
        if cfg.plan.trainers == 0 {
            return Err(StepError::bad("trainersNum must be at least 1"));
        }
        let limit = cfg.plan.max_message_bytes;
        let ctx_budget_bytes = ctx.limits().memory_budget_bytes as u64;
        let endpoint = |addr: &str| rpc::channel(addr, cfg.plan.call_timeout);
        let trainer = TrainerClient::new(endpoint(&cfg.trainer_addr)?)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        let reducer = endpoint(&cfg.reducer_addr)?;
        let metatrainer = MetatrainerClient::new(endpoint(&cfg.metatrainer_addr)?)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        Ok(Self {
            cfg,
            ctx,
            dataset: tokio::sync::OnceCell::new(),
            pending: std::sync::Mutex::new(pending),
            trainer,
            reducer,
            metatrainer,
            cleanups: TaskTracker::new(),
            budget: Arc::new(Semaphore::new(budget_units(ctx_budget_bytes))),
        })
    }

    /// What the driver was started with.
    pub fn config(&self) -> &DriverConfig {
        &self.cfg
    }

    /// Where it stores and how it computes.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Waits (at most `bound`) for cleanups still running, before the
    /// process exits.
    pub async fn wait_for_cleanups(&self, bound: Duration) {
        self.cleanups.close();
        let _ = tokio::time::timeout(bound, self.cleanups.wait()).await;
    }

    /// One complete invocation, untraced, within the default budget.
    pub async fn run(&self) -> Result<RunReport, StepError> {
        let budget = self.ctx.limits().invocation_timeout;
        self.run_traced(&Span::none(), Deadline::after(budget))
            .await
    }

    /// One complete invocation by `deadline`; its spans are children of `root`.
    pub async fn run_traced(
        &self,
        root: &Span,
        deadline: Deadline,
    ) -> Result<RunReport, StepError> {
        let run_id = crate::context::new_run_id();
        let mut root_tags = root.child("run", None);
        root_tags.tag("run_id", &run_id);
        drop(root_tags);
        let mut cleanup = CleanupGuard::new(
            self.ctx
                .store()
                .cloned()
                .filter(|_| !self.cfg.plan.keep_objects),
            run_id.clone(),
            run_keys(&run_id, self.cfg.plan.trainers),
            self.cleanups.clone(),
        );
        let started = Instant::now();
        // Every stage bounds its own waits; this bound holds even for a wait
        // that cannot see the deadline (a store that accepted a connection
        // and stalls), so the caller hears DEADLINE_EXCEEDED in time.
        let result =
            tokio::time::timeout_at(deadline.instant(), self.run_stages(&run_id, deadline, root))
                .await
                .unwrap_or_else(|_| {
                    Err(StepError::Downstream {
                        context: "the run".into(),
                        status: tonic::Status::deadline_exceeded(
                            "the invocation's deadline passed before the run ended",
                        ),
                    })
                });
        // The answer does not wait for the cleanup: its deletes would be the
        // run's last store round trip on the caller's critical path. The
        // task is tracked (`wait_for_cleanups` at shutdown) and retries until
        // the store answers.
        drop(cleanup.start(result.is_err()));
        result.map(|mut report| {
            report.stages_ms.total = ms(started.elapsed());
            report
        })
    }

    async fn run_stages(
        &self,
        run_id: &str,
        deadline: Deadline,
        root: &Span,
    ) -> Result<RunReport, StepError> {
        let started = Instant::now();
        let started_at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let LoadedDataset {
            bytes: dataset,
            n_samples,
        } = self.dataset_by(deadline).await?.clone();
        let n_features = plan::n_features(&dataset);
        let dataset_report = self.dataset_report(&dataset, n_samples, n_features);
        let mut run = RunState {
            run_id,
            deadline,
            root,
            dataset_inline: Bytes::new(),
            dataset_key: String::new(),
            n_samples,
            stages: Stages::default(),
            bytes: ByteCounts::default(),
            warnings: Vec::new(),
        };
        if self.ctx.transfer() == Transfer::Inline {
            self.check_inline_plan(&dataset, n_samples, n_features)?;
        }
        let _admitted = self
            .admit(self.run_memory(&dataset, n_samples, n_features), deadline)
            .await?;
        self.upload(&mut run, dataset).await?;
        let (trainers, tuples) = self.train_all(&mut run).await?;
        let reduced = self.reduce(&mut run, tuples).await?;
        let meta = self.metatrain(&mut run, reduced).await?;
        self.progress(Progress::Stage("read back"));
        let artifacts = self.read_back(&mut run, &meta, trainers.len()).await?;
        run.stages.total = ms(started.elapsed());
        let ensemble_auc: f64 = meta.score.parse().map_err(|_| {
            StepError::Internal(format!(
                "metatrainer score {:?} is not a number",
                excerpt(&meta.score, 40)
            ))
        })?;
        let mut compute_ms: f64 = trainers.iter().map(|t| t.compute_ms).sum();
        if self.cfg.plan.concurrent {
            compute_ms = trainers.iter().map(|t| t.compute_ms).fold(0.0, f64::max);
        }
        if let Some(sink) = &self.cfg.report.artifacts {
            if let Ok(mut sink) = sink.lock() {
                sink.push(artifacts);
            }
        }
        Ok(RunReport {
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at,
            run_id: run_id.to_string(),
            transfer: self.ctx.transfer().as_str().to_string(),
            concurrent: self.cfg.plan.concurrent,
            dataset: dataset_report,
            meta_model: self.cfg.stack.meta_model.to_json(),
            trainers,
            warnings: run.warnings,
            ensemble_auc,
            auc_as_reported_by_original: meta.score_as_reported_by_original.parse().ok(),
            compute_ms: compute_ms + run.stages.reduce_compute + run.stages.metatrain_compute,
            stages_ms: run.stages,
            bytes: run.bytes,
        })
    }

    /// Admission by bytes: a run reserves what it may hold (`run_memory`)
    /// from the driver's `MEMORY_BUDGET_MB`, waiting for room within its
    /// deadline; one larger than the whole budget is refused at once. 256
    /// concurrent SayHellos over Redis held 1.17 GB.
    async fn admit(
        &self,
        bytes: u64,
        deadline: Deadline,
    ) -> Result<tokio::sync::SemaphorePermit<'_>, StepError> {
        let total = self.budget_total();
        let units = bytes.div_ceil(BUDGET_UNIT).max(1);
        if units > u64::from(total) {
            return Err(StepError::OverBudget(format!(
                "one run would hold about {} MiB, more than the driver's whole MEMORY_BUDGET_MB ({} MiB); raise it, or use fewer trainers or TRANSFER_TYPE=S3 or ELASTICACHE",
                bytes >> 20,
                (u64::from(total) * BUDGET_UNIT) >> 20
            )));
        }
        let expired = || {
            StepError::Downstream {
            context: "the driver's memory budget".into(),
            status: tonic::Status::deadline_exceeded(
                "the run was still waiting for room in MEMORY_BUDGET_MB when the invocation's deadline passed",
            ),
        }
        };
        let remaining = deadline.remaining().ok_or_else(expired)?;
        match tokio::time::timeout(remaining, self.budget.acquire_many(units as u32)).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(StepError::Internal("the driver's budget closed".into())),
            Err(_) => Err(expired()),
        }
    }

    fn budget_total(&self) -> u32 {
        budget_units(self.ctx.limits().memory_budget_bytes as u64) as u32
    }

    /// Sends a progress event to whoever watches (a terminal's progress bar).
    fn progress(&self, event: Progress) {
        if let Some(tx) = &self.cfg.report.progress {
            let _ = tx.send(event);
        }
    }
}
