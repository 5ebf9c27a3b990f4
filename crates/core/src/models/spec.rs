//! [`ModelSpec`]: which model, with its checked parameters, and the one
//! place that dispatches on the model kind. Parsing, defaults, bounds and the
//! JSON form of each model's parameters live beside the model.

use ndarray::{Array1, ArrayView1, ArrayView2, Axis};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::gram::{CrossFoldGram, RowGram};
use super::knn::KnnParams;
use super::lasso::LassoParams;
use super::linear_regression::LinearRegressionParams;
use super::linear_svr::LinearSvrParams;
use super::logistic::LogisticParams;
use super::random_forest::RandomForestParams;
use super::{check_fit_input, tree, FitError, FittedModel, FittedState};
use crate::cv::Fold;
use crate::params::{excerpt, short, ConfigError, ECHO_LIMIT};
use crate::stop::Stop;

/// The model names this core implements, as scikit-learn spells them.
pub const MODEL_NAMES: [&str; 6] = [
    LinearSvrParams::NAME,
    LassoParams::NAME,
    LinearRegressionParams::NAME,
    RandomForestParams::NAME,
    KnnParams::NAME,
    LogisticParams::NAME,
];

/// A validated model specification, ready to fit. Serialised as its
/// scikit-learn-style JSON form (`{"model": NAME, "params": {...}}`), and
/// validated again when deserialised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Value", into = "Value")]
pub enum ModelSpec {
    /// `LinearSVR`.
    LinearSvr(LinearSvrParams),
    /// `Lasso`.
    Lasso(LassoParams),
    /// `LinearRegression`.
    LinearRegression(LinearRegressionParams),
    /// `RandomForestRegressor`.
    RandomForestRegressor(RandomForestParams),
    /// `KNeighborsRegressor`.
    KNeighborsRegressor(KnnParams),
    /// `LogisticRegression` (the meta model).
    LogisticRegression(LogisticParams),
}

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
        Ok(match name {
            LinearSvrParams::NAME => Self::LinearSvr(LinearSvrParams::parse(params)?),
            LassoParams::NAME => Self::Lasso(LassoParams::parse(params)?),
            LinearRegressionParams::NAME => {
                Self::LinearRegression(LinearRegressionParams::parse(params)?)
            }
            RandomForestParams::NAME => {
                Self::RandomForestRegressor(RandomForestParams::parse(params)?)
            }
            KnnParams::NAME => Self::KNeighborsRegressor(KnnParams::parse(params)?),
            LogisticParams::NAME => Self::LogisticRegression(LogisticParams::parse(params)?),
            other => {
                return Err(ConfigError::UnknownModel {
                    name: excerpt(other, ECHO_LIMIT),
                    known: MODEL_NAMES.join(", "),
                })
            }
        })
    }

    /// The scikit-learn class name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::LinearSvr(_) => LinearSvrParams::NAME,
            Self::Lasso(_) => LassoParams::NAME,
            Self::LinearRegression(_) => LinearRegressionParams::NAME,
            Self::RandomForestRegressor(_) => RandomForestParams::NAME,
            Self::KNeighborsRegressor(_) => KnnParams::NAME,
            Self::LogisticRegression(_) => LogisticParams::NAME,
        }
    }

    /// Bytes a fit on `n` rows and `p` columns holds beyond its input, for
    /// a caller to refuse a fit its memory budget cannot hold before it
    /// starts. Only the meta model's solver grows faster than its input
    /// (its Newton system); every other fit holds a few copies of its rows.
    pub fn fit_memory_bytes(&self, n: usize, p: usize) -> u64 {
        match self {
            Self::LogisticRegression(params) => params.fit_memory_bytes(n, p),
            _ => (n as u64).saturating_mul(p as u64).saturating_mul(16),
        }
    }

    /// Classifiers are cross-validated with stratified folds and predict probabilities.
    pub fn is_classifier(&self) -> bool {
        matches!(self, Self::LogisticRegression(_))
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
        let params = match self {
            Self::LinearSvr(p) => p.to_json(),
            Self::Lasso(p) => p.to_json(),
            Self::LinearRegression(p) => p.to_json(),
            Self::RandomForestRegressor(p) => p.to_json(),
            Self::KNeighborsRegressor(p) => p.to_json(),
            Self::LogisticRegression(p) => p.to_json(),
        };
        json!({"model": self.name(), "params": params})
    }

    /// Precomputes what [`ModelSpec::fit_rows`] and
    /// [`ModelSpec::predict_fold`] can share between the `folds`, on up to
    /// `threads` threads (the same result for any count).
    pub fn prepare(&self, x: ArrayView2<f64>, folds: &[Fold], threads: usize) -> Prepared {
        match self {
            ModelSpec::RandomForestRegressor(_) => {
                Prepared::Sorted(tree::SortedColumns::with_threads(x, threads))
            }
            ModelSpec::LinearRegression(_) | ModelSpec::LinearSvr(_) => {
                RowGram::of_threads(x, threads).map_or(Prepared::Nothing, Prepared::RowGram)
            }
            ModelSpec::KNeighborsRegressor(_) => CrossFoldGram::of_threads(x, folds, threads)
                .map_or(Prepared::Nothing, Prepared::CrossFold),
            _ => Prepared::Nothing,
        }
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
        match (self, prepared) {
            (ModelSpec::RandomForestRegressor(p), Prepared::Sorted(data))
                if !rows.is_empty() && y.len() == x.nrows() =>
            {
                Ok(FittedModel {
                    spec: self.clone(),
                    n_features: x.ncols(),
                    state: FittedState::Forest(p.fit_rows(data, y, rows, stop)?),
                })
            }
            (ModelSpec::LinearRegression(p), Prepared::RowGram(gram))
                if !rows.is_empty() && y.len() == x.nrows() =>
            {
                Ok(FittedModel {
                    spec: self.clone(),
                    n_features: x.ncols(),
                    state: FittedState::Linear(p.fit_rows(gram, x, y, rows, stop)?),
                })
            }
            (ModelSpec::Lasso(p), _) if !rows.is_empty() && y.len() == x.nrows() => {
                check_fit_input(self.name(), x, y)?;
                stop.check()?;
                Ok(FittedModel {
                    spec: self.clone(),
                    n_features: x.ncols(),
                    state: FittedState::Linear(p.fit_rows(x, y, rows, stop)?),
                })
            }
            (ModelSpec::LinearSvr(p), Prepared::RowGram(gram))
                if !rows.is_empty() && y.len() == x.nrows() =>
            {
                Ok(FittedModel {
                    spec: self.clone(),
                    n_features: x.ncols(),
                    state: FittedState::Linear(p.fit_rows(gram, x, y, rows, stop)?),
                })
            }
            _ => self.fit_until(
                x.select(Axis(0), rows).view(),
                y.select(Axis(0), rows).view(),
                stop,
            ),
        }
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
        rows: (&[usize], &[usize]),
        stop: &Stop,
    ) -> Result<Option<Array1<f64>>, FitError> {
        let (train, test) = rows;
        match (self, prepared) {
            (ModelSpec::KNeighborsRegressor(p), Prepared::CrossFold(gram))
                if !train.is_empty() && y.len() == x.nrows() =>
            {
                check_fit_input(self.name(), x, y)?;
                Ok(Some(p.predict_fold(gram, x, y, train, test, stop)?))
            }
            _ => Ok(None),
        }
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
        check_fit_input(self.name(), x, y)?;
        stop.check()?;
        let state = match self {
            ModelSpec::LinearSvr(p) => FittedState::Linear(p.fit(x, y, stop)?),
            ModelSpec::Lasso(p) => FittedState::Linear(p.fit(x, y, stop)?),
            ModelSpec::LinearRegression(p) => FittedState::Linear(p.fit(x, y, stop)?),
            ModelSpec::RandomForestRegressor(p) => FittedState::Forest(p.fit(x, y, stop)?),
            ModelSpec::KNeighborsRegressor(p) => FittedState::Neighbours(p.fit(x, y)?),
            ModelSpec::LogisticRegression(p) => FittedState::Linear(p.fit(x, y, stop)?),
        };
        Ok(FittedModel {
            spec: self.clone(),
            n_features: x.ncols(),
            state,
        })
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
        let max_iter = match &self.spec {
            ModelSpec::LinearSvr(p) => p.max_iter(),
            ModelSpec::Lasso(p) => p.max_iter(),
            ModelSpec::LogisticRegression(p) => p.max_iter(),
            _ => return None,
        };
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
    /// The forest's sorted columns.
    Sorted(tree::SortedColumns),
    /// The Gram matrix of the rows, for LinearRegression and LinearSVR (more
    /// features than rows).
    RowGram(RowGram),
    /// The rows' products across folds, for KNeighborsRegressor (more
    /// features than rows).
    CrossFold(CrossFoldGram),
}
