//! The driver: `helloworld.Greeter/SayHello` runs the whole workflow once.
//!
//! 1. store the dataset (or pass it inline), under a key scoped by a fresh run id;
//! 2. `Trainer.Train` for trainers `0..N` with `models[i % len]`, one after
//!    another or all at once (`CONCURRENT_TRAINING`);
//! 3. `Reducer.Reduce` with every trainer's keys in trainer order;
//! 4. `Metatrainer.Metatrain` with the meta model's config;
//! 5. read the full model and meta predictions back and check they decode;
//! 6. delete the run's objects (unless asked to keep them) and reply.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use stacking_core::{npy, serial, StackConfig};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use crate::context::{Context, Moved};
use crate::error::StepError;
use crate::pb::helloworld::greeter_server::Greeter;
use crate::pb::helloworld::{HelloReply, HelloRequest};
use crate::pb::stacking::metatrainer_client::MetatrainerClient;
use crate::pb::stacking::reducer_client::ReducerClient;
use crate::pb::stacking::trainer_client::TrainerClient;
use crate::pb::stacking::{
    MetaTrainRequest, ModelPredTuple, ReduceRequest, StepStats, TrainReply, TrainRequest,
};
use crate::settings::Transfer;
use crate::trace::{Kind, Span};

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
}

