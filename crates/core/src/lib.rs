//! # stacking-core
//!
//! The pure ML core of the stacking benchmark: no network, no storage, no
//! files (a level-0 step may spread its fold fits over scoped threads).
//! Everything the trainer, reducer and metatrainer compute lives here.
//!
//! - [`dataset`]: validated datasets, scikit-learn's `make_classification`
//!   (bit-identical on the default parameters), and `.npy` loading.
//! - [`config`]: the stack's configuration; [`params`]: reading one model's
//!   parameters, each model checking its own (names, defaults, bounds).
//! - [`stop`]: cooperative cancellation that every solver loop checks.
//! - [`models`]: the [`models::Model`] trait and its registry: LinearSVR,
//!   Lasso, LinearRegression, RandomForestRegressor, KNeighborsRegressor,
//!   Ridge, ElasticNet, DecisionTreeRegressor and LogisticRegression (why
//!   hand-written: see that module).
//! - [`cv`], [`metrics`]: scikit-learn's folds and ROC AUC.
//! - [`stack`]: the level-0 and level-1 steps and the full two-layer model.
//! - [`serial`], [`npy`]: safe, versioned bytes for models and arrays.
//! - `rng` (internal, like the models' `tree` and `linalg`): numpy's and
//!   scikit-learn's random streams, reproduced.

pub mod config;
pub mod cv;
pub mod dataset;
pub mod metrics;
pub mod models;
pub mod npy;
mod parallel;
pub mod params;
pub(crate) mod rng;
pub mod serial;
pub mod stack;
pub mod stop;

pub use config::{ConfigError, ModelSpec, StackConfig};
pub use dataset::{Dataset, DatasetError, GeneratorParams, WireLayout};
pub use models::{ConvergenceWarning, FitError, FittedModel};
pub use stack::{FullModel, Level0Output, Level1Output, StackError};
pub use stop::{Stop, StopReason};
