//! The core's integration tests, one binary: one module per concern, the
//! scikit-learn fixtures' readers in `common`.

mod bounds;
mod common;
mod errors;
mod fuzz;
mod generator;
mod model_format;
mod sklearn_parity;
mod user_data;