/// What one run did, returned as JSON in `HelloReply.report_json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub run_id: String,
    pub transfer: String,
    pub concurrent: bool,
    pub trainers: Vec<TrainerReport>,
    pub ensemble_auc: f64,
    /// `roc_auc(hard predictions, y)`: the original's swapped-argument value, for comparison only.
    pub auc_as_reported_by_original: Option<f64>,
    pub stages_ms: Stages,
    /// Compute time reported by the functions (sum over the trainers when sequential).
    pub compute_ms: f64,
    pub bytes: ByteCounts,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainerReport {
    pub id: String,
    pub model: String,
    pub oof_auc: f64,
    pub rpc_ms: f64,
    pub server_ms: f64,
    pub compute_ms: f64,
    /// Start of the call, relative to the start of the run.
    pub start_ms: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stages {
    pub upload: f64,
    pub train: f64,
    pub reduce: f64,
    pub metatrain: f64,
    pub readback: f64,
    pub cleanup: f64,
    pub total: f64,
    pub reduce_compute: f64,
    pub metatrain_compute: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ByteCounts {
    pub inline_sent: u64,
    pub inline_received: u64,
    pub storage_read: u64,
    pub storage_written: u64,
}

impl ByteCounts {
    fn add_stats(&mut self, s: &Option<StepStats>) {
        if let Some(s) = s {
            self.storage_read += s.storage_read_bytes;
            self.storage_written += s.storage_written_bytes;
        }
    }
}

impl RunReport {
    /// The documented one-line summary in `HelloReply.message`.
    pub fn summary(&self) -> String {
        format!(
            "run={} trainers={} auc={:.6} ms={:.1}",
            self.run_id,
            self.trainers.len(),
            self.ensemble_auc,
            self.stages_ms.total
        )
    }
}

fn endpoint(addr: &str, cfg: &DriverConfig) -> Result<Channel, StepError> {
    let uri = if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    let ep = Endpoint::from_shared(uri)
        .map_err(|e| StepError::bad(format!("address {addr:?}: {e}")))?
        .connect_timeout(Duration::from_secs(3))
        .timeout(cfg.call_timeout)
        .tcp_nodelay(true)
        .initial_stream_window_size(Some(crate::server::STREAM_WINDOW))
        .initial_connection_window_size(Some(crate::server::CONNECTION_WINDOW));
    Ok(ep.connect_lazy())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1e3
}

/// Retries a unary call the server refused before processing it: HTTP/2
/// `REFUSED_STREAM`, which RFC 9113 (8.7) makes safe to retry. The workers
/// cap open streams per connection; a burst of calls on a new connection is
/// sent before the server's SETTINGS frame says so, and the excess is refused.
/// Once the limit is known the client queues calls itself.
async fn retry_refused<T, F, Fut>(mut call: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Status>>,
{
    const MAX_RETRIES: u32 = 8;
    let mut retries = 0;
    loop {
        match call().await {
            Err(status) if retries < MAX_RETRIES && was_refused(&status) => {
                retries += 1;
                tracing::debug!(retries, "stream refused before processing; retrying");
            }
            other => return other,
        }
    }
}

/// Whether `status` comes from an HTTP/2 `REFUSED_STREAM` reset.
fn was_refused(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return h2.reason() == Some(h2::Reason::REFUSED_STREAM);
        }
        source = e.source();
    }
    false
}

fn downstream(context: String) -> impl FnOnce(Status) -> StepError {
    move |status| StepError::Downstream { context, status }
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
        if ctx.transfer == Transfer::S3 && ctx.store.is_none() {
            return Err(StepError::bad("TRANSFER_TYPE=S3 needs an object store"));
        }
        let limit = cfg.max_message_bytes;
        let trainer = TrainerClient::new(endpoint(&cfg.trainer_addr, &cfg)?)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        let reducer = ReducerClient::new(endpoint(&cfg.reducer_addr, &cfg)?)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        let metatrainer = MetatrainerClient::new(endpoint(&cfg.metatrainer_addr, &cfg)?)
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
        })
    }

    pub fn config(&self) -> &DriverConfig {
        &self.cfg
    }

    /// One complete invocation, untraced.
    pub async fn run(&self) -> Result<RunReport, StepError> {
        self.run_traced(&Span::none()).await
    }

    /// One complete invocation; its spans are children of `root`.
    pub async fn run_traced(&self, root: &Span) -> Result<RunReport, StepError> {
        let run_id = format!("run-{}", uuid::Uuid::new_v4().simple());
        let mut root_tags = root.child("run", None);
        root_tags.tag("run_id", &run_id);
        drop(root_tags);
        let mut written_keys: Vec<String> = Vec::new();
        let result = self.run_inner(&run_id, &mut written_keys, root).await;
        if !self.cfg.keep_objects {
            let _span = root.child("cleanup", None);
            self.cleanup(&written_keys).await;
        }
        result.map(|(mut report, started)| {
            report.stages_ms.cleanup = ms(started.elapsed()) - report.stages_ms.total;
            report.stages_ms.total = ms(started.elapsed());
            report
        })
    }

    /// Deletes the run's objects in one bulk request (S3 `DeleteObjects`).
    async fn cleanup(&self, keys: &[String]) {
        let keys: Vec<String> = keys.iter().filter(|k| !k.is_empty()).cloned().collect();
        if let (Some(store), false) = (&self.ctx.store, keys.is_empty()) {
            if let Err(e) = store.delete_many(&keys).await {
                tracing::warn!(error = %e, "could not delete the run's objects");
            }
        }
    }

    async fn run_inner(
        &self,
        run_id: &str,
        keys: &mut Vec<String>,
        root: &Span,
    ) -> Result<(RunReport, Instant), StepError> {
        let started = Instant::now();
        let mut stages = Stages::default();
        let mut bytes = ByteCounts::default();
        let inline = self.ctx.transfer == Transfer::Inline;
        let LoadedDataset {
            bytes: dataset,
            n_samples,
        } = self.dataset().await?.clone();

        // 1. the dataset
        let dataset_key = format!("{run_id}/dataset");
        let t = Instant::now();
        let (dataset_inline, dataset_key) = if inline {
            (dataset, String::new())
        } else {
            let emitted = self.ctx.emit(dataset_key, dataset, root).await?;
            bytes.storage_written += emitted.written;
            keys.push(emitted.key.clone());
            (Bytes::new(), emitted.key)
        };
        stages.upload = ms(t.elapsed());

        // 2. the trainers
        let t = Instant::now();
        let call = |i: usize| {
            let client = self.trainer.clone();
            let spec = self.cfg.stack.model_for_trainer(i);
            let req = TrainRequest {
                dataset: dataset_inline.clone(),
                dataset_key: dataset_key.clone(),
                model_config: Bytes::from(spec.to_json().to_string()),
                trainer_id: i.to_string(),
                run_id: run_id.to_string(),
            };
            let addr = self.cfg.trainer_addr.clone();
            let span = root.child(format!("Train {i}"), Some(Kind::Client));
            async move {
                let t0 = Instant::now();
                let start_ms = ms(t0.duration_since(t));
                let reply = retry_refused(|| {
                    let mut req = tonic::Request::new(req.clone());
                    span.inject(req.metadata_mut());
                    let mut client = client.clone();
                    async move { client.train(req).await }
                })
                .await
                .map_err(downstream(format!("Train on trainer {i} ({addr})")))?
                .into_inner();
                drop(span);
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
        stages.train = ms(t.elapsed());
        let mut trainers = Vec::with_capacity(replies.len());
        let mut tuples = Vec::with_capacity(replies.len());
        let mut compute_ms = 0.0;
        for (i, (reply, rpc_ms, start_ms)) in replies.into_iter().enumerate() {
            keys.push(reply.model_key.clone());
            keys.push(reply.pred_key.clone());
            bytes.add_stats(&reply.stats);
            bytes.inline_sent += dataset_inline.len() as u64;
            bytes.inline_received += (reply.model.len() + reply.predictions.len()) as u64;
            let stats = reply.stats.unwrap_or_default();
            compute_ms += us_to_ms(stats.compute_us);
            trainers.push(TrainerReport {
                id: i.to_string(),
                model: reply.model_name,
                oof_auc: reply.oof_auc,
                rpc_ms,
                server_ms: us_to_ms(stats.total_us),
                compute_ms: us_to_ms(stats.compute_us),
                start_ms,
            });
            tuples.push(ModelPredTuple {
                model_key: reply.model_key,
                pred_key: reply.pred_key,
                model: reply.model,
                predictions: reply.predictions,
            });
        }
        if self.cfg.concurrent {
            compute_ms = trainers.iter().map(|t| t.compute_ms).fold(0.0, f64::max);
        }

        // 3. the reducer
        let t = Instant::now();
        let reduce_req = ReduceRequest {
            model_pred_tuples: tuples,
            run_id: run_id.to_string(),
        };
        bytes.inline_sent += reduce_req
            .model_pred_tuples
            .iter()
            .map(|t| (t.model.len() + t.predictions.len()) as u64)
            .sum::<u64>();
        let span = root.child("Reduce", Some(Kind::Client));
        let reduced = retry_refused(|| {
            let mut req = tonic::Request::new(reduce_req.clone());
            span.inject(req.metadata_mut());
            let mut client = self.reducer.clone();
            async move { client.reduce(req).await }
        })
        .await
        .map_err(downstream(format!("Reduce ({})", self.cfg.reducer_addr)))?
        .into_inner();
        drop(span);
        stages.reduce = ms(t.elapsed());
        keys.push(reduced.models_key.clone());
        keys.push(reduced.meta_features_key.clone());
        bytes.add_stats(&reduced.stats);
        bytes.inline_received += (reduced.models.len() + reduced.meta_features.len()) as u64;
        stages.reduce_compute = us_to_ms(reduced.stats.map_or(0, |s| s.compute_us));

        // 4. the metatrainer
        let t = Instant::now();
        let meta_req = MetaTrainRequest {
            dataset: dataset_inline.clone(),
            dataset_key: dataset_key.clone(),
            models: reduced.models,
            models_key: reduced.models_key,
            meta_features: reduced.meta_features,
            meta_features_key: reduced.meta_features_key,
            model_config: Bytes::from(self.cfg.stack.meta_model.to_json().to_string()),
            run_id: run_id.to_string(),
        };
        bytes.inline_sent +=
            (meta_req.dataset.len() + meta_req.models.len() + meta_req.meta_features.len()) as u64;
        let span = root.child("Metatrain", Some(Kind::Client));
        let meta = retry_refused(|| {
            let mut req = tonic::Request::new(meta_req.clone());
            span.inject(req.metadata_mut());
            let mut client = self.metatrainer.clone();
            async move { client.metatrain(req).await }
        })
        .await
        .map_err(downstream(format!(
            "Metatrain ({})",
            self.cfg.metatrainer_addr
        )))?
        .into_inner();
        drop(span);
        stages.metatrain = ms(t.elapsed());
        keys.push(meta.model_full_key.clone());
        keys.push(meta.meta_predictions_key.clone());
        bytes.add_stats(&meta.stats);
        bytes.inline_received += (meta.model_full.len() + meta.meta_predictions.len()) as u64;
        stages.metatrain_compute = us_to_ms(meta.stats.map_or(0, |s| s.compute_us));

        // 5. read back and check
        let t = Instant::now();
        let readback = root.child("read back", None);
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
        bytes.storage_read += moved_full.read + moved_preds.read;
        let n_models = trainers.len();
        let _admitted = self.ctx.admit().await?;
        self.ctx
            .compute(move || {
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
        stages.readback = ms(t.elapsed());
        stages.total = ms(started.elapsed());

        let ensemble_auc: f64 = meta.score.parse().map_err(|_| {
            StepError::Internal(format!(
                "metatrainer score {:?} is not a number",
                meta.score
            ))
        })?;
        let report = RunReport {
            run_id: run_id.to_string(),
            transfer: self.ctx.transfer.as_str().to_string(),
            concurrent: self.cfg.concurrent,
            trainers,
            ensemble_auc,
            auc_as_reported_by_original: meta.score_as_reported_by_original.parse().ok(),
            compute_ms: compute_ms + stages.reduce_compute + stages.metatrain_compute,
            stages_ms: stages,
            bytes,
        };
        Ok((report, started))
    }
}

/// The `Greeter` service around a shared [`Driver`].
#[derive(Debug, Clone)]
pub struct DriverService(pub Arc<Driver>);

#[tonic::async_trait]
impl Greeter for DriverService {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let root = self.0.ctx.server_span("SayHello", request.metadata());
        let name = request.into_inner().name;
        match self.0.run_traced(&root).await {
            Ok(report) => {
                let message = report.summary();
                tracing::info!(%name, %message, "run finished");
                Ok(Response::new(HelloReply {
                    message,
                    report_json: serde_json::to_string(&report).unwrap_or_default(),
                }))
            }
            Err(e) => {
                tracing::warn!(code = ?e.code(), error = %e, "run failed");
                Err(e.into())
            }
        }
    }
}
