//! The stack's configuration: the level-0 models cycled over the trainers
//! and the meta model, as the original driver's `{"models": [...],
//! "meta_model": {...}}`. Each model's own parameters are parsed beside the
//! model ([`crate::models`]).

use serde_json::Value;

pub use crate::models::{ModelSpec, MODEL_NAMES};
pub use crate::params::ConfigError;
use crate::params::{excerpt, short, ECHO_LIMIT};

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
    ModelSpec::LogisticRegression(
        <crate::models::logistic::LogisticParams as crate::models::Model>::DEFAULT,
    )
}

/// A whole stack: level-0 models (cycled over the trainers) and the meta model.
/// JSON: `{"models": [...], "meta_model": {...}}` as in the original driver.
#[derive(Debug, Clone, PartialEq)]
pub struct StackConfig {
    /// The level-0 models, assigned to trainers in turn.
    pub models: Vec<ModelSpec>,
    /// The level-1 model fitted on the level-0 predictions.
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
    /// Parses and checks a stack configuration; absent keys take the benchmark's defaults.
    pub fn from_json_bytes(bytes: &[u8]) -> Result<Self, ConfigError> {
        let value = crate::params::parse_json(bytes)?;
        let obj = value
            .as_object()
            .ok_or_else(|| ConfigError::NotAnObject(short(&value)))?;
        if let Some(key) = obj.keys().find(|k| *k != "models" && *k != "meta_model") {
            return Err(ConfigError::UnknownStackKey {
                key: excerpt(key, ECHO_LIMIT),
            });
        }
        let models = match obj.get("models") {
            None => default_level0(),
            Some(Value::Array(list)) if !list.is_empty() => list
                .iter()
                .map(ModelSpec::from_value)
                .collect::<Result<Vec<_>, _>>()?,
            Some(other) => {
                return Err(ConfigError::ModelsNotAList {
                    found: short(other),
                })
            }
        };
        models.iter().try_for_each(ModelSpec::check_level0)?;
        let meta_model = match obj.get("meta_model") {
            None => default_meta(),
            Some(v) => ModelSpec::from_value(v)?,
        };
        meta_model.check_meta()?;
        Ok(Self { models, meta_model })
    }

    /// The model of trainer `i`: `models[i % len]`, as the original driver assigns them.
    pub fn model_for_trainer(&self, i: usize) -> &ModelSpec {
        &self.models[i % self.models.len()]
    }
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
    fn a_key_given_twice_is_refused_at_any_depth() {
        let e = parse(r#"{"model": "Lasso", "model": "LinearSVR"}"#).unwrap_err();
        assert_eq!(
            e,
            ConfigError::DuplicateKey {
                key: "model".into()
            }
        );
        assert!(e.to_string().contains("\"model\" is given twice"), "{e}");
        let e = parse(r#"{"model": "Lasso", "params": {"alpha": 1, "alpha": 2}}"#).unwrap_err();
        assert!(matches!(e, ConfigError::DuplicateKey { key } if key == "alpha"));
        let e = StackConfig::from_json_bytes(
            br#"{"models": [{"model": "Lasso"}], "meta_model": {}, "meta_model": {}}"#,
        )
        .unwrap_err();
        assert!(matches!(e, ConfigError::DuplicateKey { key } if key == "meta_model"));
        // The same keys in different objects are fine, and the values parse as before.
        let spec = parse(r#"{"model": "Lasso", "params": {"alpha": 0.25, "tol": 1e-6}}"#).unwrap();
        assert_eq!(spec.to_json()["params"]["alpha"], 0.25);
        assert_eq!(spec.to_json()["params"]["tol"], 1e-6);
        assert!(matches!(parse("{} trailing"), Err(ConfigError::Json(_))));
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
        let params = &spec.to_json()["params"];
        assert_eq!(params["C"], 1.0);
        assert_eq!(params["max_iter"], 1000);
        assert_eq!(params["random_state"], 42);
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
            r#"{"model": "Ridge", "params": {"alpha": 3.5, "fit_intercept": false}}"#,
            r#"{"model": "ElasticNet", "params": {"alpha": 0.2, "l1_ratio": 0.9, "tol": 1e-6}}"#,
            r#"{"model": "DecisionTreeRegressor", "params": {"max_depth": 4, "max_features": "log2", "random_state": 9}}"#,
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
        assert!(matches!(e, ConfigError::Role(_)));
        let ok = StackConfig::from_json_bytes(br#"{"models": [{"model": "Lasso"}]}"#).unwrap();
        assert_eq!(ok.model_for_trainer(3).name(), "Lasso");
    }
}
