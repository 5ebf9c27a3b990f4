//! Model configuration: JSON `{"model": NAME, "params": {...}}` with
//! scikit-learn's class names, parameter names and defaults, validated into
//! checked parameter structs before anything is fitted.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::models::{
    knn::{KnnParams, KnnWeights},
    lasso::LassoParams,
    linear_regression::LinearRegressionParams,
    linear_svr::{LinearSvrParams, SvrLoss},
    logistic::LogisticParams,
    random_forest::{MaxFeatures, RandomForestParams},
};

/// The model names this core implements, as scikit-learn spells them.
pub const MODEL_NAMES: [&str; 6] = [
    "LinearSVR",
    "Lasso",
    "LinearRegression",
    "RandomForestRegressor",
    "KNeighborsRegressor",
    "LogisticRegression",
];

/// Why a configuration was refused. Every variant names the offending item.
#[derive(Debug, Error, PartialEq)]
pub enum ConfigError {
    #[error("model config is not valid JSON: {0}")]
    Json(String),
    #[error("model config must be a JSON object like {{\"model\": \"Lasso\", \"params\": {{...}}}}, got {0}")]
    NotAnObject(String),
    #[error("model config has no \"model\" name")]
    MissingModel,
    #[error("unknown model {name:?}; known models: {known}")]
    UnknownModel { name: String, known: String },
    #[error("unknown key {key:?} in model config; allowed keys: \"model\", \"params\"")]
    UnknownKey { key: String },
    #[error("{model}: unknown parameter {param:?}; known parameters: {known}")]
    UnknownParam {
        model: &'static str,
        param: String,
        known: String,
    },
    #[error("{model}: parameter {param:?} must be {expected}, got {found}")]
    WrongType {
        model: &'static str,
        param: &'static str,
        expected: &'static str,
        found: String,
    },
    #[error("{model}: parameter {param:?} = {value} is out of range: {expected}")]
    OutOfRange {
        model: &'static str,
        param: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("stack config: {0}")]
    Stack(String),
}

/// A validated model specification, ready to fit. Serialised as its
/// scikit-learn-style JSON form (`{"model": NAME, "params": {...}}`), and
/// validated again when deserialised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Value", into = "Value")]
pub enum ModelSpec {
    LinearSvr(LinearSvrParams),
    Lasso(LassoParams),
    LinearRegression(LinearRegressionParams),
    RandomForestRegressor(RandomForestParams),
    KNeighborsRegressor(KnnParams),
    LogisticRegression(LogisticParams),
}

