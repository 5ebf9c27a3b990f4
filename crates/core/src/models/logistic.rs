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
use serde_json::{json, Map, Value};

use super::{FitError, LinearModel};
use crate::params::{positive, tolerance, ConfigError, ParamReader, SOLVER_ITER};
use crate::stop::Stop;

/// Checked `LogisticRegression` parameters, built only by
/// [`LogisticParams::parse`] or [`Default`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticParams {
    #[serde(rename = "C")]
    c: f64,
    fit_intercept: bool,
    tol: f64,
    max_iter: usize,
}

impl Default for LogisticParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl LogisticParams {
    /// The scikit-learn class name.
    pub const NAME: &'static str = "LogisticRegression";

    /// scikit-learn's defaults.
    const DEFAULT: Self = Self {
        c: 1.0,
        fit_intercept: true,
        tol: 1e-4,
        max_iter: 100,
    };

    const KNOWN: &'static [&'static str] = &[
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

    /// Reads and checks the JSON `params` object.
    pub fn parse(p: &Map<String, Value>) -> Result<Self, ConfigError> {
        let r = ParamReader::new(Self::NAME, p, Self::KNOWN)?;
        r.ignored(&["random_state", "n_jobs", "verbose", "solver"]);
        r.choice("penalty", "l2", &["l2"], "\"l2\"")?;
        r.must_be_false("warm_start", "false")?;
        let d = Self::DEFAULT;
        Ok(Self {
            c: r.float("C", d.c, positive, "> 0")?,
            fit_intercept: r.bool("fit_intercept", d.fit_intercept)?,
            tol: r.float("tol", d.tol, tolerance, ">= 1e-15")?,
            max_iter: r.count("max_iter", d.max_iter, SOLVER_ITER)?,
        })
    }

    /// Every parameter, defaults filled in, in scikit-learn's names.
    pub fn to_json(&self) -> Value {
        json!({
            "C": self.c, "fit_intercept": self.fit_intercept, "tol": self.tol, "max_iter": self.max_iter,
        })
    }
}

/// The logistic function, without overflow for large negative `z`.
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
    /// The solver's iteration cap: a fit that used all of it did not converge.
    pub fn max_iter(&self) -> usize {
        self.max_iter
    }

    /// The L2-penalised fit as scikit-learn's default `lbfgs` solution, stopping when `stop` is set.
    pub fn fit(
        &self,
        x: ArrayView2<f64>,
        y: ArrayView1<f64>,
        stop: &Stop,
    ) -> Result<LinearModel, FitError> {
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
        let converged = self.tol * 1e-4 * n as f64;
        for it in 0..self.max_iter {
            stop.check()?;
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
            if grad_max <= converged {
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
