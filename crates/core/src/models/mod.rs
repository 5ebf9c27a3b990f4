//! The six models, each in its own module, written on `ndarray`.
//!
//! Why hand-written rather than linfa or smartcore: on the fixture data those
//! crates fit different problems (linfa-svm leaves the bias unregularised,
//! linfa-elasticnet does not centre X, neither gives the minimum-norm least
//! squares for p > n, smartcore's SVR panics for p > n, there is no linfa
//! regression forest, linfa-logistic returns the majority-class probability).
//! Ports of scikit-learn's algorithms match its out-of-fold predictions on
//! the fixture data exactly (KNN, forest: same RNG streams) or within the
//! parity tests' bounds (`tests/sklearn_parity.rs`), and run faster than
//! scikit-learn on one thread (`cargo bench -p stacking-core` prints the
//! ratios; the README keeps the figures).

pub mod gram;
pub mod invalid;
pub mod knn;
pub mod lasso;
mod linalg;
pub mod linear_regression;
pub mod linear_svr;
pub mod logistic;
pub mod random_forest;
pub mod spec;
pub(crate) mod tree;

use ndarray::{Array1, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use invalid::InvalidModel;
pub use spec::{ConvergenceWarning, ModelSpec, Prepared, RoleError, MODEL_NAMES};

use crate::stop::{Stop, StopReason};

/// Why a model could not be fitted.
#[derive(Debug, Error, PartialEq)]
pub enum FitError {
    /// X or y is empty.
    #[error("{model}: cannot fit on {rows} rows and {cols} features")]
    Empty {
        /// The model's name.
        model: &'static str,
        /// Rows of X.
        rows: usize,
        /// Columns of X.
        cols: usize,
    },
    /// X and y differ in rows.
    #[error("{model}: X has {rows} rows but y has {labels}")]
    LengthMismatch {
        /// The model's name.
        model: &'static str,
        /// Rows of X.
        rows: usize,
        /// Entries of y.
        labels: usize,
    },
    /// KNN asked for more neighbours than it has training rows.
    #[error("KNeighborsRegressor: n_neighbors = {k} exceeds the {n} training rows")]
    TooFewNeighbours {
        /// `n_neighbors`.
        k: usize,
        /// Training rows.
        n: usize,
    },
    /// LogisticRegression given one class only.
    #[error("LogisticRegression needs both classes in the training rows")]
    OneClass,
    /// A solver met a value it cannot continue from (NaN, a singular system).
    #[error("{model}: numerical failure: {reason}")]
    Numerical {
        /// The model's name.
        model: &'static str,
        /// What went wrong.
        reason: &'static str,
    },
    /// The fit would need more memory than the model allows.
    #[error("{model} is too large: {what}")]
    TooLarge {
        /// The model's name.
        model: &'static str,
        /// What would be too large.
        what: &'static str,
    },
    /// The fit was stopped (cancelled, out of budget, shutting down).
    #[error("fit stopped: {0}")]
    Stopped(#[from] StopReason),
}

/// Why a fitted model could not predict.
#[derive(Debug, Error, PartialEq)]
pub enum PredictError {
    /// The prediction was stopped (cancelled, out of budget, shutting down).
    #[error("prediction stopped: {0}")]
    Stopped(#[from] StopReason),
    /// X has a different number of columns than the model was fitted on.
    #[error("{model} was fitted on {expected} features but X has {found}")]
    FeatureMismatch {
        /// The model's name.
        model: &'static str,
        /// Features the model was fitted on.
        expected: usize,
        /// Columns of X.
        found: usize,
    },
}

/// A linear model `y = X·coef + intercept` (LinearSVR, Lasso, LinearRegression,
/// and the decision function of LogisticRegression).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearModel {
    /// One weight per feature.
    #[serde(deserialize_with = "crate::serial::budget::vec")]
    pub coef: Vec<f64>,
    /// The constant term.
    pub intercept: f64,
    /// Solver iterations (epochs for coordinate descent, Newton steps for logistic).
    pub n_iter: usize,
}

impl LinearModel {
    /// `x · coef + intercept` for each row of `x`.
    pub fn decision(
        &self,
        model: &'static str,
        x: ArrayView2<f64>,
    ) -> Result<Array1<f64>, PredictError> {
        check_features(model, self.coef.len(), x)?;
        let coef = ArrayView1::from(&self.coef[..]);
        Ok(x.dot(&coef) + self.intercept)
    }
}

/// A fitted model of any kind, with the parameters it was fitted with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedModel {
    /// The model and the parameters it was fitted with.
    pub spec: ModelSpec,
    /// Features it was fitted on.
    pub n_features: usize,
    /// What it learned.
    pub state: FittedState,
}

/// The learned state, per kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum FittedState {
    /// Coefficients and intercept (LinearSVR, Lasso, LinearRegression, LogisticRegression).
    Linear(LinearModel),
    /// The trees of a random forest.
    Forest(random_forest::Forest),
    /// The training rows of a KNN model.
    Neighbours(knn::Neighbours),
}