impl ModelSpec {
    /// Parses and validates JSON bytes.
    pub fn from_json_bytes(bytes: &[u8]) -> Result<Self, ConfigError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| ConfigError::Json(e.to_string()))?;
        Self::from_value(&value)
    }

    /// Validates an already-parsed JSON value.
    pub fn from_value(value: &Value) -> Result<Self, ConfigError> {
        let obj = value
            .as_object()
            .ok_or_else(|| ConfigError::NotAnObject(short(value)))?;
        if let Some(key) = obj.keys().find(|k| *k != "model" && *k != "params") {
            return Err(ConfigError::UnknownKey { key: key.clone() });
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
        match name {
            "LinearSVR" => Ok(Self::LinearSvr(parse_linear_svr(params)?)),
            "Lasso" => Ok(Self::Lasso(parse_lasso(params)?)),
            "LinearRegression" => Ok(Self::LinearRegression(parse_linear_regression(params)?)),
            "RandomForestRegressor" => Ok(Self::RandomForestRegressor(parse_forest(params)?)),
            "KNeighborsRegressor" => Ok(Self::KNeighborsRegressor(parse_knn(params)?)),
            "LogisticRegression" => Ok(Self::LogisticRegression(parse_logistic(params)?)),
            other => Err(ConfigError::UnknownModel {
                name: other.to_string(),
                known: MODEL_NAMES.join(", "),
            }),
        }
    }

    /// The scikit-learn class name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::LinearSvr(_) => "LinearSVR",
            Self::Lasso(_) => "Lasso",
            Self::LinearRegression(_) => "LinearRegression",
            Self::RandomForestRegressor(_) => "RandomForestRegressor",
            Self::KNeighborsRegressor(_) => "KNeighborsRegressor",
            Self::LogisticRegression(_) => "LogisticRegression",
        }
    }

    /// Classifiers are cross-validated with stratified folds and predict probabilities.
    pub fn is_classifier(&self) -> bool {
        matches!(self, Self::LogisticRegression(_))
    }

    /// The spec in the JSON form it is parsed from, every default filled in,
    /// with scikit-learn's parameter names and values.
    pub fn to_json(&self) -> Value {
        use serde_json::json;
        let params = match self {
            Self::LinearSvr(p) => json!({
                "epsilon": p.epsilon, "C": p.c, "tol": p.tol,
                "loss": match p.loss {
                    SvrLoss::EpsilonInsensitive => "epsilon_insensitive",
                    SvrLoss::SquaredEpsilonInsensitive => "squared_epsilon_insensitive",
                },
                "fit_intercept": p.fit_intercept, "intercept_scaling": p.intercept_scaling,
                "max_iter": p.max_iter, "random_state": p.random_state,
            }),
            Self::Lasso(p) => json!({
                "alpha": p.alpha, "fit_intercept": p.fit_intercept, "max_iter": p.max_iter, "tol": p.tol,
            }),
            Self::LinearRegression(p) => json!({"fit_intercept": p.fit_intercept}),
            Self::RandomForestRegressor(p) => json!({
                "n_estimators": p.n_estimators, "max_depth": p.max_depth,
                "min_samples_split": p.min_samples_split, "min_samples_leaf": p.min_samples_leaf,
                "max_features": match p.max_features {
                    MaxFeatures::All => Value::Null,
                    MaxFeatures::Sqrt => json!("sqrt"),
                    MaxFeatures::Log2 => json!("log2"),
                    MaxFeatures::Fraction(f) => json!(f),
                    MaxFeatures::Count(k) => json!(k),
                },
                "bootstrap": p.bootstrap, "random_state": p.random_state,
            }),
            Self::KNeighborsRegressor(p) => json!({
                "n_neighbors": p.n_neighbors,
                "weights": match p.weights { KnnWeights::Uniform => "uniform", KnnWeights::Distance => "distance" },
            }),
            Self::LogisticRegression(p) => json!({
                "C": p.c, "fit_intercept": p.fit_intercept, "tol": p.tol, "max_iter": p.max_iter,
            }),
        };
        json!({"model": self.name(), "params": params})
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

/// The benchmark's default level-0 models, in the driver's order.
pub fn default_level0_json() -> Vec<Value> {
    vec![
        serde_json::json!({"model": "LinearSVR", "params": {"C": 1.0, "tol": 1e-6, "random_state": 42}}),
        serde_json::json!({"model": "Lasso", "params": {"alpha": 0.1}}),
        serde_json::json!({"model": "RandomForestRegressor", "params": {"n_estimators": 2, "max_depth": 2, "min_samples_split": 2, "min_samples_leaf": 2, "random_state": 42}}),
        serde_json::json!({"model": "KNeighborsRegressor", "params": {"n_neighbors": 20}}),
    ]
}

/// The benchmark's default level-1 model.
pub fn default_meta_json() -> Value {
    serde_json::json!({"model": "LogisticRegression", "params": {}})
}

/// The default level-0 specs (validated).
pub fn default_level0() -> Vec<ModelSpec> {
    default_level0_json()
        .iter()
        .filter_map(|v| ModelSpec::from_value(v).ok())
        .collect()
}

/// The default level-1 spec.
pub fn default_meta() -> ModelSpec {
    ModelSpec::LogisticRegression(LogisticParams::default())
}

/// A whole stack: level-0 models (cycled over the trainers) and the meta model.
/// JSON: `{"models": [...], "meta_model": {...}}` as in the original driver.
#[derive(Debug, Clone, PartialEq)]
pub struct StackConfig {
    pub models: Vec<ModelSpec>,
    pub meta_model: ModelSpec,
}

impl Default for StackConfig {
    fn default() -> Self {
        Self {
            models: default_level0(),
            meta_model: default_meta(),
        }
    }
}

impl StackConfig {
    pub fn from_json_bytes(bytes: &[u8]) -> Result<Self, ConfigError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| ConfigError::Json(e.to_string()))?;
        let obj = value
            .as_object()
            .ok_or_else(|| ConfigError::NotAnObject(short(&value)))?;
        if let Some(key) = obj.keys().find(|k| *k != "models" && *k != "meta_model") {
            return Err(ConfigError::Stack(format!(
                "unknown key {key:?}; allowed keys: \"models\", \"meta_model\""
            )));
        }
        let models = match obj.get("models") {
            None => default_level0(),
            Some(Value::Array(list)) if !list.is_empty() => list
                .iter()
                .map(ModelSpec::from_value)
                .collect::<Result<Vec<_>, _>>()?,
            Some(other) => {
                return Err(ConfigError::Stack(format!(
                    "\"models\" must be a non-empty list, got {}",
                    short(other)
                )))
            }
        };
        if let Some(m) = models.iter().find(|m| m.is_classifier()) {
            return Err(ConfigError::Stack(format!(
                "level-0 models are regressors; {} is a classifier",
                m.name()
            )));
        }
        let meta_model = match obj.get("meta_model") {
            None => default_meta(),
            Some(v) => ModelSpec::from_value(v)?,
        };
        if !meta_model.is_classifier() {
            return Err(ConfigError::Stack(format!(
                "the meta model must be LogisticRegression, got {}",
                meta_model.name()
            )));
        }
        Ok(Self { models, meta_model })
    }

    /// The model of trainer `i`: `models[i % len]`, as the original driver assigns them.
    pub fn model_for_trainer(&self, i: usize) -> &ModelSpec {
        &self.models[i % self.models.len()]
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!(
            "{}...",
            &s[..s.char_indices().nth(57).map_or(s.len(), |(i, _)| i)]
        )
    } else {
        s
    }
}

