//! `Trainer.Train`: fetch the dataset, fit one level-0 model with
//! out-of-fold predictions, hand model and predictions on.

use std::time::Instant;

use bytes::Bytes;
use stacking_core::stack::train_level0_until;
use stacking_core::{npy, serial, ModelSpec};

use super::{micros_since, parse_dataset, stats_with};
use crate::context::{check_segment, Context, Moved, RunScope};
use crate::error::StepError;
use crate::pb::stacking::{TrainReply, TrainRequest};
use crate::trace::Span;

/// `Trainer.Train`: out-of-fold predictions and a full fit of one level-0 model.
pub async fn train(
    ctx: &Context,
    mut req: TrainRequest,
    span: &Span,
) -> Result<TrainReply, StepError> {
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
    ctx.check_transfer(&[(
        "the dataset",
        !req.dataset.is_empty(),
        !req.dataset_key.is_empty(),
    )])?;
    let scope = RunScope::new(&req.run_id, &[&req.dataset_key])?;
    let queued = Instant::now();
    let _admitted = ctx.admit().await?;
    let mut queue_us = micros_since(queued);
    // Taken out of the request, so that the dataset's bytes go as soon as
    // they are parsed (an inline dataset would otherwise live as long as
    // the request): under concurrent calls, the peak holds one copy less per
    // fit.
    let inline = std::mem::take(&mut req.dataset);
    let data = ctx
        .fetch(&inline, &req.dataset_key, "dataset", &mut moved, span)
        .await?;
    drop(inline);
    let threads = ctx.threads_per_job();
    let queued = Instant::now();
    let slot = ctx.compute_slot().await?;
    queue_us += micros_since(queued);
    let fit_span = span.child(format!("fit {name}"), None);
    let (model_bytes, pred_bytes, oof_auc, compute_us, warnings) = ctx
        .compute(move |stop| {
            let t = Instant::now();
            let ds = parse_dataset(&data)?;
            drop(data);
            let out = train_level0_until(&spec, ds.x().view(), ds.y().view(), threads, stop)?;
            // The matrix goes before the model is encoded (a KNN model is a
            // copy of it, and its encoding another).
            drop(ds);
            let model = Bytes::from(serial::encode_model(&out.model)?);
            let preds = Bytes::from(npy::encode_f64_1d(&out.oof));
            let warnings: Vec<String> = out.warnings.iter().map(|w| w.to_string()).collect();
            Ok((model, preds, out.oof_auc, micros_since(t), warnings))
        })
        .await?;
    drop((fit_span, slot));
    tracing::info!(trainer = %req.trainer_id, model = name, oof_auc, "trained");
    for w in &warnings {
        tracing::warn!(trainer = %req.trainer_id, "{w}");
    }
    let id = &req.trainer_id;
    let (model, preds) = ctx
        .emit_pair(
            (scope.key(&format!("model_{id}")), model_bytes),
            (scope.key(&format!("pred_{id}")), pred_bytes),
            &mut moved,
            span,
        )
        .await?;
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
