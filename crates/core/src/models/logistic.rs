//! `LogisticRegression` (binary, L2): minimises `Σ log-loss + ||w||^2 / (2 C)`
//! with the intercept unpenalised, by Newton's method with a backtracking line
//! search.
//!
//! scikit-learn uses lbfgs and stops at `tol` on the projected gradient of the
//! per-sample objective, up to ~1e-3 away from the optimum in probability. The
//! meta model has only one column per trainer, so a Newton step is a small
//! Cholesky solve; we converge to `tol · 1e-4` instead, i.e. the optimum itself.
//!
//! A Newton step solves `(X^T S X + I/C) step = gradient`: by a Cholesky
//! factorisation of the `d x d` system while the columns are no more than
//! the rows (the benchmark's meta model: one column per trainer), else by
//! conjugate gradients without forming it (a meta model of thousands of
//! trainers on a few hundred rows), so that neither time nor memory grows
//! with the square of the columns. [`Model::fit_memory_bytes`]
//! says what a fit will hold. Every loop checks the stop flag, the
//! factorisation between panels of 64 columns.

use ndarray::{Array1, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::linalg::{cholesky_solve, cholesky_until};
use super::model::{Fitted, Model, Role, Rows};
use super::{FitError, FittedState, LinearModel};
use crate::params::{positive, tolerance, ConfigError, ParamReader, SOLVER_ITER};
use crate::stop::Stop;

/// Checked `LogisticRegression` parameters, built only by
/// [`Model::parse`] or [`Model::DEFAULT`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticParams {
    #[serde(rename = "C")]
    c: f64,
    fit_intercept: bool,
    tol: f64,
    max_iter: usize,
}

impl Model for LogisticParams {
    const NAME: &'static str = "LogisticRegression";

    const ROLE: Role = Role::Classifier;
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