/// Reads parameters off a JSON object, checking each, and refuses leftovers.
struct ParamReader<'a> {
    model: &'static str,
    params: &'a Map<String, Value>,
    known: &'static [&'static str],
}

impl<'a> ParamReader<'a> {
    fn new(
        model: &'static str,
        params: &'a Map<String, Value>,
        known: &'static [&'static str],
    ) -> Result<Self, ConfigError> {
        if let Some(param) = params.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(ConfigError::UnknownParam {
                model,
                param: param.clone(),
                known: known.join(", "),
            });
        }
        Ok(Self {
            model,
            params,
            known,
        })
    }

    fn get(&self, name: &'static str) -> Option<&'a Value> {
        debug_assert!(self.known.contains(&name));
        self.params.get(name).filter(|v| !v.is_null())
    }

    fn wrong(&self, param: &'static str, expected: &'static str, v: &Value) -> ConfigError {
        ConfigError::WrongType {
            model: self.model,
            param,
            expected,
            found: short(v),
        }
    }

    fn range(&self, param: &'static str, value: String, expected: &'static str) -> ConfigError {
        ConfigError::OutOfRange {
            model: self.model,
            param,
            value,
            expected,
        }
    }

    fn float(
        &self,
        name: &'static str,
        default: f64,
        ok: impl Fn(f64) -> bool,
        expected: &'static str,
    ) -> Result<f64, ConfigError> {
        let v = match self.get(name) {
            None => return Ok(default),
            Some(v) => v,
        };
        let x = v.as_f64().ok_or_else(|| self.wrong(name, "a number", v))?;
        if !x.is_finite() || !ok(x) {
            return Err(self.range(name, x.to_string(), expected));
        }
        Ok(x)
    }

    fn int(
        &self,
        name: &'static str,
        default: u64,
        min: u64,
        expected: &'static str,
    ) -> Result<u64, ConfigError> {
        let v = match self.get(name) {
            None => return Ok(default),
            Some(v) => v,
        };
        if let Some(f) = v.as_f64().filter(|_| !v.is_u64()) {
            if f.fract() != 0.0 || f < 0.0 {
                return Err(if f.fract() != 0.0 {
                    self.wrong(name, "an integer", v)
                } else {
                    self.range(name, f.to_string(), expected)
                });
            }
        }
        let x = v
            .as_u64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                    .map(|f| f as u64)
            })
            .ok_or_else(|| self.wrong(name, "an integer", v))?;
        if x < min {
            return Err(self.range(name, x.to_string(), expected));
        }
        Ok(x)
    }

    fn opt_int(
        &self,
        name: &'static str,
        min: u64,
        expected: &'static str,
    ) -> Result<Option<u64>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(_) => self.int(name, 0, min, expected).map(Some),
        }
    }

    fn bool(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(self.wrong(name, "true or false", v)),
        }
    }

    fn choice(
        &self,
        name: &'static str,
        default: &'static str,
        allowed: &'static [&'static str],
        expected: &'static str,
    ) -> Result<&'a str, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(Value::String(s)) if allowed.contains(&s.as_str()) => Ok(s.as_str()),
            Some(Value::String(s)) => Err(self.range(name, format!("{s:?}"), expected)),
            Some(v) => Err(self.wrong(name, "a string", v)),
        }
    }

    /// `random_state`: an integer seed in 0..2^32, or null (seed 0, so runs stay reproducible).
    fn seed(&self) -> Result<u32, ConfigError> {
        let seed = self.opt_int("random_state", 0, "an integer in 0..4294967295")?;
        match seed {
            None => Ok(0),
            Some(s) => u32::try_from(s).map_err(|_| {
                self.range("random_state", s.to_string(), "an integer in 0..4294967295")
            }),
        }
    }

    /// Parameters that only steer scikit-learn's logging or copying: accepted and ignored.
    fn ignored(&self, _names: &[&'static str]) {}
}

fn positive(x: f64) -> bool {
    x > 0.0
}

fn non_negative(x: f64) -> bool {
    x >= 0.0
}

const SVR_KNOWN: &[&str] = &[
    "epsilon",
    "C",
    "tol",
    "loss",
    "fit_intercept",
    "intercept_scaling",
    "max_iter",
    "random_state",
    "dual",
    "verbose",
];

fn parse_linear_svr(p: &Map<String, Value>) -> Result<LinearSvrParams, ConfigError> {
    let r = ParamReader::new("LinearSVR", p, SVR_KNOWN)?;
    r.ignored(&["verbose"]);
    match r.get("dual") {
        None | Some(Value::Bool(true)) => {}
        Some(Value::String(s)) if s == "auto" => {}
        Some(v @ Value::Bool(false)) => {
            return Err(r.range(
                "dual",
                v.to_string(),
                "true or \"auto\" (only the dual solver is implemented)",
            ))
        }
        Some(v) => return Err(r.wrong("dual", "true, false or \"auto\"", v)),
    }
    let loss = match r.choice(
        "loss",
        "epsilon_insensitive",
        &["epsilon_insensitive", "squared_epsilon_insensitive"],
        "\"epsilon_insensitive\" or \"squared_epsilon_insensitive\"",
    )? {
        "squared_epsilon_insensitive" => SvrLoss::SquaredEpsilonInsensitive,
        _ => SvrLoss::EpsilonInsensitive,
    };
    Ok(LinearSvrParams {
        epsilon: r.float("epsilon", 0.0, non_negative, ">= 0")?,
        c: r.float("C", 1.0, positive, "> 0")?,
        tol: r.float("tol", 1e-4, positive, "> 0")?,
        loss,
        fit_intercept: r.bool("fit_intercept", true)?,
        intercept_scaling: r.float("intercept_scaling", 1.0, positive, "> 0")?,
        max_iter: r.int("max_iter", 1000, 1, ">= 1")? as usize,
        random_state: r.seed()?,
    })
}

const LASSO_KNOWN: &[&str] = &[
    "alpha",
    "fit_intercept",
    "max_iter",
    "tol",
    "precompute",
    "copy_X",
    "warm_start",
    "positive",
    "selection",
    "random_state",
];

fn parse_lasso(p: &Map<String, Value>) -> Result<LassoParams, ConfigError> {
    let r = ParamReader::new("Lasso", p, LASSO_KNOWN)?;
    r.ignored(&["copy_X", "random_state"]);
    if r.bool("precompute", false)? {
        return Err(r.range(
            "precompute",
            "true".into(),
            "false (the Gram matrix is never precomputed)",
        ));
    }
    if r.bool("warm_start", false)? {
        return Err(r.range(
            "warm_start",
            "true".into(),
            "false (every fit starts from zero)",
        ));
    }
    if r.bool("positive", false)? {
        return Err(r.range(
            "positive",
            "true".into(),
            "false (positive-only coefficients are not implemented)",
        ));
    }
    r.choice(
        "selection",
        "cyclic",
        &["cyclic"],
        "\"cyclic\" (random selection is not implemented)",
    )?;
    Ok(LassoParams {
        alpha: r.float("alpha", 1.0, non_negative, ">= 0")?,
        fit_intercept: r.bool("fit_intercept", true)?,
        max_iter: r.int("max_iter", 1000, 1, ">= 1")? as usize,
        tol: r.float("tol", 1e-4, non_negative, ">= 0")?,
    })
}

const LINREG_KNOWN: &[&str] = &["fit_intercept", "copy_X", "n_jobs", "positive"];

fn parse_linear_regression(p: &Map<String, Value>) -> Result<LinearRegressionParams, ConfigError> {
    let r = ParamReader::new("LinearRegression", p, LINREG_KNOWN)?;
    r.ignored(&["copy_X", "n_jobs"]);
    if r.bool("positive", false)? {
        return Err(r.range(
            "positive",
            "true".into(),
            "false (non-negative least squares is not implemented)",
        ));
    }
    Ok(LinearRegressionParams {
        fit_intercept: r.bool("fit_intercept", true)?,
    })
}

const FOREST_KNOWN: &[&str] = &[
    "n_estimators",
    "criterion",
    "max_depth",
    "min_samples_split",
    "min_samples_leaf",
    "max_features",
    "bootstrap",
    "random_state",
    "n_jobs",
    "verbose",
];

fn parse_forest(p: &Map<String, Value>) -> Result<RandomForestParams, ConfigError> {
    let r = ParamReader::new("RandomForestRegressor", p, FOREST_KNOWN)?;
    r.ignored(&["n_jobs", "verbose"]);
    r.choice(
        "criterion",
        "squared_error",
        &["squared_error"],
        "\"squared_error\"",
    )?;
    let max_features = match r.get("max_features") {
        None => MaxFeatures::All,
        Some(Value::String(s)) if s == "sqrt" => MaxFeatures::Sqrt,
        Some(Value::String(s)) if s == "log2" => MaxFeatures::Log2,
        Some(v @ Value::Number(n)) if n.is_u64() => {
            let k = n.as_u64().unwrap_or(0);
            if k == 0 {
                return Err(r.range(
                    "max_features",
                    v.to_string(),
                    "an integer >= 1, a fraction in (0, 1], \"sqrt\" or \"log2\"",
                ));
            }
            MaxFeatures::Count(k as usize)
        }
        Some(v @ Value::Number(n)) => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if !(f > 0.0 && f <= 1.0) {
                return Err(r.range(
                    "max_features",
                    v.to_string(),
                    "an integer >= 1, a fraction in (0, 1], \"sqrt\" or \"log2\"",
                ));
            }
            MaxFeatures::Fraction(f)
        }
        Some(v) => return Err(r.wrong("max_features", "a number, \"sqrt\", \"log2\" or null", v)),
    };
    Ok(RandomForestParams {
        n_estimators: r.int("n_estimators", 100, 1, ">= 1")? as usize,
        max_depth: r
            .opt_int("max_depth", 1, ">= 1 or null")?
            .map(|d| d as usize),
        min_samples_split: r.int("min_samples_split", 2, 2, ">= 2")? as usize,
        min_samples_leaf: r.int("min_samples_leaf", 1, 1, ">= 1")? as usize,
        max_features,
        bootstrap: r.bool("bootstrap", true)?,
        random_state: r.seed()?,
    })
}

