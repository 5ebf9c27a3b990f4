//! The models, each in its own module implementing [`Model`], written on
//! `ndarray`, and listed once in the registry below: `ModelSpec` (which
//! model, with its checked parameters), `MODEL_NAMES` and every dispatch
//! follow from that list.
//!
//! Why hand-written rather than linfa or smartcore: on the fixture data those
//! crates fit different problems (linfa-svm leaves the bias unregularised,
//! linfa-elasticnet does not centre X, neither gives the minimum-norm least
//! squares for p > n, smartcore's SVR panics for p > n, there is no linfa
//! regression forest, linfa-logistic returns the majority-class probability).
//! Ports of scikit-learn's algorithms match its out-of-fold predictions on
//! the fixture data exactly (KNN, forest: same RNG streams) or within the
//! parity tests' bounds (`tests/it/sklearn_parity.rs`), and run faster than
//! scikit-learn on one thread (`cargo bench -p stacking-core` prints the
//! ratios; docs/benchmarks.md keeps the figures).

pub mod gram;
pub mod invalid;
mod linalg;
mod model;
#[macro_use]
mod registry;
pub mod spec;
pub(crate) mod tree;

// The models: one line each, its variant of `ModelSpec`, its module and its
// parameters type (which implements `Model`). Adding a model is its module
// and its line here (docs/contributing.md).
registry! {
    /// `LinearSVR`.
    LinearSvr(linear_svr::LinearSvrParams),
    /// `Lasso`.
    Lasso(lasso::LassoParams),
    /// `LinearRegression`.
    LinearRegression(linear_regression::LinearRegressionParams),
    /// `RandomForestRegressor`.
    RandomForestRegressor(random_forest::RandomForestParams),
    /// `KNeighborsRegressor`.
    KNeighborsRegressor(knn::KnnParams),
    /// `LogisticRegression` (the meta model).
    LogisticRegression(logistic::LogisticParams),
    /// `Ridge`.
    Ridge(ridge::RidgeParams),
    /// `ElasticNet`.
    ElasticNet(elastic_net::ElasticNetParams),
    /// `DecisionTreeRegressor`.
    DecisionTreeRegressor(decision_tree::DecisionTreeParams),
}

use ndarray::{Array1, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use invalid::InvalidModel;
pub use model::{parse, DynModel, Fitted, FoldsData, GramSolver, Model, Prediction, Role, Rows};
pub use spec::{ConvergenceWarning, Prepared, RoleError};

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
        self.spec.model().check_fitted(&self.state, self.n_features)
    }
}

impl FittedState {
    /// The linear model of `model` on `n_features` features, or why this
    /// state is not one.
    pub fn linear(
        &self,
        model: &'static str,
        n_features: usize,
    ) -> Result<&LinearModel, InvalidModel> {
        let FittedState::Linear(m) = self else {
            return Err(InvalidModel::WrongState { model });
        };
        if m.coef.len() != n_features {
            return Err(InvalidModel::Coefficients {
                model,
                coefs: m.coef.len(),
                features: n_features,
            });
        }
        Ok(m)
    }

    /// The `trees` trees of `model` on `n_features` features, or why this
    /// state is not them.
    pub fn forest(
        &self,
        model: &'static str,
        n_features: usize,
        trees: usize,
    ) -> Result<&random_forest::Forest, InvalidModel> {
        let FittedState::Forest(f) = self else {
            return Err(InvalidModel::WrongState { model });
        };
        if f.trees.len() != trees {
            return Err(InvalidModel::TreeCount {
                model,
                trees: f.trees.len(),
                expected: trees,
            });
        }
        f.validate(n_features)?;
        Ok(f)
    }

    /// The training rows of `model` on `n_features` features, or why this
    /// state is not them.
    pub fn neighbours(
        &self,
        model: &'static str,
        n_features: usize,
    ) -> Result<&knn::Neighbours, InvalidModel> {
        let FittedState::Neighbours(n) = self else {
            return Err(InvalidModel::WrongState { model });
        };
        n.validate(n_features)?;
        Ok(n)
    }
}
