//! The driver: `helloworld.Greeter/SayHello` runs the whole workflow once.
//!
//! 1. store the dataset (or pass it inline), under a key scoped by a fresh run id;
//! 2. `Trainer.Train` for trainers `0..N` with `models[i % len]`, one after
//!    another or all at once (`CONCURRENT_TRAINING`);
//! 3. `Reducer.Reduce` with every trainer's keys in trainer order;
//! 4. `Metatrainer.Metatrain` with the meta model's config;
//! 5. read the full model and meta predictions back and check they decode;
//! 6. delete the run's objects (unless asked to keep them) and reply.
//!
//! The whole invocation has one deadline (the caller's `grpc-timeout`, at
//! most `INVOCATION_TIMEOUT_S`); each call downstream gets what remains of
//! it ([`crate::rpc`]). Whatever happens — success, a failed stage, the
//! caller cancelling, the deadline, SIGTERM — the run's objects are deleted
//! by a task detached from the request: every key the run can write is known
//! from its run id, and the run's prefix is listed as well. After a failed
//! run a second sweep follows [`LATE_WRITE_GRACE`] later, for a write a
//! worker had in flight when the run gave up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use stacking_core::params::excerpt;
use stacking_core::{npy, serial, StackConfig};
use stacking_storage::BlobStore;
use tokio_util::task::TaskTracker;
use tonic::transport::Channel;

use crate::context::{Context, Moved};
use crate::error::StepError;
use crate::pb::stacking::metatrainer_client::MetatrainerClient;
use crate::pb::stacking::reducer_client::ReducerClient;
use crate::pb::stacking::trainer_client::TrainerClient;
use crate::pb::stacking::{
    MetaTrainReply, MetaTrainRequest, ModelPredTuple, ReduceReply, ReduceRequest, TrainReply,
    TrainRequest,
};
pub use crate::report::{
    ArtifactSink, ByteCounts, DatasetReport, Progress, ReportOptions, RunArtifacts, RunReport,
    Stages, TrainerReport,
};
use crate::rpc::{self, Deadline};
use crate::settings::Transfer;
use crate::trace::{Kind, Span};

/// How long after a failed run its prefix is swept a second time.
pub const LATE_WRITE_GRACE: Duration = Duration::from_secs(3);

/// Everything the driver is configured with.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    pub trainer_addr: String,
    pub reducer_addr: String,
    pub metatrainer_addr: String,
    pub trainers: usize,
    pub concurrent: bool,
    pub keep_objects: bool,
    pub stack: StackConfig,
    pub call_timeout: Duration,
    pub max_message_bytes: usize,
    /// The dataset's provenance, progress events and results beyond the reply.
    pub report: ReportOptions,
}

/// The dataset in its wire form and its row count.
#[derive(Debug, Clone)]
pub struct LoadedDataset {
    pub bytes: Bytes,
    pub n_samples: usize,
}

/// A dataset still being made (on another thread) when the driver starts.
pub type PendingDataset = tokio::sync::oneshot::Receiver<Result<LoadedDataset, String>>;

/// The driver's state: configuration, the dataset made at start-up, clients.
#[derive(Debug)]
pub struct Driver {
    cfg: DriverConfig,
    ctx: Context,
    dataset: tokio::sync::OnceCell<Result<LoadedDataset, String>>,
    pending: std::sync::Mutex<Option<PendingDataset>>,
    trainer: TrainerClient<Channel>,
    reducer: ReducerClient<Channel>,
    metatrainer: MetatrainerClient<Channel>,
    /// Cleanup tasks still running; a draining driver waits for them.
    cleanups: TaskTracker,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1e3
}

/// One call downstream: a client span named `span_name`, the remaining
/// budget as the call's `grpc-timeout`, transport failures retried; a
/// failure becomes [`StepError::Downstream`] naming `what`.
async fn call_stage<Req, Rep, F, Fut>(
    root: &Span,
    deadline: Deadline,
    span_name: String,
    what: String,
    req: Req,
    call: F,
) -> Result<Rep, StepError>
where
    Req: Clone,
    F: Fn(tonic::Request<Req>) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<Rep>, tonic::Status>>,
{
    let span = root.child(span_name, Some(Kind::Client));
    let reply = rpc::call_with_retry(&what, deadline, |remaining| {
        let mut request = tonic::Request::new(req.clone());
        request.set_timeout(remaining);
        span.inject(request.metadata_mut());
        call(request)
    })
    .await;
    drop(span);
    reply
        .map(tonic::Response::into_inner)
        .map_err(|status| StepError::Downstream {
            context: what,
            status,
        })
}

