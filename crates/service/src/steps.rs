//! The three worker steps, shared by the gRPC services and therefore by the
//! embedded `stacking run`: fetch inputs (inline or from the store), compute
//! with the ML core on the blocking pool, hand results on.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use ndarray::Array1;
use stacking_core::config::default_meta;
use stacking_core::models::FittedModel;
use stacking_core::stack::{meta_features, train_level0_until, train_level1_until};
use stacking_core::{npy, serial, Dataset, FullModel, ModelSpec, WireLayout};

use crate::context::{check_segment, Context, Moved, RunScope};
use crate::error::StepError;
use crate::pb::stacking::{
    MetaTrainReply, MetaTrainRequest, ModelPredTuple, ReduceReply, ReduceRequest, StepStats,
    TrainReply, TrainRequest,
};
use crate::trace::Span;

/// Trainer results the reducer fetches at once.
const REDUCE_FETCHES: usize = 16;

fn stats(start: Instant, compute_us: u64, moved: Moved) -> Option<StepStats> {
    Some(StepStats {
        compute_us,
        storage_read_bytes: moved.read,
        storage_written_bytes: moved.written,
        total_us: start.elapsed().as_micros() as u64,
        queue_us: 0,
        warnings: Vec::new(),
    })
}

/// [`stats`] with the time spent waiting for a compute slot and the fits' warnings.
fn stats_with(
    start: Instant,
    compute_us: u64,
    moved: Moved,
    queue_us: u64,
    warnings: Vec<String>,
) -> Option<StepStats> {
    stats(start, compute_us, moved).map(|s| StepStats {
        queue_us,
        warnings,
        ..s
    })
}

fn parse_dataset(bytes: &[u8]) -> Result<Dataset, StepError> {
    Dataset::from_bytes(bytes).map_err(|source| StepError::Dataset {
        what: "dataset",
        source,
    })
}

fn micros_since(t: Instant) -> u64 {
    t.elapsed().as_micros() as u64
}

/// The dataset as the metatrainer needs it: its labels and shape.
enum Labels {
    /// The whole wire form, sent inline.
    Whole(Bytes),
    /// Only `y.npy`, fetched by range after reading the features' header.
    Fetched { layout: WireLayout, y: Bytes },
}

/// What the metatrainer checks its inputs against.
struct DatasetShape {
    n_samples: usize,
    n_features: usize,
}

impl Labels {
    fn parse(&self) -> Result<(DatasetShape, Array1<f64>), StepError> {
        let dataset_err = |source| StepError::Dataset {
            what: "dataset",
            source,
        };
        match self {
            Labels::Whole(bytes) => {
                let ds = parse_dataset(bytes)?;
                let shape = DatasetShape {
                    n_samples: ds.n_samples(),
                    n_features: ds.n_features(),
                };
                Ok((shape, ds.y().clone()))
            }
            Labels::Fetched { layout, y } => {
                let shape = DatasetShape {
                    n_samples: layout.n_samples,
                    n_features: layout.n_features,
                };
                Ok((shape, layout.labels(y).map_err(dataset_err)?))
            }
        }
    }
}

