//! The two steps of stacking, as pure functions: a level-0 model's
//! out-of-fold predictions plus its fit on all rows, and the level-1 (meta)
//! model on the stacked out-of-fold predictions. The trainer, the metatrainer
//! and the embedded run all call these.

use std::sync::Arc;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};
use thiserror::Error;

use crate::cv::{kfold, stratified_kfold, Fold, FoldError};
use crate::metrics::{roc_auc, MetricError};
use crate::models::{
    ConvergenceWarning, FitError, FittedModel, FoldsData, InvalidModel, ModelSpec, PredictError,
    RoleError,
};
use crate::parallel::run_jobs;
use crate::stop::Stop;

/// Folds used by `cross_val_predict(cv=5)`.
pub const N_FOLDS: usize = 5;

/// Why a level-0 or level-1 step failed.
#[derive(Debug, Error)]
pub enum StackError {
    /// The folds could not be made.
    #[error(transparent)]
    Fold(#[from] FoldError),
    /// A model could not be fitted.
    #[error(transparent)]
    Fit(#[from] FitError),
    /// A model could not predict.
    #[error(transparent)]
    Predict(#[from] PredictError),
    /// The score could not be computed.
    #[error(transparent)]
    Metric(#[from] MetricError),
    /// No level-0 predictions at all.
    #[error("no level-0 predictions to stack")]
    NoPredictions,
    /// A prediction vector of the wrong length.
    #[error("prediction vector {index} has {found} entries; expected {expected}")]
    PredictionLength {
        /// Which prediction vector.
        index: usize,
        /// Entries expected (rows).
        expected: usize,
        /// Entries found.
        found: usize,
    },
    /// Meta features and labels differ in rows.
    #[error("meta features have {rows} rows but there are {labels} labels")]
    MetaRows {
        /// Rows of the meta features.
        rows: usize,
        /// Labels.
        labels: usize,
    },
    #[error(
        "the full model has {models} level-0 models but its meta model takes {meta_inputs} inputs"
    )]
    /// The meta model's inputs do not match the level-0 models.
    Inconsistent {
        /// Level-0 models.
        models: usize,
        /// Inputs the meta model takes.
        meta_inputs: usize,
    },
    /// A model given a role it cannot play.
    #[error(transparent)]
    Role(#[from] RoleError),
}

/// scikit-learn's `cross_val_predict(model, x, y, cv=folds)`: each row is
/// predicted by the model fitted on the folds that do not contain it.
pub fn cross_val_predict(
    spec: &ModelSpec,
    x: ArrayView2<f64>,
    y: ArrayView1<f64>,
    folds: &[Fold],
) -> Result<Array1<f64>, StackError> {
    cross_val_predict_until(spec, x, y, folds, &Stop::never())
}

/// [`cross_val_predict`], ending early once `stop` is set.
pub fn cross_val_predict_until(
    spec: &ModelSpec,
    x: ArrayView2<f64>,
    y: ArrayView1<f64>,
    folds: &[Fold],
    stop: &Stop,
) -> Result<Array1<f64>, StackError> {
    cross_val_predict_warn(spec, x, y, folds, stop, &mut Vec::new())
}

/// [`cross_val_predict_until`], collecting the folds' convergence warnings.
fn cross_val_predict_warn(
    spec: &ModelSpec,
    x: ArrayView2<f64>,
    y: ArrayView1<f64>,
    folds: &[Fold],
    stop: &Stop,
    warnings: &mut Vec<ConvergenceWarning>,
) -> Result<Array1<f64>, StackError> {
    let mut oof = Array1::zeros(x.nrows());
    for (k, fold) in folds.iter().enumerate() {
        let model = spec.fit_until(
            x.select(Axis(0), &fold.train).view(),
            y.select(Axis(0), &fold.train).view(),
            stop,
        )?;
        warnings.extend(model.convergence_warning(&format!("fold {k}")));
        let pred = model.predict_until(x.select(Axis(0), &fold.test).view(), stop)?;
        for (&i, p) in fold.test.iter().zip(pred) {
            oof[i] = p;
        }
    }
    Ok(oof)
}

/// What a trainer produces.
#[derive(Debug, Clone)]
pub struct Level0Output {
    /// The model fitted on all rows.
    pub model: FittedModel,
    /// Out-of-fold predictions from KFold(5).
    pub oof: Array1<f64>,
    /// `roc_auc(y, oof)`.
    pub oof_auc: f64,
    /// Fits (folds, then the full fit) whose solver hit `max_iter`.
    pub warnings: Vec<ConvergenceWarning>,
}

/// Out-of-fold predictions with KFold(5), then a fit on all rows.
pub fn train_level0(
    spec: &ModelSpec,
    x: ArrayView2<f64>,
    y: ArrayView1<f64>,
) -> Result<Level0Output, StackError> {
    train_level0_threads(spec, x, y, 1)
}

/// [`train_level0`] with the five fold fits and the full fit spread over up
/// to `threads` threads. The result is identical for any thread count.
pub fn train_level0_threads(
    spec: &ModelSpec,
    x: ArrayView2<f64>,
    y: ArrayView1<f64>,
    threads: usize,
) -> Result<Level0Output, StackError> {
    train_level0_until(spec, x, y, threads, &Stop::never())
}

/// [`train_level0_threads`], ending early with a [`FitError::Stopped`] once
/// `stop` is set: every fold job, solver epoch, tree node and block of
/// neighbour queries checks it.
pub fn train_level0_until(
    spec: &ModelSpec,
    x: ArrayView2<f64>,
    y: ArrayView1<f64>,
    threads: usize,
    stop: &Stop,
) -> Result<Level0Output, StackError> {
    spec.check_level0()?;
    let folds = kfold(x.nrows(), N_FOLDS)?;
    let prepared = spec.prepare(
        &FoldsData {
            x: x.view(),
            y: y.view(),
            folds: &folds,
            threads,
        },
        stop,
    );
    let all_rows: Vec<usize> = (0..x.nrows()).collect();
    // Job k < N_FOLDS fits fold k and predicts its test rows; the last job is the full fit.
    let job = |k: usize| -> Result<FoldJob, StackError> {
        stop.check().map_err(FitError::from)?;
        match folds.get(k) {
            Some(fold) => {
                let rows = (fold.train.as_slice(), fold.test.as_slice());
                if let Some(predictions) = spec.predict_fold(&prepared, x, y, rows, stop)? {
                    return Ok(FoldJob::Oof(predictions, None));
                }
                let model = spec.fit_rows(&prepared, x, y, &fold.train, stop)?;
                Ok(FoldJob::Oof(
                    model.predict_until(x.select(Axis(0), &fold.test).view(), stop)?,
                    model.convergence_warning(&format!("fold {k}")),
                ))
            }
            None => Ok(FoldJob::Full(Box::new(
                spec.fit_rows(&prepared, x, y, &all_rows, stop)?,
            ))),
        }
    };
    let results = run_jobs(folds.len() + 1, threads, job);
    let mut oof = Array1::zeros(x.nrows());
    let mut model = None;
    let mut warnings = Vec::new();
    for (k, r) in results.into_iter().enumerate() {
        match (r?, folds.get(k)) {
            (FoldJob::Oof(pred, warning), Some(fold)) => {
                warnings.extend(warning);
                for (&i, p) in fold.test.iter().zip(pred) {
                    oof[i] = p;
                }
            }
            (FoldJob::Full(m), _) => model = Some(*m),
            (FoldJob::Oof(..), None) => {}
        }
    }
    let model = model.ok_or(StackError::NoPredictions)?;
    warnings.extend(model.convergence_warning("full"));
    let oof_auc = roc_auc(
        y.as_slice().unwrap_or(&y.to_vec()),
        oof.as_slice().unwrap_or(&oof.to_vec()),
    )?;
    Ok(Level0Output {
        model,
        oof,
        oof_auc,
        warnings,
    })
}

enum FoldJob {
    Oof(Array1<f64>, Option<ConvergenceWarning>),
    Full(Box<FittedModel>),
}

/// Stacks prediction vectors as columns (n_samples x n_models), in the given order.
pub fn meta_features(predictions: &[Array1<f64>]) -> Result<Array2<f64>, StackError> {
    let first = predictions.first().ok_or(StackError::NoPredictions)?;
    let n = first.len();
    if let Some((index, p)) = predictions.iter().enumerate().find(|(_, p)| p.len() != n) {
        return Err(StackError::PredictionLength {
            index,
            expected: n,
            found: p.len(),
        });
    }
    Ok(Array2::from_shape_fn((n, predictions.len()), |(i, j)| {
        predictions[j][i]
    }))
}

/// What the metatrainer produces.
#[derive(Debug, Clone)]
pub struct Level1Output {
    /// The meta model fitted on all rows.
    pub model: FittedModel,
    /// Out-of-fold probabilities of class 1 from StratifiedKFold(5).
    pub oof_proba: Array1<f64>,
    /// The ensemble score: `roc_auc(y_true = y, y_score = oof_proba)`.
    pub auc: f64,
    /// What the original benchmark logs: `roc_auc(hard predictions, y)`, arguments swapped.
    pub auc_as_reported_by_original: Option<f64>,
    /// Fits (folds, then the full fit) whose solver hit `max_iter`.
    pub warnings: Vec<ConvergenceWarning>,
}

impl Level1Output {
    /// Hard out-of-fold predictions (probability above one half).
    pub fn oof_pred(&self) -> Array1<f64> {
        self.oof_proba.mapv(|p| if p > 0.5 { 1.0 } else { 0.0 })
    }
}

/// Out-of-fold meta predictions with StratifiedKFold(5), the ensemble AUC, then a fit on all rows.
pub fn train_level1(
    spec: &ModelSpec,
    meta: ArrayView2<f64>,
    y: ArrayView1<f64>,
) -> Result<Level1Output, StackError> {
    train_level1_until(spec, meta, y, &Stop::never())
}

/// [`train_level1`], ending early once `stop` is set.
pub fn train_level1_until(
    spec: &ModelSpec,
    meta: ArrayView2<f64>,
    y: ArrayView1<f64>,
    stop: &Stop,
) -> Result<Level1Output, StackError> {
    spec.check_meta()?;
    if meta.nrows() != y.len() {
        return Err(StackError::MetaRows {
            rows: meta.nrows(),
            labels: y.len(),
        });
    }
    let y_vec = y.to_vec();
    let folds = stratified_kfold(&y_vec, N_FOLDS)?;
    let mut warnings = Vec::new();
    let oof_proba = cross_val_predict_warn(spec, meta, y, &folds, stop, &mut warnings)?;
    let model = spec.fit_until(meta, y, stop)?;
    warnings.extend(model.convergence_warning("full"));
    let proba = oof_proba.to_vec();
    let auc = roc_auc(&y_vec, &proba)?;
    let hard: Vec<f64> = proba
        .iter()
        .map(|&p| if p > 0.5 { 1.0 } else { 0.0 })
        .collect();
    // Undefined when every hard prediction is one class, as scikit-learn would raise.
    let auc_as_reported_by_original = roc_auc(&hard, &y_vec).ok();
    Ok(Level1Output {
        model,
        oof_proba,
        auc,
        auc_as_reported_by_original,
        warnings,
    })
}

/// The whole two-layer model: level-0 models, then the meta model on their outputs.
///
/// Level-0 models are shared: trainers with the same configuration fit the
/// same model, and a 16-trainer stack of the four default models holds each
/// one four times (the KNN model is 2.4 MiB of training rows).
#[derive(Debug, Clone, PartialEq)]
pub struct FullModel {
    /// The level-0 models, one per trainer (repeats shared).
    pub level0: Vec<Arc<FittedModel>>,
    /// The level-1 model.
    pub meta: FittedModel,
}

impl FullModel {
    /// The two layers, checked to fit together.
    pub fn new(level0: Vec<Arc<FittedModel>>, meta: FittedModel) -> Result<Self, StackError> {
        let m = Self { level0, meta };
        m.check()?;
        Ok(m)
    }

    fn check(&self) -> Result<(), StackError> {
        if self.level0.len() != self.meta.n_features {
            return Err(StackError::Inconsistent {
                models: self.level0.len(),
                meta_inputs: self.meta.n_features,
            });
        }
        self.meta.spec.check_meta()?;
        Ok(())
    }

    /// Level-0 predictions on `x`, stacked as the meta model's input.
    pub fn level0_features(&self, x: ArrayView2<f64>) -> Result<Array2<f64>, StackError> {
        let preds = self
            .level0
            .iter()
            .map(|m| m.predict(x))
            .collect::<Result<Vec<_>, _>>()?;
        meta_features(&preds)
    }

    /// Probability of class 1 for each row of `x`.
    pub fn predict_proba(&self, x: ArrayView2<f64>) -> Result<Array1<f64>, StackError> {
        let meta = self.level0_features(x)?;
        Ok(self.meta.predict(meta.view())?)
    }

    /// The stack's consistency; each level-0 model was checked on its own
    /// where it was decoded (once per distinct model).
    pub(crate) fn validate(&self) -> Result<(), InvalidModel> {
        self.check()?;
        let n_features = self.level0.first().map(|m| m.n_features);
        if self.level0.iter().any(|m| Some(m.n_features) != n_features) {
            return Err(InvalidModel::FeaturesDisagree);
        }
        self.meta.validate()
    }
}