/// Every key a run with this id can write, whether or not it got that far.
fn run_keys(run_id: &str, trainers: usize) -> Vec<String> {
    let fixed = [
        "dataset",
        "models",
        "meta_features",
        "model_full",
        "meta_predictions",
    ];
    fixed
        .iter()
        .map(|name| format!("{run_id}/{name}"))
        .chain(
            (0..trainers)
                .flat_map(|i| [format!("{run_id}/model_{i}"), format!("{run_id}/pred_{i}")]),
        )
        .collect()
}

/// Deletes a run's objects: its known keys and, with `list_prefix`, also
/// whatever its prefix lists. A run that succeeded wrote only known keys, so
/// only a failed one pays for the listing.
async fn delete_run(store: &dyn BlobStore, run_id: &str, known: &[String], list_prefix: bool) {
    let mut keys = known.to_vec();
    if list_prefix {
        match store.list(&format!("{run_id}/")).await {
            Ok(listed) => keys.extend(listed.into_iter().filter(|k| !known.contains(k))),
            Err(e) => tracing::warn!(error = %e, "could not list the run's objects"),
        }
    }
    if let Err(e) = store.delete_many(&keys).await {
        tracing::warn!(error = %e, "could not delete the run's objects");
    }
}

/// Arms a run's cleanup: if the run's future is dropped (the caller went
/// away or its deadline passed), the cleanup still runs, on its own task.
struct CleanupGuard {
    store: Option<Arc<dyn BlobStore>>,
    run_id: String,
    keys: Vec<String>,
    tracker: TaskTracker,
    armed: bool,
}

impl CleanupGuard {
    /// Starts the cleanup now; `failed` adds the late sweep.
    fn start(&mut self, failed: bool) -> Option<tokio::task::JoinHandle<()>> {
        self.armed = false;
        let store = self.store.clone()?;
        let (run_id, keys) = (self.run_id.clone(), std::mem::take(&mut self.keys));
        Some(self.tracker.spawn(async move {
            delete_run(store.as_ref(), &run_id, &keys, failed).await;
            if failed {
                tokio::time::sleep(LATE_WRITE_GRACE).await;
                delete_run(store.as_ref(), &run_id, &keys, true).await;
            }
        }))
    }
}

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        if self.armed {
            // Only on a runtime: a guard dropped by the runtime's own
            // shutdown cannot spawn, and `spawn` would panic.
            if tokio::runtime::Handle::try_current().is_ok() {
                drop(self.start(true));
            }
        }
    }
}

