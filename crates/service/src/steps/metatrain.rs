//! `Metatrainer.Metatrain`: the level-1 model on the meta-features, its
//! score, and the full two-layer model. A stored dataset is read only as far
//! as its labels.

use std::time::Instant;

use bytes::Bytes;
use ndarray::Array1;
use stacking_core::config::default_meta;
use stacking_core::stack::train_level1_until;
use stacking_core::{npy, serial, FullModel, ModelSpec, WireLayout};

use super::{micros_since, parse_dataset, stats_with};
use crate::context::{Context, Moved, RunScope, ECHO_KEY};
use crate::error::StepError;
use crate::pb::stacking::{MetaTrainReply, MetaTrainRequest};
use crate::trace::Span;
use stacking_core::params::printable;

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

/// How much of a stored dataset's end is read beside its header: the
/// labels (`y.npy`) of up to about 8,000 rows.
const LABELS_SUFFIX: u64 = 64 << 10;

/// The labels of the dataset at `key` without its features: ranged reads
/// of the features' header and of the object's end, at once, instead of
/// the whole object (about 10x smaller for the default dataset).
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
    // The features' header (at the start) and the object's end, where the
    // labels are, in one round trip: the labels of up to about 8,000 rows
    // are in that end, and only a larger dataset needs a second read.
    let probe = WireLayout::PROBE_LEN as u64;
    let mut moved_tail = Moved::default();
    let ((head, size), (tail, _)) = tokio::try_join!(
        ctx.fetch_range(key, 0..probe, "dataset header", moved, span),
        ctx.fetch_suffix(key, LABELS_SUFFIX, "dataset end", &mut moved_tail, span),
    )?;
    moved.read += moved_tail.read;
    let layout = WireLayout::from_prefix(&head).map_err(dataset_err)?;
    let start = layout.labels_offset as u64;
    if start >= size {
        return Err(StepError::bad(format!(
            "dataset {:?}: the features take {start} bytes of its {size}; the labels after them are missing (truncated?)",
            printable(key, ECHO_KEY)
        )));
    }
    let labels_len = size - start;
    let y = if labels_len > layout.labels_max_len() as u64 {
        return Err(StepError::bad(format!(
            "dataset {:?}: {} unexpected bytes after the labels",
            printable(key, ECHO_KEY),
            labels_len - layout.labels_max_len() as u64
        )));
    } else if labels_len <= tail.len() as u64 {
        tail.slice(tail.len() - labels_len as usize..)
    } else {
        let (y, _) = ctx
            .fetch_range(key, start..size, "labels", moved, span)
            .await?;
        if start + y.len() as u64 != size {
            return Err(StepError::bad(format!(
                "dataset {:?} changed while it was read",
                printable(key, ECHO_KEY),
            )));
        }
        y
    };
    Ok(Labels::Fetched { layout, y })
}

/// Refuses, before any work, a meta model whose fit would hold more than
/// the function's memory budget: its Newton system grows with the square of
/// the meta features (one per trainer), which a small request can name by
/// the thousand.
fn check_fit_memory(ctx: &Context, spec: &ModelSpec, meta: &Bytes) -> Result<(), StepError> {
    let prefix = &meta[..meta.len().min(4096)];
    let Ok(extent) = npy::extent(prefix) else {
        // The decoder names what is wrong with it.
        return Ok(());
    };
    let (n, p) = match extent.shape[..] {
        [n, p] => (n, p),
        _ => return Ok(()),
    };
    let decoded = (n as u64).saturating_mul(p as u64).saturating_mul(8);
    let needed = decoded.saturating_add(spec.fit_memory_bytes(n, p));
    let budget = ctx.limits().memory_budget_bytes as u64;
    if needed > budget {
        return Err(StepError::OverBudget(format!(
            "fitting {} on {n} x {p} meta features would hold about {} MiB, over this function's MEMORY_BUDGET_MB ({} MiB)",
            spec.name(),
            needed >> 20,
            budget >> 20
        )));
    }
    Ok(())
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
    ctx.check_transfer(&[
        (
            "the dataset",
            !req.dataset.is_empty(),
            !req.dataset_key.is_empty(),
        ),
        (
            "the models",
            !req.models.is_empty(),
            !req.models_key.is_empty(),
        ),
        (
            "the meta features",
            !req.meta_features.is_empty(),
            !req.meta_features_key.is_empty(),
        ),
    ])?;
    let scope = RunScope::new(
        &req.run_id,
        &[&req.dataset_key, &req.models_key, &req.meta_features_key],
    )?;
    let queued = Instant::now();
    let _admitted = ctx.admit().await?;
    let mut queue_us = micros_since(queued);
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
    check_fit_memory(ctx, &spec, &meta)?;
    let queued = Instant::now();
    let slot = ctx.compute_slot().await?;
    queue_us += micros_since(queued);
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
    drop((fit_span, slot));
    tracing::info!(auc, "meta model trained");
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let (full, preds) = ctx
        .emit_pair(
            (scope.key("model_full"), full_bytes),
            (scope.key("meta_predictions"), pred_bytes),
            &mut moved,
            span,
        )
        .await?;
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
