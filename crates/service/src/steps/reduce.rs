//! `Reducer.Reduce`: gather every trainer's model and predictions into the
//! meta-feature matrix and the model list.

use std::collections::HashMap;
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

/// Payloads the reducer fetches at once: the models and predictions of 16
/// trainers in one round trip (16 took two).
const REDUCE_FETCHES: usize = 32;

/// The most pairs one Reduce takes: as many models as a model list holds.
pub const MAX_PAIRS: usize = stacking_core::serial::MAX_LIST_MODELS;

/// One payload to read: a stored key (read once, however many pairs name
/// it) or a pair's inline bytes; what it is used as, and the first pair
/// using it (to name it in errors).
struct Payload {
    inline: Bytes,
    key: String,
    first_pair: usize,
    as_model: bool,
    as_predictions: bool,
}

/// The distinct payloads of `tuples`, and for every pair the index of its
/// model's and its predictions' payload.
fn distinct_payloads(tuples: Vec<ModelPredTuple>) -> (Vec<Payload>, Vec<(usize, usize)>) {
    let mut payloads: Vec<Payload> = Vec::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    let mut slots = Vec::with_capacity(tuples.len());
    for (i, t) in tuples.into_iter().enumerate() {
        let mut slot = |inline: Bytes, key: String, as_model: bool| {
            let existing = (!key.is_empty())
                .then(|| by_key.get(&key).copied())
                .flatten();
            let index = existing.unwrap_or_else(|| {
                if !key.is_empty() {
                    by_key.insert(key.clone(), payloads.len());
                }
                payloads.push(Payload {
                    inline,
                    key,
                    first_pair: i,
                    as_model: false,
                    as_predictions: false,
                });
                payloads.len() - 1
            });
            let payload = &mut payloads[index];
            if as_model {
                payload.as_model = true;
            } else {
                payload.as_predictions = true;
            }
            index
        };
        let model = slot(t.model, t.model_key, true);
        let predictions = slot(t.predictions, t.pred_key, false);
        slots.push((model, predictions));
    }
    (payloads, slots)
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
    if tuples.len() > MAX_PAIRS {
        return Err(StepError::bad(format!(
            "{} model/prediction pairs, more than the {MAX_PAIRS} one Reduce takes",
            tuples.len()
        )));
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
    // Every stored key is read once, however many pairs name it (2,000
    // pairs naming one stored pair made 4,002 requests). Payloads arrive
    // [`REDUCE_FETCHES`] at a time, in order, and a model equal to one
    // already held is dropped at once: trainers with the same configuration
    // send the same bytes (every fourth trainer's KNN model is the 2.4 MiB
    // training set), so memory grows with the distinct models, not with the
    // trainer count.
    let (payloads, slots) = distinct_payloads(tuples);
    let mut arrivals = futures::stream::iter(payloads.into_iter().map(|p| async move {
        let what = if p.as_model {
            format!("model of pair {}", p.first_pair)
        } else {
            format!("predictions of pair {}", p.first_pair)
        };
        let mut moved = Moved::default();
        let bytes = ctx
            .fetch(&p.inline, &p.key, &what, &mut moved, span)
            .await?;
        Ok::<_, StepError>((p, bytes, moved))
    }))
    .buffered(REDUCE_FETCHES);
    let mut distinct: Vec<Bytes> = Vec::new();
    let mut model_of: Vec<usize> = Vec::new();
    let mut predictions_of: Vec<Option<Array1<f64>>> = Vec::new();
    let mut moved = Moved::default();
    while let Some(arrived) = arrivals.next().await {
        let (payload, bytes, m) = arrived?;
        moved.read += m.read;
        let i = payload.first_pair;
        let mut index = usize::MAX;
        if payload.as_model {
            index = match distinct.iter().position(|d| *d == bytes) {
                Some(j) => j,
                // Inline bytes are slices of the whole request's buffer: a
                // copy lets that buffer go once the pairs are read.
                None if !ctx.transfer().uses_store() => {
                    distinct.push(Bytes::copy_from_slice(&bytes));
                    distinct.len() - 1
                }
                None => {
                    distinct.push(bytes.clone());
                    distinct.len() - 1
                }
            };
        }
        let mut predictions = None;
        if payload.as_predictions {
            let pred = npy::decode_f64_1d(&bytes)
                .map_err(|e| StepError::bad(format!("predictions of pair {i}: {e}")))?;
            if let Some(row) = pred.iter().position(|p| !p.is_finite()) {
                return Err(StepError::bad(format!(
                    "predictions of pair {i}: row {row} is {}; predictions must be finite",
                    pred[row]
                )));
            }
            predictions = Some(pred);
        }
        model_of.push(index);
        predictions_of.push(predictions);
    }
    let mut pairs: Vec<(usize, Array1<f64>)> = Vec::with_capacity(slots.len());
    for (model, preds) in slots {
        let preds = predictions_of[preds].clone().unwrap_or_default();
        pairs.push((model_of[model], preds));
    }
    drop(predictions_of);
    let slot = ctx.compute_slot().await?;
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
    drop((stack_span, slot));
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
