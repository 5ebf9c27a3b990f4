//! What [`ModelSpec`] (made by the registry, in `models/mod.rs`) does with any
//! model: the `{"model", "params"}` envelope, the role guards, fitting on
//! all rows or a fold's, and the convergence warning. Each model's own
//! parameters, fit and state checks live beside it, behind [`super::Model`].

use ndarray::{Array1, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::gram::{CrossFoldGram, RowGram};
use super::model::{FoldsData, Role, Rows};
use super::{check_fit_input, FitError, FittedModel, FittedState};
use super::{ModelSpec, MODEL_NAMES};
use crate::params::{excerpt, short, ConfigError, ECHO_LIMIT};
use crate::stop::Stop;

impl ModelSpec {
    /// Parses and validates JSON bytes.
    pub fn from_json_bytes(bytes: &[u8]) -> Result<Self, ConfigError> {
        let value = crate::params::parse_json(bytes)?;
        Self::from_value(&value)
    }

    /// Validates an already-parsed JSON value.
    pub fn from_value(value: &Value) -> Result<Self, ConfigError> {
        let obj = value
            .as_object()
            .ok_or_else(|| ConfigError::NotAnObject(short(value)))?;
        if let Some(key) = obj.keys().find(|k| *k != "model" && *k != "params") {
            return Err(ConfigError::UnknownKey {
                key: excerpt(key, ECHO_LIMIT),
            });
        }
        let name = match obj.get("model") {
            Some(Value::String(s)) => s.as_str(),
            Some(other) => {
                return Err(ConfigError::WrongType {
                    model: "config",
                    param: "model",
                    expected: "a string",
                    found: short(other),
                })
            }
            None => return Err(ConfigError::MissingModel),
        };
        let empty = Map::new();
        let params = match obj.get("params") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(m)) => m,
            Some(other) => {
                return Err(ConfigError::WrongType {
                    model: "config",
                    param: "params",
                    expected: "an object",
                    found: short(other),
                })
            }
        };
        Self::parse_named(name, params).unwrap_or_else(|| {
            Err(ConfigError::UnknownModel {
                name: excerpt(name, ECHO_LIMIT),
                known: MODEL_NAMES.join(", "),
            })
        })
    }

    /// The scikit-learn class name.
    pub fn name(&self) -> &'static str {
        self.model().name()
    }

    /// Classifiers are cross-validated with stratified folds and predict probabilities.
    pub fn is_classifier(&self) -> bool {
        self.model().role() == Role::Classifier
    }

    /// The role guard for level 0: trainers fit regressors. The one place
    /// this is decided; the stack configuration, the trainer step and the
    /// level-0 fit all call it.
    pub fn check_level0(&self) -> Result<(), RoleError> {
        if self.is_classifier() {
            return Err(RoleError::Level0NotRegressor(self.name()));
        }
        Ok(())
    }

    /// The role guard for level 1: the meta model is a classifier.
    pub fn check_meta(&self) -> Result<(), RoleError> {
        if !self.is_classifier() {
            return Err(RoleError::MetaNotClassifier(self.name()));
        }
        Ok(())
    }

    /// The spec in the JSON form it is parsed from, every default filled in,
    /// with scikit-learn's parameter names and values.
    pub fn to_json(&self) -> Value {
        json!({"model": self.name(), "params": self.model().params_json()})
    }

    /// Bytes a fit on `n` rows and `p` columns holds beyond its input, for
    /// a caller to refuse a fit its memory budget cannot hold before it
    /// starts. Only the meta model's solver grows faster than its input
    /// (its Newton system); every other fit holds a few copies of its rows.
    pub fn fit_memory_bytes(&self, n: usize, p: usize) -> u64 {
        self.model().memory_of_fit(n, p)
    }

    /// Bytes of the fitted model on `n` rows and `p` columns, at least (a
    /// KNN model holds its training rows, a linear one its coefficients).
    pub fn fitted_bytes(&self, n: usize, p: usize) -> u64 {
        self.model().size_of_fitted(n, p)
    }

    /// Precomputes what [`ModelSpec::fit_rows`] and
    /// [`ModelSpec::predict_fold`] can share between the folds of `data`
    /// (the same result for any thread count); stops short once `stop` is
    /// set.
    pub fn prepare(&self, data: &FoldsData<'_>, stop: &Stop) -> Prepared {
        self.model().prepare_folds(data, stop)
    }

    /// Fits on the rows `rows` of `x` and `y`; the same model as fitting on
    /// `x.select(rows)`, `y.select(rows)`, faster where `prepared` helps.
    pub fn fit_rows(
        &self,
        prepared: &Prepared,
        x: ArrayView2<f64>,
        y: ArrayView1<f64>,
        rows: &[usize],
        stop: &Stop,
    ) -> Result<FittedModel, FitError> {
        check_fit_input(self.name(), x, y)?;
        if rows.is_empty() {
            return Err(FitError::Empty {
                model: self.name(),
                rows: 0,
                cols: x.ncols(),
            });
        }
        stop.check()?;
        // Views borrowed again: a view's lifetime does not shorten by itself.
        let data = Rows {
            x: x.view(),
            y: y.view(),
            rows,
            prepared,
        };
        Ok(FittedModel {
            spec: self.clone(),
            n_features: x.ncols(),
            state: self.model().fit_state(&data, stop)?,
        })
    }

    /// Predictions for the rows `test` of a model fitted on the rows
    /// `train` (one of the folds `prepared` was made for), read straight off
    /// `prepared` where the model allows it without fitting
    /// (KNeighborsRegressor with the cross-fold products of the rows); `None`
    /// where it must be fitted with [`ModelSpec::fit_rows`] first.
    pub fn predict_fold(
        &self,
        prepared: &Prepared,
        x: ArrayView2<f64>,
        y: ArrayView1<f64>,
        (train, test): (&[usize], &[usize]),
        stop: &Stop,
    ) -> Result<Option<Array1<f64>>, FitError> {
        if train.is_empty() || y.len() != x.nrows() {
            return Ok(None);
        }
        check_fit_input(self.name(), x, y)?;
        let data = Rows {
            x: x.view(),
            y: y.view(),
            rows: train,
            prepared,
        };
        self.model().predict_prepared_fold(&data, test, stop)
    }

    /// Fits the model on `x` and 0/1 (or real-valued) targets `y`.
    pub fn fit(&self, x: ArrayView2<f64>, y: ArrayView1<f64>) -> Result<FittedModel, FitError> {
        self.fit_until(x, y, &Stop::never())
    }

    /// [`ModelSpec::fit`], ending early with [`FitError::Stopped`] once `stop` is set.
    pub fn fit_until(
        &self,
        x: ArrayView2<f64>,
        y: ArrayView1<f64>,
        stop: &Stop,
    ) -> Result<FittedModel, FitError> {
        let all: Vec<usize> = (0..x.nrows()).collect();
        self.fit_rows(&Prepared::Nothing, x, y, &all, stop)
    }
}

