//! `Ridge`: least squares with an L2 penalty, `||y - X w - b||² + alpha ||w||²`,
//! solved as scikit-learn's `cholesky` solver (what its `solver="auto"` picks
//! for a dense X): on centred data, `(XᵀX + alpha I) w = Xᵀy`, or with more
//! features than rows `w = Xᵀ (XXᵀ + alpha I)⁻¹ y`, where the folds share the
//! rows' Gram matrix. The solver is LinearRegression's (`linear_regression.rs`).

/// Checked `Ridge` parameters: LinearRegression's with `alpha`.
pub type RidgeParams = super::linear_regression::LeastSquaresParams<true>;