pub(crate) fn check_fit_input(
    model: &'static str,
    x: ArrayView2<f64>,
    y: ArrayView1<f64>,
) -> Result<(), FitError> {
    let (rows, cols) = x.dim();
    if rows == 0 || cols == 0 {
        return Err(FitError::Empty { model, rows, cols });
    }
    if y.len() != rows {
        return Err(FitError::LengthMismatch {
            model,
            rows,
            labels: y.len(),
        });
    }
    Ok(())
}

pub(crate) fn check_features(
    model: &'static str,
    expected: usize,
    x: ArrayView2<f64>,
) -> Result<(), PredictError> {
    if x.ncols() != expected {
        return Err(PredictError::FeatureMismatch {
            model,
            expected,
            found: x.ncols(),
        });
    }
    Ok(())
}

impl FittedModel {
    /// The scikit-learn class name.
    pub fn name(&self) -> &'static str {
        self.spec.name()
    }

    /// Regressors: the prediction. Classifiers: the probability of class 1.
    pub fn predict(&self, x: ArrayView2<f64>) -> Result<Array1<f64>, PredictError> {
        self.predict_until(x, &Stop::never())
    }

    /// [`FittedModel::predict`], ending early once `stop` is set.
    pub fn predict_until(
        &self,
        x: ArrayView2<f64>,
        stop: &Stop,
    ) -> Result<Array1<f64>, PredictError> {
        check_features(self.name(), self.n_features, x)?;
        match &self.state {
            FittedState::Linear(m) => {
                let z = m.decision(self.name(), x)?;
                Ok(if self.spec.is_classifier() {
                    z.mapv(logistic::sigmoid)
                } else {
                    z
                })
            }
            FittedState::Forest(f) => Ok(f.predict(x)),
            FittedState::Neighbours(n) => Ok(n.predict(x, stop)?),
        }
    }

    /// Checks the internal consistency of a decoded model, so that a crafted
    /// model can never index out of bounds or loop while predicting.
    pub fn validate(&self) -> Result<(), InvalidModel> {
        let kind_fits = matches!(
            (&self.spec, &self.state),
            (ModelSpec::RandomForestRegressor(_), FittedState::Forest(_))
                | (
                    ModelSpec::KNeighborsRegressor(_),
                    FittedState::Neighbours(_)
                )
                | (
                    ModelSpec::LinearSvr(_)
                        | ModelSpec::Lasso(_)
                        | ModelSpec::LinearRegression(_)
                        | ModelSpec::LogisticRegression(_),
                    FittedState::Linear(_)
                )
        );
        if !kind_fits {
            return Err(InvalidModel::WrongState { model: self.name() });
        }
        match &self.state {
            FittedState::Linear(m) => {
                if m.coef.len() != self.n_features {
                    return Err(InvalidModel::Coefficients {
                        model: self.name(),
                        coefs: m.coef.len(),
                        features: self.n_features,
                    });
                }
                Ok(())
            }
            FittedState::Forest(f) => {
                let expected = match &self.spec {
                    ModelSpec::RandomForestRegressor(p) => p.n_estimators(),
                    _ => f.trees.len(),
                };
                if f.trees.len() != expected {
                    return Err(InvalidModel::TreeCount {
                        trees: f.trees.len(),
                        n_estimators: expected,
                    });
                }
                f.validate(self.n_features)
            }
            FittedState::Neighbours(n) => n.validate(self.n_features),
        }
    }
}