const KNN_KNOWN: &[&str] = &[
    "n_neighbors",
    "weights",
    "algorithm",
    "metric",
    "p",
    "n_jobs",
    "leaf_size",
];

fn parse_knn(p: &Map<String, Value>) -> Result<KnnParams, ConfigError> {
    let r = ParamReader::new("KNeighborsRegressor", p, KNN_KNOWN)?;
    r.ignored(&["algorithm", "n_jobs", "leaf_size"]);
    r.choice(
        "metric",
        "minkowski",
        &["minkowski", "euclidean"],
        "\"minkowski\" (with p=2) or \"euclidean\"",
    )?;
    if r.int("p", 2, 2, "2 (euclidean)")? != 2 {
        return Err(r.range("p", "other".into(), "2 (euclidean)"));
    }
    let weights = match r.choice(
        "weights",
        "uniform",
        &["uniform", "distance"],
        "\"uniform\" or \"distance\"",
    )? {
        "distance" => KnnWeights::Distance,
        _ => KnnWeights::Uniform,
    };
    Ok(KnnParams {
        n_neighbors: r.int("n_neighbors", 5, 1, ">= 1")? as usize,
        weights,
    })
}

const LOGISTIC_KNOWN: &[&str] = &[
    "C",
    "fit_intercept",
    "tol",
    "max_iter",
    "penalty",
    "solver",
    "random_state",
    "n_jobs",
    "verbose",
    "warm_start",
];

