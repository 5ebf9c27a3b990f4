//! `LinearRegression`: ordinary least squares on centred data, giving the
//! minimum-norm solution when there are more features than rows.
//!
//! The solution is `w = Xc^T U diag(1/λ) U^T yc` from the eigendecomposition of
//! the smaller Gram matrix (`Xc Xc^T` when p > n, else `Xc^T Xc` with
//! `w = V diag(1/λ) V^T Xc^T yc`). Eigenvalues below `1e-12 · λ_max` count as
//! zero, which is scikit-learn 1.9's `lstsq(cond=1e-6)` cut-off on singular
//! values; this is what makes the result robust to rank deficiency (centring
//! alone removes one rank).

use ndarray::{Array2, ArrayView1, ArrayView2, Axis};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{FitError, LinearModel};
use crate::params::{ConfigError, ParamReader};
use crate::stop::Stop;

/// Checked `LinearRegression` parameters, built only by
/// [`LinearRegressionParams::parse`] or [`Default`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearRegressionParams {
    fit_intercept: bool,
}

impl Default for LinearRegressionParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl LinearRegressionParams {
    /// The scikit-learn class name.
    pub const NAME: &'static str = "LinearRegression";

    /// scikit-learn's defaults.
    const DEFAULT: Self = Self {
        fit_intercept: true,
    };

    const KNOWN: &'static [&'static str] = &["fit_intercept", "copy_X", "n_jobs", "positive"];

    /// Reads and checks the JSON `params` object.
    pub fn parse(p: &Map<String, Value>) -> Result<Self, ConfigError> {
        let r = ParamReader::new(Self::NAME, p, Self::KNOWN)?;
        r.ignored(&["copy_X", "n_jobs"]);
        r.must_be_false(
            "positive",
            "false (non-negative least squares is not implemented)",
        )?;
        Ok(Self {
            fit_intercept: r.bool("fit_intercept", Self::DEFAULT.fit_intercept)?,
        })
    }

    /// Every parameter, defaults filled in, in scikit-learn's names.
    pub fn to_json(&self) -> Value {
        json!({"fit_intercept": self.fit_intercept})
    }
}

/// scikit-learn's `cond` for `scipy.linalg.lstsq`, squared for eigenvalues.
const EIGEN_CUTOFF: f64 = 1e-12;

impl LinearRegressionParams {
    /// One decomposition of the smaller Gram matrix: not interruptible
    /// inside, so `stop` is checked before and after it.
    pub fn fit(
        &self,
        x: ArrayView2<f64>,
        y: ArrayView1<f64>,
        stop: &Stop,
    ) -> Result<LinearModel, FitError> {
        stop.check()?;
        let (n, p) = x.dim();
        let (x_mean, y_mean) = if self.fit_intercept {
            (
                x.mean_axis(Axis(0))
                    .unwrap_or_else(|| ndarray::Array1::zeros(p)),
                y.mean().unwrap_or(0.0),
            )
        } else {
            (ndarray::Array1::zeros(p), 0.0)
        };
        let xc: Array2<f64> = &x - &x_mean.view().insert_axis(Axis(0));
        let yc = y.mapv(|v| v - y_mean);
        let coef = if p > n {
            let gram = xc.dot(&xc.t());
            let alpha = pseudo_solve(
                &gram,
                yc.as_slice()
                    .map(|s| s.to_vec())
                    .unwrap_or_else(|| yc.to_vec()),
            )?;
            xc.t().dot(&ndarray::Array1::from(alpha))
        } else {
            let gram = xc.t().dot(&xc);
            let rhs = xc.t().dot(&yc);
            ndarray::Array1::from(pseudo_solve(&gram, rhs.to_vec())?)
        };
        stop.check()?;
        if coef.iter().any(|v| !v.is_finite()) {
            return Err(FitError::Numerical {
                model: "LinearRegression",
                reason: "least-squares solution is not finite",
            });
        }
        let intercept = y_mean - x_mean.dot(&coef);
        Ok(LinearModel {
            coef: coef.to_vec(),
            intercept,
            n_iter: 1,
        })
    }
}

/// `G^+ b` for a symmetric positive semi-definite `G`.
fn pseudo_solve(gram: &Array2<f64>, b: Vec<f64>) -> Result<Vec<f64>, FitError> {
    let m = gram.nrows();
    let g = faer::Mat::<f64>::from_fn(m, m, |i, j| gram[[i, j]]);
    let eig = g
        .self_adjoint_eigen(faer::Side::Lower)
        .map_err(|_| FitError::Numerical {
            model: "LinearRegression",
            reason: "eigendecomposition did not converge",
        })?;
    let (values, vectors) = (eig.S(), eig.U());
    let lambda_max = (0..m).map(|k| values[k]).fold(0.0f64, f64::max);
    let cutoff = EIGEN_CUTOFF * lambda_max;
    let mut out = vec![0.0; m];
    for k in 0..m {
        let l = values[k];
        if l <= cutoff {
            continue;
        }
        let u = vectors.col(k);
        let coeff = (0..m).map(|i| u[i] * b[i]).sum::<f64>() / l;
        for (i, o) in out.iter_mut().enumerate() {
            *o += coeff * u[i];
        }
    }
    Ok(out)
}