/// The labels of the dataset at `key` without its features: two ranged
/// reads (the features' header, then `y.npy`) instead of the whole object,
/// which is about 10x smaller for the default dataset.
async fn fetch_labels(
    ctx: &Context,
    inline: &Bytes,
    key: &str,
    moved: &mut Moved,
    span: &Span,
) -> Result<Labels, StepError> {
    if !inline.is_empty() || key.is_empty() {
        let whole = ctx.fetch(inline, key, "dataset", moved, span).await?;
        return Ok(Labels::Whole(whole));
    }
    let dataset_err = |source| StepError::Dataset {
        what: "dataset",
        source,
    };
    let probe = WireLayout::PROBE_LEN as u64;
    let (head, size) = ctx
        .fetch_range(key, 0..probe, "dataset header", moved, span)
        .await?;
    let layout = WireLayout::from_prefix(&head).map_err(dataset_err)?;
    let start = layout.labels_offset as u64;
    if start >= size {
        return Err(StepError::bad(format!(
            "dataset {key:?}: the features take {start} bytes of its {size}; the labels after them are missing (truncated?)"
        )));
    }
    let y = if head.len() as u64 == size {
        // A small dataset: the probe already holds all of it.
        head.slice(layout.labels_offset..)
    } else {
        let end = start.saturating_add(layout.labels_max_len() as u64);
        let (y, _) = ctx
            .fetch_range(key, start..end, "labels", moved, span)
            .await?;
        if start + y.len() as u64 != size {
            return Err(StepError::bad(format!(
                "dataset {key:?}: {} unexpected bytes after the labels",
                size - start - y.len() as u64
            )));
        }
        y
    };
    Ok(Labels::Fetched { layout, y })
}

/// `Trainer.Train`: out-of-fold predictions and a full fit of one level-0 model.
pub async fn train(ctx: &Context, req: TrainRequest, span: &Span) -> Result<TrainReply, StepError> {
    let start = Instant::now();
    let mut moved = Moved::default();
    check_segment("trainer_id", &req.trainer_id)?;
    if req.model_config.is_empty() {
        return Err(StepError::bad(
            "model_config is empty: expected JSON {\"model\": NAME, \"params\": {...}}",
        ));
    }
    let spec = ModelSpec::from_json_bytes(&req.model_config)?;
    spec.check_level0()?;
    let name = spec.name();
    let scope = RunScope::new(&req.run_id, &[&req.dataset_key])?;
    let queued = Instant::now();
    let _admitted = ctx.admit().await?;
    let queue_us = micros_since(queued);
    let data = ctx
        .fetch(&req.dataset, &req.dataset_key, "dataset", &mut moved, span)
        .await?;
    let threads = ctx.threads_per_job();
    let fit_span = span.child(format!("fit {name}"), None);
    let (model_bytes, pred_bytes, oof_auc, compute_us, warnings) = ctx
        .compute(move |stop| {
            let t = Instant::now();
            let ds = parse_dataset(&data)?;
            let out = train_level0_until(&spec, ds.x().view(), ds.y().view(), threads, stop)?;
            let model = Bytes::from(serial::encode_model(&out.model)?);
            let preds = Bytes::from(npy::encode_f64_1d(&out.oof));
            let warnings: Vec<String> = out.warnings.iter().map(|w| w.to_string()).collect();
            Ok((model, preds, out.oof_auc, micros_since(t), warnings))
        })
        .await?;
    drop(fit_span);
    tracing::info!(trainer = %req.trainer_id, model = name, oof_auc, "trained");
    for w in &warnings {
        tracing::warn!(trainer = %req.trainer_id, "{w}");
    }
    let id = &req.trainer_id;
    let (model, preds) = tokio::try_join!(
        ctx.emit(scope.key(&format!("model_{id}")), model_bytes, span),
        ctx.emit(scope.key(&format!("pred_{id}")), pred_bytes, span),
    )?;
    moved.written += model.written + preds.written;
    Ok(TrainReply {
        model: model.inline,
        model_key: model.key,
        pred_key: preds.key,
        predictions: preds.inline,
        oof_auc,
        model_name: name.to_string(),
        stats: stats_with(start, compute_us, moved, queue_us, warnings),
    })
}

