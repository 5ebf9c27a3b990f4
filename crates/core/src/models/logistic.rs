//! `LogisticRegression` (binary, L2): minimises `Σ log-loss + ||w||^2 / (2 C)`
//! with the intercept unpenalised, by Newton's method with a backtracking line
//! search.
//!
//! scikit-learn uses lbfgs and stops at `tol` on the projected gradient of the
//! per-sample objective, up to ~1e-3 away from the optimum in probability. The
//! meta model has only one column per trainer, so a Newton step is a tiny
//! Cholesky solve; we converge to `tol · 1e-4` instead, i.e. the optimum itself.

use faer::linalg::solvers::Solve;
use faer::{Col, Mat, Side};
use ndarray::{ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};

use super::{FitError, LinearModel};

/// Checked `LogisticRegression` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticParams {
    #[serde(rename = "C")]
    pub c: f64,
    pub fit_intercept: bool,
    pub tol: f64,
    pub max_iter: usize,
}

impl Default for LogisticParams {
    fn default() -> Self {
        Self {
            c: 1.0,
            fit_intercept: true,
            tol: 1e-4,
            max_iter: 100,
        }
    }
}

pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// `log(1 + exp(z))` without overflow.
fn log1p_exp(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

impl LogisticParams {
    pub fn fit(&self, x: ArrayView2<f64>, y: ArrayView1<f64>) -> Result<LinearModel, FitError> {
        let (n, p) = x.dim();
        let positives = y.iter().filter(|&&v| v > 0.5).count();
        if positives == 0 || positives == n {
            return Err(FitError::OneClass);
        }
        let y: Vec<f64> = y.iter().map(|&v| if v > 0.5 { 1.0 } else { 0.0 }).collect();
        // Parameters: p weights, then the intercept (fixed at 0 when not fitted).
        let d = p + usize::from(self.fit_intercept);
        let design = |i: usize, j: usize| if j < p { x[[i, j]] } else { 1.0 };
        let inv_c = 1.0 / self.c;
        let objective = |theta: &Col<f64>| -> f64 {
            let mut loss = 0.0;
            for (i, &yi) in y.iter().enumerate() {
                let z: f64 = (0..d).map(|j| design(i, j) * theta[j]).sum();
                loss += log1p_exp(z) - yi * z;
            }
            loss + 0.5 * inv_c * (0..p).map(|j| theta[j] * theta[j]).sum::<f64>()
        };
        let mut theta = Col::<f64>::zeros(d);
        let mut f = objective(&theta);
        let mut n_iter = 0;
        let stop = self.tol * 1e-4 * n as f64;
        for it in 0..self.max_iter {
            n_iter = it + 1;
            let mut grad = Col::<f64>::zeros(d);
            let mut hess = Mat::<f64>::zeros(d, d);
            for (i, &yi) in y.iter().enumerate() {
                let z: f64 = (0..d).map(|j| design(i, j) * theta[j]).sum();
                let prob = sigmoid(z);
                let r = prob - yi;
                let s = prob * (1.0 - prob);
                for a in 0..d {
                    let xa = design(i, a);
                    grad[a] += r * xa;
                    for b in 0..=a {
                        hess[(a, b)] += s * xa * design(i, b);
                    }
                }
            }
            for j in 0..p {
                grad[j] += inv_c * theta[j];
                hess[(j, j)] += inv_c;
            }
            for a in 0..d {
                for b in 0..a {
                    hess[(b, a)] = hess[(a, b)];
                }
            }
            let grad_max = (0..d).map(|j| grad[j].abs()).fold(0.0, f64::max);
            if grad_max <= stop {
                break;
            }
            let chol = hess.llt(Side::Lower).map_err(|_| FitError::Numerical {
                model: "LogisticRegression",
                reason: "Hessian is not positive definite",
            })?;
            let step = chol.solve(&grad);
            let slope: f64 = (0..d).map(|j| grad[j] * step[j]).sum();
            let step_max = (0..d).map(|j| step[j].abs()).fold(0.0, f64::max);
            let mut t = 1.0;
            loop {
                let candidate = Col::<f64>::from_fn(d, |j| theta[j] - t * step[j]);
                let fc = objective(&candidate);
                if fc <= f - 1e-4 * t * slope || t < 1e-10 {
                    theta = candidate;
                    f = fc;
                    break;
                }
                t *= 0.5;
            }
            if t * step_max < 1e-15 {
                break;
            }
        }
        if theta.iter().any(|v| !v.is_finite()) {
            return Err(FitError::Numerical {
                model: "LogisticRegression",
                reason: "coefficients diverged",
            });
        }
        Ok(LinearModel {
            coef: (0..p).map(|j| theta[j]).collect(),
            intercept: if self.fit_intercept { theta[p] } else { 0.0 },
            n_iter,
        })
    }
}