    fn parse(r: &ParamReader<'_>) -> Result<Self, ConfigError> {
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

    fn to_json(&self) -> Value {
        json!({
            "C": self.c, "fit_intercept": self.fit_intercept, "tol": self.tol, "max_iter": self.max_iter,
        })
    }

    fn fit(&self, data: &Rows<'_>, stop: &Stop) -> Fitted {
        let (x, y) = data.selected();
        self.newton(x.view(), y.view(), stop)
            .map(FittedState::Linear)
    }

    fn max_iter(&self) -> Option<usize> {
        Some(self.max_iter)
    }

    /// The `d x d` Newton system (`d = p + 1`) and a chunk of scaled rows
    /// while the columns are no more than the rows, else a few vectors.
    fn fit_memory_bytes(&self, n: usize, p: usize) -> u64 {
        let (n, p) = (n as u64, p as u64);
        let d = p + u64::from(self.fit_intercept);
        let system = if d <= n {
            d.saturating_mul(d).saturating_add(CHUNK as u64 * d)
        } else {
            0
        };
        system
            .saturating_add(8 * (n + d))
            .saturating_add(n.saturating_mul(p).min(u64::MAX / 8))
            .saturating_mul(8)
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
    /// The L2-penalised fit as scikit-learn's default `lbfgs` solution, stopping when `stop` is set.
    pub fn newton(
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
        let x = x.as_standard_layout();
        let problem = Problem {
            x: x.view(),
            y: &y,
            inv_c: 1.0 / self.c,
            intercept: self.fit_intercept,
        };
        // Parameters: p weights, then the intercept (fixed at 0 when not fitted).
        let d = problem.dims();
        let mut theta = vec![0.0; d];
        let mut z = problem.margins(&theta);
        let mut f = problem.objective(&theta, &z);
        let mut n_iter = 0;
        let converged = self.tol * 1e-4 * n as f64;
        for it in 0..self.max_iter {
            stop.check()?;
            n_iter = it + 1;
            let prob: Vec<f64> = z.iter().map(|&v| sigmoid(v)).collect();
            let grad = problem.gradient(&theta, &prob);
            let grad_max = grad.iter().map(|g| g.abs()).fold(0.0, f64::max);
            if grad_max <= converged {
                break;
            }
            let weights: Vec<f64> = prob.iter().map(|q| q * (1.0 - q)).collect();
            let step = if d <= n {
                problem.primal_step(&weights, &grad, stop)?
            } else {
                problem.conjugate_gradient_step(&weights, &grad, stop)?
            };
            let slope: f64 = grad.iter().zip(&step).map(|(g, s)| g * s).sum();
            let step_max = step.iter().map(|s| s.abs()).fold(0.0, f64::max);
            let mut t = 1.0;
            loop {
                stop.check()?;
                let candidate: Vec<f64> = theta.iter().zip(&step).map(|(v, s)| v - t * s).collect();
                let zc = problem.margins(&candidate);
                let fc = problem.objective(&candidate, &zc);
                if fc <= f - 1e-4 * t * slope || t < 1e-10 {
                    theta = candidate;
                    z = zc;
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
            coef: theta[..p].to_vec(),
            intercept: if self.fit_intercept { theta[p] } else { 0.0 },
            n_iter,
        })
    }
}

/// Rows scaled and added to the Newton system at a time, between two looks
/// at the stop flag.
const CHUNK: usize = 256;

/// The penalised log-loss of one fit.
struct Problem<'a> {
    x: ArrayView2<'a, f64>,
    y: &'a [f64],
    /// The L2 penalty, 1 / C.
    inv_c: f64,
    intercept: bool,
}

const NOT_DEFINITE: FitError = FitError::Numerical {
    model: "LogisticRegression",
    reason: "the Newton system is not positive definite",
};

impl Problem<'_> {
    fn dims(&self) -> usize {
        self.x.ncols() + usize::from(self.intercept)
    }

    /// `x · w + b` for every row.
    fn margins(&self, theta: &[f64]) -> Array1<f64> {
        let p = self.x.ncols();
        let w = ArrayView1::from(&theta[..p]);
        let b = if self.intercept { theta[p] } else { 0.0 };
        self.x.dot(&w) + b
    }

    fn objective(&self, theta: &[f64], z: &Array1<f64>) -> f64 {
        let p = self.x.ncols();
        let loss: f64 = z
            .iter()
            .zip(self.y)
            .map(|(&zi, &yi)| log1p_exp(zi) - yi * zi)
            .sum();
        loss + 0.5 * self.inv_c * theta[..p].iter().map(|v| v * v).sum::<f64>()
    }

    fn gradient(&self, theta: &[f64], prob: &[f64]) -> Vec<f64> {
        let p = self.x.ncols();
        let r: Array1<f64> = prob.iter().zip(self.y).map(|(q, yi)| q - yi).collect();
        let mut grad = self.x.t().dot(&r).to_vec();
        for (g, w) in grad.iter_mut().zip(&theta[..p]) {
            *g += self.inv_c * w;
        }
        if self.intercept {
            grad.push(r.sum());
        }
        grad
    }

    /// Row `i` of the design (its features, then 1 for the intercept),
    /// times `scale`, into `out`.
    fn scaled_row(&self, i: usize, scale: f64, out: &mut [f64]) {
        let p = self.x.ncols();
        for (o, v) in out[..p].iter_mut().zip(self.x.row(i)) {
            *o = scale * v;
        }
        if self.intercept {
            out[p] = scale;
        }
    }

    /// The Newton step from the `d x d` system `(X^T S X + P) step = grad`,
    /// `P` the penalty on the weights (not the intercept).
    fn primal_step(
        &self,
        weights: &[f64],
        grad: &[f64],
        stop: &Stop,
    ) -> Result<Vec<f64>, FitError> {
        use ndarray::{linalg::general_mat_mul, ArrayView2, ArrayViewMut2, ShapeBuilder};
        let (n, p, d) = (self.x.nrows(), self.x.ncols(), self.dims());
        let mut hess = vec![0.0; d * d];
        let mut rows = vec![0.0; CHUNK * d];
        for start in (0..n).step_by(CHUNK) {
            stop.check()?;
            let count = CHUNK.min(n - start);
            // Row-major chunk: its transpose is a column-major d x count matrix.
            for (k, i) in (start..start + count).enumerate() {
                self.scaled_row(i, weights[i].sqrt(), &mut rows[k * d..(k + 1) * d]);
            }
            let (Ok(u), Ok(mut h)) = (
                ArrayView2::from_shape((d, count).f(), &rows[..count * d]),
                ArrayViewMut2::from_shape((d, d).f(), &mut hess[..]),
            ) else {
                return Err(NOT_DEFINITE); // not reached: the shapes are the slices'
            };
            general_mat_mul(1.0, &u, &u.t(), 1.0, &mut h);
        }
        for j in 0..p {
            hess[j * d + j] += self.inv_c;
        }
        if !cholesky_until(&mut hess, d, stop)? {
            return Err(NOT_DEFINITE);
        }
        let mut step = grad.to_vec();
        cholesky_solve(&hess, d, &mut step);
        Ok(step)
    }

    /// The same Newton step by conjugate gradients, for more columns than
    /// rows: the Hessian is applied without being formed (`O(n p)` a
    /// product). It is `I/C` plus a matrix of rank at most `n + 1`, so the
    /// iteration ends within about `n + 2` products; every one checks the
    /// stop flag. Each iterate is a descent direction, so a step cut short
    /// still serves the line search. (A Woodbury solve through the `n x n`
    /// system was tried first: it subtracts nearly equal vectors and lost
    /// the step on collinear meta features.)
    fn conjugate_gradient_step(
        &self,
        weights: &[f64],
        grad: &[f64],
        stop: &Stop,
    ) -> Result<Vec<f64>, FitError> {
        let (n, p) = self.x.dim();
        let d = self.dims();
        let s = ArrayView1::from(weights);
        let hessian_times = |v: &[f64]| -> Vec<f64> {
            let b = if self.intercept { v[p] } else { 0.0 };
            let z = self.x.dot(&ArrayView1::from(&v[..p])) + b;
            let sz = &z * &s;
            let mut out = self.x.t().dot(&sz).to_vec();
            for (o, vj) in out.iter_mut().zip(&v[..p]) {
                *o += self.inv_c * vj;
            }
            if self.intercept {
                out.push(sz.sum());
            }
            out
        };
        // Jacobi preconditioner: the Hessian's diagonal.
        let mut diagonal: Vec<f64> = (0..p)
            .map(|j| {
                let column = self.x.column(j);
                column
                    .iter()
                    .zip(weights)
                    .map(|(v, w)| w * v * v)
                    .sum::<f64>()
                    + self.inv_c
            })
            .collect();
        if self.intercept {
            diagonal.push(weights.iter().sum::<f64>().max(f64::MIN_POSITIVE));
        }
        let dot = |a: &[f64], b: &[f64]| -> f64 { a.iter().zip(b).map(|(x, y)| x * y).sum() };
        let target = 1e-10 * dot(grad, grad).sqrt();
        let mut step = vec![0.0; d];
        let mut residual = grad.to_vec();
        let mut direction: Vec<f64> = residual.iter().zip(&diagonal).map(|(r, m)| r / m).collect();
        let mut rz = dot(&residual, &direction);
        for _ in 0..(2 * n + 20).min(2 * d + 20) {
            stop.check()?;
            let q = hessian_times(&direction);
            let curvature = dot(&direction, &q);
            if curvature.is_nan() || curvature <= 0.0 {
                break;
            }
            let alpha = rz / curvature;
            for j in 0..d {
                step[j] += alpha * direction[j];
                residual[j] -= alpha * q[j];
            }
            if dot(&residual, &residual).sqrt() <= target {
                break;
            }
            let z: Vec<f64> = residual.iter().zip(&diagonal).map(|(r, m)| r / m).collect();
            let rz_next = dot(&residual, &z);
            let beta = rz_next / rz;
            rz = rz_next;
            for j in 0..d {
                direction[j] = z[j] + beta * direction[j];
            }
        }
        if step.iter().any(|v| !v.is_finite()) || dot(&step, grad) <= 0.0 {
            return Err(NOT_DEFINITE);
        }
        Ok(step)
    }
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;

    use super::*;
    use crate::stop::StopReason;

    /// A deterministic `n x p` design with labels that are not separable.
    fn data(n: usize, p: usize) -> (Array2<f64>, Vec<f64>) {
        let x = Array2::from_shape_fn((n, p), |(i, j)| {
            (((i * 7 + j * 13) % 17) as f64 - 8.0) / 8.0 + 0.01 * j as f64
        });
        let y = (0..n)
            .map(|i| f64::from(u8::from((i * 5) % 3 == 0)))
            .collect();
        (x, y)
    }

    /// Conjugate gradients find the Newton step the factorisation does,
    /// with and without the intercept, on collinear columns too.
    #[test]
    fn both_routes_take_the_same_newton_step() {
        for (n, p) in [(12, 30), (30, 12), (20, 20), (40, 90)] {
            let (x, y) = data(n, p);
            for intercept in [true, false] {
                let problem = Problem {
                    x: x.view(),
                    y: &y,
                    inv_c: 0.7,
                    intercept,
                };
                let d = problem.dims();
                let weights: Vec<f64> = (0..n).map(|i| 0.05 + (i % 4) as f64 * 0.05).collect();
                let grad: Vec<f64> = (0..d).map(|j| (j as f64 * 0.37).sin()).collect();
                let primal = problem
                    .primal_step(&weights, &grad, &Stop::never())
                    .unwrap();
                let cg = problem
                    .conjugate_gradient_step(&weights, &grad, &Stop::never())
                    .unwrap();
                let scale = primal.iter().map(|v| v.abs()).fold(1.0, f64::max);
                for (a, b) in primal.iter().zip(&cg) {
                    assert!((a - b).abs() < 1e-6 * scale, "{n}x{p}: {a} {b}");
                }
            }
        }
    }

    #[test]
    fn a_wide_fit_holds_no_square_of_its_columns() {
        let params = LogisticParams::DEFAULT;
        // 60 rows x 8,000 columns: vectors and a copy's worth, not 512 MB.
        assert!(params.fit_memory_bytes(60, 8_000) < 5 << 20);
        assert!(params.fit_memory_bytes(300, 5) < 1 << 20);
        assert!(params.fit_memory_bytes(100_000, 65_536) > 32 << 30);
        let (x, y) = data(60, 8_000);
        let model = params
            .newton(x.view(), ArrayView1::from(&y), &Stop::never())
            .unwrap();
        assert_eq!(model.coef.len(), 8_000);
        assert!(model.coef.iter().all(|c| c.is_finite()));
    }

    /// A stop flag set while a large fit runs ends it, well before the fit
    /// would have: it is checked in the rows' loops and between panels of
    /// the factorisation, not only between Newton steps.
    #[test]
    fn a_stop_during_a_large_step_ends_the_fit() {
        let (x, y) = data(2_500, 2_000);
        let stop = Stop::never();
        let setter = stop.clone();
        let started = std::time::Instant::now();
        let waker = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            setter.request(StopReason::Cancelled);
        });
        let out = LogisticParams::DEFAULT.newton(x.view(), ArrayView1::from(&y), &stop);
        waker.join().unwrap();
        assert_eq!(out.unwrap_err(), FitError::Stopped(StopReason::Cancelled));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}