/// `Reducer.Reduce`: every trainer's model and predictions, stacked in request order.
pub async fn reduce(
    ctx: &Context,
    req: ReduceRequest,
    span: &Span,
) -> Result<ReduceReply, StepError> {
    let start = Instant::now();
    let tuples = req.model_pred_tuples;
    if tuples.is_empty() {
        return Err(StepError::bad(
            "no model/prediction pairs to reduce (zero trainers?)",
        ));
    }
    let read_keys: Vec<&str> = tuples
        .iter()
        .flat_map(|t| [t.model_key.as_str(), t.pred_key.as_str()])
        .collect();
    let scope = RunScope::new(&req.run_id, &read_keys)?;
    let _admitted = ctx.admit().await?;
    // Pairs arrive [`REDUCE_FETCHES`] at a time, in order, and a model equal
    // to one already held is dropped at once: trainers with the same
    // configuration send the same bytes (every fourth trainer's KNN model is
    // the 2.4 MiB training set), so memory grows with the distinct models,
    // not with the trainer count.
    let count = tuples.len();
    let mut arrivals = futures::stream::iter(
        tuples
            .into_iter()
            .enumerate()
            .map(|(i, t)| fetch_pair(ctx, i, t, span)),
    )
    .buffered(REDUCE_FETCHES);
    let mut distinct: Vec<Bytes> = Vec::new();
    let mut pairs: Vec<(usize, Array1<f64>)> = Vec::with_capacity(count);
    let mut moved = Moved::default();
    while let Some(arrived) = arrivals.next().await {
        let (model, preds, m) = arrived?;
        moved.read += m.read;
        let i = pairs.len();
        let index = match distinct.iter().position(|d| *d == model) {
            Some(j) => j,
            // Inline bytes are slices of the whole request's buffer: a copy
            // lets that buffer go once the pairs are read.
            None if !ctx.transfer.uses_store() => {
                distinct.push(Bytes::copy_from_slice(&model));
                distinct.len() - 1
            }
            None => {
                distinct.push(model);
                distinct.len() - 1
            }
        };
        let pred = npy::decode_f64_1d(&preds)
            .map_err(|e| StepError::bad(format!("predictions of pair {i}: {e}")))?;
        if let Some(row) = pred.iter().position(|p| !p.is_finite()) {
            return Err(StepError::bad(format!(
                "predictions of pair {i}: row {row} is {}; predictions must be finite",
                pred[row]
            )));
        }
        pairs.push((index, pred));
    }
    drop(arrivals);
    let stack_span = span.child("stack meta features", None);
    let (models_bytes, meta_bytes, compute_us) = ctx
        .compute(move |_| {
            let t = Instant::now();
            let mut decoded: Vec<Arc<FittedModel>> = Vec::with_capacity(distinct.len());
            for model in &distinct {
                let first = pairs
                    .iter()
                    .position(|(j, _)| *j == decoded.len())
                    .unwrap_or(0);
                decoded.push(Arc::new(serial::decode_model(model).map_err(|source| {
                    StepError::Decode {
                        what: format!("model of pair {first}"),
                        source,
                    }
                })?));
            }
            drop(distinct);
            let mut models: Vec<Arc<FittedModel>> = Vec::with_capacity(pairs.len());
            let mut preds = Vec::with_capacity(pairs.len());
            for (index, pred) in pairs {
                models.push(Arc::clone(&decoded[index]));
                preds.push(pred);
            }
            let meta = meta_features(&preds)?;
            let models = Bytes::from(serial::encode_models(&models)?);
            let meta = Bytes::from(npy::encode_f64_2d(&meta));
            Ok((models, meta, micros_since(t)))
        })
        .await?;
    drop(stack_span);
    let (models, meta) = tokio::try_join!(
        ctx.emit(scope.key("models"), models_bytes, span),
        ctx.emit(scope.key("meta_features"), meta_bytes, span),
    )?;
    moved.written += models.written + meta.written;
    Ok(ReduceReply {
        models: models.inline,
        models_key: models.key,
        meta_features: meta.inline,
        meta_features_key: meta.key,
        stats: stats(start, compute_us, moved),
    })
}

/// One trainer's model and predictions, inline or from the store.
async fn fetch_pair(
    ctx: &Context,
    i: usize,
    t: ModelPredTuple,
    span: &Span,
) -> Result<(Bytes, Bytes, Moved), StepError> {
    let mut moved = Moved::default();
    let model = ctx
        .fetch(
            &t.model,
            &t.model_key,
            &format!("model of pair {i}"),
            &mut moved,
            span,
        )
        .await?;
    let preds = ctx
        .fetch(
            &t.predictions,
            &t.pred_key,
            &format!("predictions of pair {i}"),
            &mut moved,
            span,
        )
        .await?;
    Ok((model, preds, moved))
}