/// What the stages of one run hand on to each other.
struct RunState<'a> {
    run_id: &'a str,
    deadline: Deadline,
    root: &'a Span,
    dataset_inline: Bytes,
    dataset_key: String,
    n_samples: usize,
    stages: Stages,
    bytes: ByteCounts,
    /// Convergence warnings of every step, in order.
    warnings: Vec<String>,
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

    /// A driver whose dataset is still being generated: it serves as soon as
    /// it is made, so that generating it overlaps the process start-up.
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
                        .unwrap_or_else(|_| Err("the dataset generator stopped".into())),
                    None => Err("no dataset".into()),
                }
            })
            .await;
        loaded
            .as_ref()
            .map_err(|e| StepError::Internal(format!("dataset: {e}")))
    }

    fn with_pending(
        cfg: DriverConfig,
        ctx: Context,
        pending: Option<PendingDataset>,
    ) -> Result<Self, StepError> {
        if cfg.trainers == 0 {
            return Err(StepError::bad("trainersNum must be at least 1"));
        }
        if ctx.transfer.uses_store() && ctx.store.is_none() {
            return Err(StepError::bad(format!(
                "TRANSFER_TYPE={} needs a store",
                ctx.transfer.as_str()
            )));
        }
        let limit = cfg.max_message_bytes;
        let endpoint = |addr: &str| rpc::channel(addr, cfg.call_timeout);
        let trainer = TrainerClient::new(endpoint(&cfg.trainer_addr)?)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        let reducer = ReducerClient::new(endpoint(&cfg.reducer_addr)?)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
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
        })
    }

    pub fn config(&self) -> &DriverConfig {
        &self.cfg
    }

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
        let run_id = format!("run-{}", uuid::Uuid::new_v4().simple());
        let mut root_tags = root.child("run", None);
        root_tags.tag("run_id", &run_id);
        drop(root_tags);
        let mut cleanup = CleanupGuard {
            store: self.ctx.store.clone().filter(|_| !self.cfg.keep_objects),
            keys: run_keys(&run_id, self.cfg.trainers),
            run_id: run_id.clone(),
            tracker: self.cleanups.clone(),
            armed: true,
        };
        let started = Instant::now();
        let result = self.run_stages(&run_id, deadline, root).await;
        if let Some(task) = cleanup.start(result.is_err()) {
            if result.is_ok() {
                let _span = root.child("cleanup", None);
                let _ = task.await;
            }
        }
        result.map(|mut report| {
            report.stages_ms.cleanup = ms(started.elapsed()) - report.stages_ms.total;
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
        } = self.dataset().await?.clone();
        let dataset_report = self.dataset_report(&dataset, n_samples);
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
        if self.ctx.transfer == Transfer::Inline {
            self.check_inline_plan(&dataset, n_samples)?;
        }
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
        if self.cfg.concurrent {
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
            transfer: self.ctx.transfer.as_str().to_string(),
            concurrent: self.cfg.concurrent,
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

    /// Sends a progress event to whoever watches (a terminal's progress bar).
    fn progress(&self, event: Progress) {
        if let Some(tx) = &self.cfg.report.progress {
            let _ = tx.send(event);
        }
    }

    /// The dataset's shape, size and provenance, for the report.
    fn dataset_report(&self, dataset: &Bytes, n_samples: usize) -> DatasetReport {
        let prefix = &dataset[..dataset.len().min(stacking_core::WireLayout::PROBE_LEN)];
        let opts = &self.cfg.report;
        DatasetReport {
            n_samples,
            n_features: stacking_core::WireLayout::from_prefix(prefix).map_or(0, |l| l.n_features),
            bytes: dataset.len(),
            source: if opts.dataset_source.is_empty() {
                "make_classification".to_string()
            } else {
                opts.dataset_source.clone()
            },
            seed: opts.seed,
            notes: opts.dataset_notes.clone(),
        }
    }

    /// Refuses up front, with `OUT_OF_RANGE`, an inline message over the limit.
    fn check_inline_size(&self, what: &str, bytes: usize) -> Result<(), StepError> {
        // Room for the message's other fields.
        let limit = self.cfg.max_message_bytes.saturating_sub(64 << 10);
        if bytes > limit {
            return Err(StepError::TooLarge(format!(
                "{what} would carry {bytes} bytes inline, over the {} MiB message limit; raise GRPC_MAX_MESSAGE_MB on every function or use TRANSFER_TYPE=S3 or ELASTICACHE",
                self.cfg.max_message_bytes >> 20
            )));
        }
        Ok(())
    }

    /// Before any work: the least the inline `Reduce` and `Metatrain`
    /// requests must carry (every trainer's predictions, each KNN model's
    /// training rows, each linear model's coefficients; `Metatrain` also the
    /// dataset) against the message limit. 512 trainers inline once failed
    /// after 17 s of training with an h2 protocol error, and the 30,000-row
    /// dataset after 48 s at `Metatrain`.
    fn check_inline_plan(&self, dataset: &Bytes, n_samples: usize) -> Result<(), StepError> {
        let prefix = &dataset[..dataset.len().min(stacking_core::WireLayout::PROBE_LEN)];
        let n_features = stacking_core::WireLayout::from_prefix(prefix)
            .map(|l| l.n_features)
            .unwrap_or(0);
        let models: usize = (0..self.cfg.trainers)
            .map(|i| match self.cfg.stack.model_for_trainer(i) {
                stacking_core::ModelSpec::KNeighborsRegressor(_) => {
                    n_samples * (n_features + 1) * 8
                }
                stacking_core::ModelSpec::RandomForestRegressor(_) => 0,
                _ => n_features * 8,
            })
            .sum();
        let predictions = self.cfg.trainers * n_samples * 8;
        for (what, at_least) in [
            ("Reduce", models + predictions),
            ("Metatrain", dataset.len() + models + predictions),
        ] {
            self.check_inline_size(what, at_least).map_err(|_| {
                StepError::TooLarge(format!(
                    "{} trainers inline on a {n_samples} x {n_features} dataset would send {what} at least {at_least} bytes in one message, over the {} MiB limit; raise GRPC_MAX_MESSAGE_MB on every function, use fewer trainers, or use TRANSFER_TYPE=S3 or ELASTICACHE",
                    self.cfg.trainers,
                    self.cfg.max_message_bytes >> 20
                ))
            })?;
        }
        Ok(())
    }

    /// 1. The dataset: stored under the run, or carried inline.
    async fn upload(&self, run: &mut RunState<'_>, dataset: Bytes) -> Result<(), StepError> {
        let t = Instant::now();
        if self.ctx.transfer == Transfer::Inline {
            self.check_inline_size("Train", dataset.len())?;
            run.dataset_inline = dataset;
        } else {
            let key = format!("{}/dataset", run.run_id);
            let emitted = self.ctx.emit(key, dataset, run.root).await?;
            run.bytes.storage_written += emitted.written;
            run.dataset_key = emitted.key;
        }
        run.stages.upload = ms(t.elapsed());
        Ok(())
    }

    /// 2. Every trainer, one after another or all at once.
    async fn train_all(
        &self,
        run: &mut RunState<'_>,
    ) -> Result<(Vec<TrainerReport>, Vec<ModelPredTuple>), StepError> {
        let t = Instant::now();
        self.progress(Progress::Training {
            trainers: self.cfg.trainers,
        });
        let call = |i: usize| {
            let spec = self.cfg.stack.model_for_trainer(i);
            let req = TrainRequest {
                dataset: run.dataset_inline.clone(),
                dataset_key: run.dataset_key.clone(),
                model_config: Bytes::from(spec.to_json().to_string()),
                trainer_id: i.to_string(),
                run_id: run.run_id.to_string(),
            };
            let what = format!("Train on trainer {i} ({})", self.cfg.trainer_addr);
            let (root, deadline) = (run.root, run.deadline);
            async move {
                let t0 = Instant::now();
                let start_ms = ms(t0.duration_since(t));
                let reply = call_stage(root, deadline, format!("Train {i}"), what, req, |r| {
                    let mut client = self.trainer.clone();
                    async move { client.train(r).await }
                })
                .await?;
                self.progress(Progress::TrainerDone {
                    id: i,
                    model: reply.model_name.clone(),
                });
                Ok::<_, StepError>((reply, ms(t0.elapsed()), start_ms))
            }
        };
        let replies: Vec<(TrainReply, f64, f64)> = if self.cfg.concurrent {
            futures::future::try_join_all((0..self.cfg.trainers).map(call)).await?
        } else {
            let mut v = Vec::with_capacity(self.cfg.trainers);
            for i in 0..self.cfg.trainers {
                v.push(call(i).await?);
            }
            v
        };
        run.stages.train = ms(t.elapsed());
        let mut trainers = Vec::with_capacity(replies.len());
        let mut tuples = Vec::with_capacity(replies.len());
        for (i, (reply, rpc_ms, start_ms)) in replies.into_iter().enumerate() {
            run.bytes.add_stats(&reply.stats);
            run.bytes.inline_sent += run.dataset_inline.len() as u64;
            run.bytes.inline_received += (reply.model.len() + reply.predictions.len()) as u64;
            let stats = reply.stats.unwrap_or_default();
            run.warnings.extend(
                stats
                    .warnings
                    .iter()
                    .map(|w| format!("trainer {i}: {}", excerpt(w, 300))),
            );
            trainers.push(TrainerReport {
                id: i,
                model: reply.model_name,
                params: self.cfg.stack.model_for_trainer(i).to_json()["params"].clone(),
                oof_auc: reply.oof_auc,
                rpc_ms,
                server_ms: us_to_ms(stats.total_us),
                queue_ms: us_to_ms(stats.queue_us),
                compute_ms: us_to_ms(stats.compute_us),
                warnings: stats.warnings.iter().map(|w| excerpt(w, 300)).collect(),
                start_ms,
            });
            tuples.push(ModelPredTuple {
                model_key: reply.model_key,
                pred_key: reply.pred_key,
                model: reply.model,
                predictions: reply.predictions,
            });
        }
        Ok((trainers, tuples))
    }

    /// 3. The reducer.
    async fn reduce(
        &self,
        run: &mut RunState<'_>,
        tuples: Vec<ModelPredTuple>,
    ) -> Result<ReduceReply, StepError> {
        let t = Instant::now();
        self.progress(Progress::Stage("reduce"));
        let inline: usize = tuples
            .iter()
            .map(|t| t.model.len() + t.predictions.len())
            .sum();
        self.check_inline_size("Reduce", inline)?;
        run.bytes.inline_sent += inline as u64;
        let req = ReduceRequest {
            model_pred_tuples: tuples,
            run_id: run.run_id.to_string(),
        };
        let what = format!("Reduce ({})", self.cfg.reducer_addr);
        let reduced = call_stage(run.root, run.deadline, "Reduce".into(), what, req, |r| {
            let mut client = self.reducer.clone();
            async move { client.reduce(r).await }
        })
        .await?;
        run.stages.reduce = ms(t.elapsed());
        run.bytes.add_stats(&reduced.stats);
        run.bytes.inline_received += (reduced.models.len() + reduced.meta_features.len()) as u64;
        run.stages.reduce_compute = us_to_ms(reduced.stats.as_ref().map_or(0, |s| s.compute_us));
        Ok(reduced)
    }

    /// 4. The metatrainer.
    async fn metatrain(
        &self,
        run: &mut RunState<'_>,
        reduced: ReduceReply,
    ) -> Result<MetaTrainReply, StepError> {
        let t = Instant::now();
        self.progress(Progress::Stage("metatrain"));
        let req = MetaTrainRequest {
            dataset: run.dataset_inline.clone(),
            dataset_key: run.dataset_key.clone(),
            models: reduced.models,
            models_key: reduced.models_key,
            meta_features: reduced.meta_features,
            meta_features_key: reduced.meta_features_key,
            model_config: Bytes::from(self.cfg.stack.meta_model.to_json().to_string()),
            run_id: run.run_id.to_string(),
        };
        let inline = req.dataset.len() + req.models.len() + req.meta_features.len();
        self.check_inline_size("Metatrain", inline)?;
        run.bytes.inline_sent += inline as u64;
        let what = format!("Metatrain ({})", self.cfg.metatrainer_addr);
        let meta = call_stage(run.root, run.deadline, "Metatrain".into(), what, req, |r| {
            let mut client = self.metatrainer.clone();
            async move { client.metatrain(r).await }
        })
        .await?;
        run.stages.metatrain = ms(t.elapsed());
        run.bytes.add_stats(&meta.stats);
        run.bytes.inline_received += (meta.model_full.len() + meta.meta_predictions.len()) as u64;
        if let Some(stats) = &meta.stats {
            run.stages.metatrain_compute = us_to_ms(stats.compute_us);
            run.warnings.extend(
                stats
                    .warnings
                    .iter()
                    .map(|w| format!("metatrainer: {}", excerpt(w, 300))),
            );
        }
        Ok(meta)
    }

    /// 5. Reads the full model and the meta predictions back and checks them.
    async fn read_back(
        &self,
        run: &mut RunState<'_>,
        meta: &MetaTrainReply,
        n_models: usize,
    ) -> Result<RunArtifacts, StepError> {
        let t = Instant::now();
        let readback = run.root.child("read back", None);
        let (mut moved_full, mut moved_preds) = (Moved::default(), Moved::default());
        let (full, preds) = tokio::try_join!(
            self.ctx.fetch(
                &meta.model_full,
                &meta.model_full_key,
                "model_full",
                &mut moved_full,
                &readback
            ),
            self.ctx.fetch(
                &meta.meta_predictions,
                &meta.meta_predictions_key,
                "meta_predictions",
                &mut moved_preds,
                &readback
            ),
        )?;
        run.bytes.storage_read += moved_full.read + moved_preds.read;
        let n_samples = run.n_samples;
        let _admitted = self.ctx.admit().await?;
        let artifacts = RunArtifacts {
            run_id: run.run_id.to_string(),
            model_full: full.clone(),
            meta_predictions: preds.clone(),
        };
        self.ctx
            .compute(move |_| {
                let model = serial::decode_full(&full).map_err(|e| {
                    StepError::Internal(format!("the stored full model does not decode: {e}"))
                })?;
                if model.level0.len() != n_models {
                    return Err(StepError::Internal(format!(
                        "the full model holds {} level-0 models, expected {n_models}",
                        model.level0.len()
                    )));
                }
                let p = npy::decode_f64_1d(&preds).map_err(|e| {
                    StepError::Internal(format!("the meta predictions do not decode: {e}"))
                })?;
                if p.len() != n_samples {
                    return Err(StepError::Internal(format!(
                        "{} meta predictions for {n_samples} samples",
                        p.len()
                    )));
                }
                Ok(())
            })
            .await?;
        run.stages.readback = ms(t.elapsed());
        Ok(artifacts)
    }
}