/// A model asked to play a role it cannot: level-0 models are regressors,
/// the meta model is a classifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    /// A classifier given to a trainer.
    #[error("level-0 models must be regressors, got {0}")]
    Level0NotRegressor(&'static str),
    /// A regressor given as the meta model.
    #[error("the level-1 model must be a classifier (LogisticRegression), got {0}")]
    MetaNotClassifier(&'static str),
}

/// A solver that used its whole iteration budget: scikit-learn's
/// `ConvergenceWarning`. The fit is still returned, as scikit-learn does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvergenceWarning {
    /// The model's name.
    pub model: String,
    /// Which fit: "fold 3" or "full".
    pub fit: String,
    /// Iterations the solver ran.
    pub n_iter: usize,
    /// Its iteration cap.
    pub max_iter: usize,
}

impl std::fmt::Display for ConvergenceWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ConvergenceWarning: {} ({} fit) stopped at max_iter={} without converging; raise max_iter or tol",
            self.model, self.fit, self.max_iter
        )
    }
}

impl FittedModel {
    /// `Some` when the solver stopped at its iteration cap. `fit` names the
    /// fit in the warning ("fold 2", "full").
    pub fn convergence_warning(&self, fit: &str) -> Option<ConvergenceWarning> {
        let max_iter = self.spec.model().iteration_cap()?;
        let FittedState::Linear(state) = &self.state else {
            return None;
        };
        (state.n_iter >= max_iter).then(|| ConvergenceWarning {
            model: self.name().to_string(),
            fit: fit.to_string(),
            n_iter: state.n_iter,
            max_iter,
        })
    }
}

impl From<ModelSpec> for Value {
    fn from(spec: ModelSpec) -> Self {
        spec.to_json()
    }
}

impl TryFrom<Value> for ModelSpec {
    type Error = ConfigError;

    fn try_from(value: Value) -> Result<Self, Self::Error> {
        Self::from_value(&value)
    }
}

/// Work a model can do once on the whole matrix and reuse for every fold.
pub enum Prepared {
    /// Nothing to share.
    Nothing,
    /// The forest's sorted columns, and shallow trees grown for every fit.
    Forest(super::random_forest::PreparedForest),
    /// The Gram matrix of the rows, for LinearRegression and LinearSVR (more
    /// features than rows).
    RowGram(RowGram),
    /// The rows' products across folds, for KNeighborsRegressor (more
    /// features than rows).
    CrossFold(CrossFoldGram),
    /// X column by column, for coordinate descent (Lasso, ElasticNet).
    ColumnMajor(super::elastic_net::ColumnMajor),
}
