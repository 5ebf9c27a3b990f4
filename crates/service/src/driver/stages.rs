//! The stages of one run: upload, train, reduce, metatrain, read back.
//! Each records its time and bytes in the run's [`RunState`].

use std::time::Instant;

use bytes::Bytes;
use stacking_core::params::excerpt;
use stacking_core::{npy, serial};

use super::reduce_call::{self, Segments};
use super::{ms, us_to_ms, Driver};
use crate::context::Moved;
use crate::error::StepError;
use crate::pb::stacking::{
    MetaTrainReply, MetaTrainRequest, ModelPredTuple, ReduceReply, ReduceRequest, TrainReply,
    TrainRequest,
};
use crate::report::{ByteCounts, Progress, RunArtifacts, Stages, TrainerReport};
use crate::rpc::{self, Deadline};
use crate::settings::Transfer;
use crate::trace::{Kind, Span};

/// What the stages of one run hand on to each other.
pub(super) struct RunState<'a> {
    pub(super) run_id: &'a str,
    pub(super) deadline: Deadline,
    pub(super) root: &'a Span,
    pub(super) dataset_inline: Bytes,
    pub(super) dataset_key: String,
    pub(super) n_samples: usize,
    pub(super) stages: Stages,
    pub(super) bytes: ByteCounts,
    /// Convergence warnings of every step, in order.
    pub(super) warnings: Vec<String>,
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

impl Driver {
    /// 1. The dataset: stored under the run, or carried inline.
    pub(super) async fn upload(
        &self,
        run: &mut RunState<'_>,
        dataset: Bytes,
    ) -> Result<(), StepError> {
        let t = Instant::now();
        if self.ctx.transfer() == Transfer::Inline {
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
    pub(super) async fn train_all(
        &self,
        run: &mut RunState<'_>,
    ) -> Result<(Vec<TrainerReport>, Vec<ModelPredTuple>), StepError> {
        let t = Instant::now();
        self.progress(Progress::Training {
            trainers: self.cfg.plan.trainers,
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
        let replies: Vec<(TrainReply, f64, f64)> = if self.cfg.plan.concurrent {
            futures::future::try_join_all((0..self.cfg.plan.trainers).map(call)).await?
        } else {
            let mut v = Vec::with_capacity(self.cfg.plan.trainers);
            for i in 0..self.cfg.plan.trainers {
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
    pub(super) async fn reduce(
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
        // The request's bytes refer to the trainers' replies (no copy of
        // the models), and are kept for a retry.
        let req = Segments::reduce_request(&ReduceRequest {
            model_pred_tuples: tuples,
            run_id: run.run_id.to_string(),
        });
        let what = format!("Reduce ({})", self.cfg.reducer_addr);
        let max_reply = self.cfg.plan.max_message_bytes;
        let reduced = call_stage(run.root, run.deadline, "Reduce".into(), what, req, |r| {
            reduce_call::reduce(self.reducer.clone(), r, max_reply)
        })
        .await?;
        run.stages.reduce = ms(t.elapsed());
        run.bytes.add_stats(&reduced.stats);
        run.bytes.inline_received += (reduced.models.len() + reduced.meta_features.len()) as u64;
        run.stages.reduce_compute = us_to_ms(reduced.stats.as_ref().map_or(0, |s| s.compute_us));
        Ok(reduced)
    }

    /// 4. The metatrainer.
    pub(super) async fn metatrain(
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
    pub(super) async fn read_back(
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
        let _slot = self.ctx.compute_slot().await?;
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