fn parse_logistic(p: &Map<String, Value>) -> Result<LogisticParams, ConfigError> {
    let r = ParamReader::new("LogisticRegression", p, LOGISTIC_KNOWN)?;
    r.ignored(&["random_state", "n_jobs", "verbose", "solver"]);
    r.choice("penalty", "l2", &["l2"], "\"l2\"")?;
    if r.bool("warm_start", false)? {
        return Err(r.range("warm_start", "true".into(), "false"));
    }
    Ok(LogisticParams {
        c: r.float("C", 1.0, positive, "> 0")?,
        fit_intercept: r.bool("fit_intercept", true)?,
        tol: r.float("tol", 1e-4, positive, "> 0")?,
        max_iter: r.int("max_iter", 100, 1, ">= 1")? as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ModelSpec, ConfigError> {
        ModelSpec::from_json_bytes(s.as_bytes())
    }

    #[test]
    fn defaults_parse() {
        assert_eq!(default_level0().len(), 4);
        assert_eq!(default_level0()[0].name(), "LinearSVR");
        assert!(default_meta().is_classifier());
    }

    #[test]
    fn unknown_model_is_named() {
        let e = parse(r#"{"model": "SVC"}"#).unwrap_err();
        assert!(matches!(&e, ConfigError::UnknownModel { name, .. } if name == "SVC"));
        assert!(e.to_string().contains("Lasso"));
    }

    #[test]
    fn unknown_param_is_named() {
        let e = parse(r#"{"model": "Lasso", "params": {"alpah": 0.1}}"#).unwrap_err();
        assert!(matches!(&e, ConfigError::UnknownParam { param, .. } if param == "alpah"));
    }

    #[test]
    fn wrong_type_is_named() {
        let e = parse(r#"{"model": "Lasso", "params": {"alpha": "big"}}"#).unwrap_err();
        assert!(matches!(e, ConfigError::WrongType { param: "alpha", .. }));
        let e = parse(r#"{"model": "KNeighborsRegressor", "params": {"n_neighbors": 2.5}}"#)
            .unwrap_err();
        assert!(matches!(
            e,
            ConfigError::WrongType {
                param: "n_neighbors",
                ..
            }
        ));
    }

    #[test]
    fn out_of_range_is_named() {
        let e = parse(r#"{"model": "LinearSVR", "params": {"C": -1}}"#).unwrap_err();
        assert!(matches!(e, ConfigError::OutOfRange { param: "C", .. }));
        let e = parse(r#"{"model": "RandomForestRegressor", "params": {"n_estimators": 0}}"#)
            .unwrap_err();
        assert!(matches!(
            e,
            ConfigError::OutOfRange {
                param: "n_estimators",
                ..
            }
        ));
        let e = parse(r#"{"model": "KNeighborsRegressor", "params": {"weights": "gaussian"}}"#)
            .unwrap_err();
        assert!(matches!(
            e,
            ConfigError::OutOfRange {
                param: "weights",
                ..
            }
        ));
    }

    #[test]
    fn garbage_is_refused() {
        assert!(matches!(parse("\u{80}pickle"), Err(ConfigError::Json(_))));
        assert!(matches!(parse("[1, 2]"), Err(ConfigError::NotAnObject(_))));
        assert!(matches!(
            parse(r#"{"params": {}}"#),
            Err(ConfigError::MissingModel)
        ));
    }

    #[test]
    fn integers_are_accepted_for_floats_and_defaults_fill_in() {
        let spec =
            parse(r#"{"model": "LinearSVR", "params": {"C": 1, "tol": 1e-6, "random_state": 42}}"#)
                .unwrap();
        match spec {
            ModelSpec::LinearSvr(p) => {
                assert_eq!(p.c, 1.0);
                assert_eq!(p.max_iter, 1000);
                assert_eq!(p.random_state, 42);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn json_form_round_trips() {
        let specs = [
            r#"{"model": "LinearSVR", "params": {"loss": "squared_epsilon_insensitive", "epsilon": 0.2}}"#,
            r#"{"model": "Lasso", "params": {"alpha": 0.3, "fit_intercept": false}}"#,
            r#"{"model": "LinearRegression"}"#,
            r#"{"model": "RandomForestRegressor", "params": {"max_features": "sqrt", "max_depth": 3}}"#,
            r#"{"model": "RandomForestRegressor", "params": {"max_features": 0.5}}"#,
            r#"{"model": "RandomForestRegressor", "params": {"max_features": 7, "bootstrap": false}}"#,
            r#"{"model": "KNeighborsRegressor", "params": {"weights": "distance"}}"#,
            r#"{"model": "LogisticRegression", "params": {"C": 0.5}}"#,
        ];
        for s in specs {
            let spec = parse(s).unwrap();
            assert_eq!(ModelSpec::from_value(&spec.to_json()).unwrap(), spec, "{s}");
        }
        for spec in default_level0() {
            assert_eq!(ModelSpec::from_value(&spec.to_json()).unwrap(), spec);
        }
    }

    #[test]
    fn stack_config_checks_roles() {
        let e = StackConfig::from_json_bytes(br#"{"models": [{"model": "LogisticRegression"}]}"#)
            .unwrap_err();
        assert!(matches!(e, ConfigError::Stack(_)));
        let ok = StackConfig::from_json_bytes(br#"{"models": [{"model": "Lasso"}]}"#).unwrap();
        assert_eq!(ok.model_for_trainer(3).name(), "Lasso");
    }
}
