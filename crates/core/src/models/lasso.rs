//! `Lasso`: ElasticNet with no L2 term, as scikit-learn's `Lasso` is its
//! `ElasticNet` with `l1_ratio=1` (the solver is in `elastic_net.rs`).
//!
//! Objective: `(1 / (2 n)) ||y - X w - b||^2 + alpha ||w||_1`.

/// Checked `Lasso` parameters: ElasticNet's without `l1_ratio`.
pub type LassoParams = super::elastic_net::DescentParams<true>;