/// `Metatrainer.Metatrain`: the level-1 model, its score, and the full two-layer model.
pub async fn metatrain(
    ctx: &Context,
    req: MetaTrainRequest,
    span: &Span,
) -> Result<MetaTrainReply, StepError> {
    let start = Instant::now();
    let mut moved = Moved::default();
    let spec = if req.model_config.is_empty() {
        default_meta()
    } else {
        ModelSpec::from_json_bytes(&req.model_config)?
    };
    spec.check_meta()?;
    let scope = RunScope::new(
        &req.run_id,
        &[&req.dataset_key, &req.models_key, &req.meta_features_key],
    )?;
    let queued = Instant::now();
    let _admitted = ctx.admit().await?;
    let queue_us = micros_since(queued);
    let (labels, models, meta) = {
        let mut m1 = Moved::default();
        let mut m2 = Moved::default();
        let r = tokio::try_join!(
            fetch_labels(ctx, &req.dataset, &req.dataset_key, &mut moved, span),
            ctx.fetch(&req.models, &req.models_key, "models", &mut m1, span),
            ctx.fetch(
                &req.meta_features,
                &req.meta_features_key,
                "meta_features",
                &mut m2,
                span
            ),
        )?;
        moved.read += m1.read + m2.read;
        r
    };
    let fit_span = span.child(format!("fit {}", spec.name()), None);
    let (full_bytes, pred_bytes, auc, swapped, compute_us, warnings) = ctx
        .compute(move |stop| {
            let t = Instant::now();
            let (shape, y) = labels.parse()?;
            let models = serial::decode_models(&models).map_err(|source| StepError::Decode {
                what: "models".into(),
                source,
            })?;
            let meta = npy::decode_f64_2d(&meta)
                .map_err(|e| StepError::bad(format!("meta_features: {e}")))?;
            if meta.dim() != (shape.n_samples, models.len()) {
                return Err(StepError::bad(format!(
                    "meta_features is {} x {}, but the dataset has {} rows and there are {} models",
                    meta.nrows(),
                    meta.ncols(),
                    shape.n_samples,
                    models.len()
                )));
            }
            if let Some(m) = models.iter().find(|m| m.n_features != shape.n_features) {
                return Err(StepError::bad(format!(
                    "model {} was fitted on {} features but the dataset has {}",
                    m.name(),
                    m.n_features,
                    shape.n_features
                )));
            }
            let out = train_level1_until(&spec, meta.view(), y.view(), stop)?;
            let full = FullModel::new(models, out.model.clone())?;
            let full = Bytes::from(serial::encode_full(&full)?);
            let preds = Bytes::from(npy::encode_f64_1d(&out.oof_proba));
            let warnings: Vec<String> = out.warnings.iter().map(|w| w.to_string()).collect();
            Ok((
                full,
                preds,
                out.auc,
                out.auc_as_reported_by_original,
                micros_since(t),
                warnings,
            ))
        })
        .await?;
    drop(fit_span);
    tracing::info!(auc, "meta model trained");
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let (full, preds) = tokio::try_join!(
        ctx.emit(scope.key("model_full"), full_bytes, span),
        ctx.emit(scope.key("meta_predictions"), pred_bytes, span),
    )?;
    moved.written += full.written + preds.written;
    Ok(MetaTrainReply {
        model_full: full.inline,
        model_full_key: full.key,
        meta_predictions: preds.inline,
        meta_predictions_key: preds.key,
        score: auc.to_string(),
        score_as_reported_by_original: swapped.map(|v| v.to_string()).unwrap_or_default(),
        stats: stats_with(start, compute_us, moved, queue_us, warnings),
    })
}
