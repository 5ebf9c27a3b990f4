//! `Reducer.Reduce`: gather every trainer's model and predictions into the
//! meta-feature matrix and the model list.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use ndarray::Array1;
use stacking_core::models::FittedModel;
use stacking_core::stack::meta_features;
use stacking_core::{npy, serial};

use super::{micros_since, stats};
use crate::context::{Context, Moved, RunScope};
use crate::error::StepError;
use crate::pb::stacking::{ModelPredTuple, ReduceReply, ReduceRequest};
use crate::trace::Span;

/// Trainer results the reducer fetches at once.
const REDUCE_FETCHES: usize = 16;

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
    let inline = tuples
        .iter()
        .any(|t| !t.model.is_empty() || !t.predictions.is_empty());
    let keyed = read_keys.iter().any(|k| !k.is_empty());
    ctx.check_transfer(&[("models and predictions", inline, keyed)])?;
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
            None if !ctx.transfer().uses_store() => {
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
    let (models, meta) = ctx
        .emit_pair(
            (scope.key("models"), models_bytes),
            (scope.key("meta_features"), meta_bytes),
            &mut moved,
            span,
        )
        .await?;
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
