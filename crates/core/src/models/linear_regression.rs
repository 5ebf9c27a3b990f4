//! `LinearRegression` and `Ridge`: least squares on centred data, for
//! LinearRegression the minimum-norm solution when there are more features
//! than rows, for Ridge with an L2 penalty (scikit-learn's `cholesky` solver,
//! what its `solver="auto"` picks for a dense X). One parameters type,
//! [`LeastSquaresParams`], serves both.
//!
//! The solution is `w = Xc^T U diag(1/λ) U^T yc` from the eigendecomposition of
//! the smaller Gram matrix (`Xc Xc^T` when p > n, else `Xc^T Xc` with
//! `w = V diag(1/λ) V^T Xc^T yc`). Eigenvalues below `1e-12 · λ_max` count as
//! zero, which is scikit-learn 1.9's `lstsq(cond=1e-6)` cut-off on singular
//! values; this is what makes the result robust to rank deficiency (centring
//! alone removes one rank).

use ndarray::{Array2, ArrayView1, ArrayView2, Axis};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::gram::RowGram;
use super::linalg::{self, cholesky_until};
use super::model::{Fitted, FoldsData, GramSolver, Model, Role, Rows};
use super::{FitError, LinearModel, Prepared};
use crate::params::{non_negative, ConfigError, ParamReader};
use crate::stop::Stop;

/// Checked `LinearRegression` parameters.
pub type LinearRegressionParams = LeastSquaresParams<false>;

/// Checked least-squares parameters: `LinearRegression`'s, or with `RIDGE`
/// `Ridge`'s (which add `alpha`, the L2 penalty), built only by
/// [`Model::parse`] or [`Model::DEFAULT`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeastSquaresParams<const RIDGE: bool> {
    alpha: f64,
    fit_intercept: bool,
}

impl<const RIDGE: bool> Model for LeastSquaresParams<RIDGE> {
    const NAME: &'static str = if RIDGE { "Ridge" } else { "LinearRegression" };
    const ROLE: Role = Role::Regressor;
    const DEFAULT: Self = Self {
        alpha: if RIDGE { 1.0 } else { 0.0 },
        fit_intercept: true,
    };
    const KNOWN: &'static [&'static str] = if RIDGE {
        &[
            "alpha",
            "fit_intercept",
            "copy_X",
            "max_iter",
            "tol",
            "solver",
            "positive",
            "random_state",
        ]
    } else {
        &["fit_intercept", "copy_X", "n_jobs", "positive"]
    };

    fn parse(r: &ParamReader<'_>) -> Result<Self, ConfigError> {
        // Ridge's `max_iter`, `tol` and `random_state` steer only its
        // iterative solvers; the direct solve has no use for them.
        r.ignored(&["copy_X", "n_jobs", "max_iter", "tol", "random_state"]);
        r.must_be_false("positive", "false (non-negative coefficients are not implemented)")?;
        let d = Self::DEFAULT;
        let alpha = if RIDGE {
            r.choice(
                "solver",
                "auto",
                &["auto", "cholesky"],
                "\"auto\" or \"cholesky\" (the direct solve; the iterative solvers are not implemented)",
            )?;
            r.float("alpha", d.alpha, non_negative, ">= 0")?
        } else {
            d.alpha
        };
        Ok(Self {
            alpha,
            fit_intercept: r.bool("fit_intercept", d.fit_intercept)?,
        })
    }

    fn to_json(&self) -> Value {
        let mut params = json!({"fit_intercept": self.fit_intercept});
        if RIDGE {
            params["alpha"] = json!(self.alpha);
        }
        params
    }

    /// Through the rows' Gram matrix when `prepare` made it (more features
    /// than rows), else on the rows themselves.
    fn fit(&self, data: &Rows<'_>, stop: &Stop) -> Fitted {
        data.fit_linear(&self.problem(), stop)
    }

    /// With more features than rows, the rows' Gram matrix, once for all
    /// folds.
    fn prepare(&self, data: &FoldsData<'_>, _stop: &Stop) -> Prepared {
        RowGram::of_threads(data.x, data.threads).map_or(Prepared::Nothing, Prepared::RowGram)
    }
}

/// scikit-learn's `cond` for `scipy.linalg.lstsq`, squared for eigenvalues.
const EIGEN_CUTOFF: f64 = 1e-12;

impl<const RIDGE: bool> LeastSquaresParams<RIDGE> {
    /// The problem these parameters pose: least squares, minimum-norm
    /// without a penalty.
    pub fn problem(&self) -> LeastSquares {
        LeastSquares {
            model: Self::NAME,
            fit_intercept: self.fit_intercept,
            ridge: self.alpha,
        }
    }
}

/// A least-squares problem, `min ||y - X w - b||² + ridge ||w||²`: what
/// LinearRegression (`ridge` 0, the minimum-norm solution) and Ridge share.
/// Solved through the smaller Gram matrix, `XᵀX` or (more features than
/// rows) `XXᵀ`.
#[derive(Debug, Clone, Copy)]
pub struct LeastSquares {
    /// The model's name, for errors.
    pub model: &'static str,
    /// Centre X and y first, and fit the intercept.
    pub fit_intercept: bool,
    /// The L2 penalty (Ridge's `alpha`); 0 for ordinary least squares.
    pub ridge: f64,
}

impl GramSolver for LeastSquares {
    /// One decomposition of the smaller Gram matrix: not interruptible
    /// inside, so `stop` is checked before and after it.
    fn fit_on(
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
            let alpha = self.solve(
                gram,
                self.fit_intercept,
                yc.as_slice()
                    .map(|s| s.to_vec())
                    .unwrap_or_else(|| yc.to_vec()),
                stop,
            )?;
            xc.t().dot(&ndarray::Array1::from(alpha))
        } else {
            let gram = xc.t().dot(&xc);
            let rhs = xc.t().dot(&yc);
            ndarray::Array1::from(self.solve(gram, false, rhs.to_vec(), stop)?)
        };
        stop.check()?;
        self.finish(coef, &x_mean, y_mean)
    }

    fn fit_through_gram(
        &self,
        gram: &RowGram,
        x: ArrayView2<f64>,
        y: ArrayView1<f64>,
        rows: &[usize],
        stop: &Stop,
    ) -> Result<LinearModel, FitError> {
        stop.check()?;
        let n = rows.len();
        let p = x.ncols();
        let mut g = gram.select(rows, 0.0);
        let y_rows: Vec<f64> = rows.iter().map(|&r| y[r]).collect();
        let mut x_mean = ndarray::Array1::<f64>::zeros(p);
        let mut y_mean = 0.0;
        if self.fit_intercept {
            // (X - 1 x̄ᵀ)(X - 1 x̄ᵀ)ᵀ = K - a 1ᵀ - 1 aᵀ + c, with a = K 1 / n
            // and c = 1ᵀ K 1 / n².
            let a: Vec<f64> = g.rows().into_iter().map(|r| r.sum() / n as f64).collect();
            let c = a.iter().sum::<f64>() / n as f64;
            // Row by row over plain slices, not an indexed iterator (its
            // cost: docs/benchmarks.md); the same operations in the same order.
            for (mut row, &ai) in g.rows_mut().into_iter().zip(&a) {
                for (v, &aj) in row.iter_mut().zip(&a) {
                    *v = *v - ai - aj + c;
                }
            }
            for &r in rows {
                x_mean += &x.row(r);
            }
            x_mean /= n as f64;
            y_mean = y_rows.iter().sum::<f64>() / n as f64;
        }
        let yc: Vec<f64> = y_rows.iter().map(|v| v - y_mean).collect();
        let alpha = self.solve(g, self.fit_intercept, yc, stop)?;
        // Xcᵀ α = Xᵀ α - x̄ Σα, row by row.
        let mut coef = ndarray::Array1::<f64>::zeros(p);
        for (&r, &a) in rows.iter().zip(&alpha) {
            coef.scaled_add(a, &x.row(r));
        }
        let alpha_sum: f64 = alpha.iter().sum();
        coef.scaled_add(-alpha_sum, &x_mean);
        stop.check()?;
        self.finish(coef, &x_mean, y_mean)
    }

}

impl LeastSquares {
    /// `(G + ridge·I)⁻¹ b`, or with no ridge `G⁺ b` (`b` orthogonal to the
    /// ones vector when `centred`).
    fn solve(
        &self,
        mut gram: Array2<f64>,
        centred: bool,
        b: Vec<f64>,
        stop: &Stop,
    ) -> Result<Vec<f64>, FitError> {
        if self.ridge > 0.0 {
            // Positive definite: one Cholesky factorisation, as
            // scikit-learn's `cholesky` solver; the pseudo-inverse only if
            // rounding defeats it.
            gram.diag_mut().mapv_inplace(|v| v + self.ridge);
            return match ridge_cholesky(&gram, &b, stop)? {
                Some(x) => Ok(x),
                None => pseudo_solve(self.model, &gram, b),
            };
        }
        match cholesky_solve(&gram, centred, &b, stop)? {
            Some(x) => Ok(x),
            None => pseudo_solve(self.model, &gram, b),
        }
    }

    /// The model from its coefficients, refused if they are not finite.
    fn finish(
        &self,
        coef: ndarray::Array1<f64>,
        x_mean: &ndarray::Array1<f64>,
        y_mean: f64,
    ) -> Result<LinearModel, FitError> {
        if coef.iter().any(|v| !v.is_finite()) {
            return Err(FitError::Numerical {
                model: self.model,
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

/// The lower Cholesky factor of the symmetric `a` (column major), or `None`
/// when it is not positive definite.
fn cholesky(a: &Array2<f64>, stop: &Stop) -> Result<Option<Vec<f64>>, FitError> {
    let m = a.nrows();
    // Row-major order of a symmetric matrix is its column-major order.
    let mut l: Vec<f64> = a.iter().copied().collect();
    Ok(cholesky_until(&mut l, m, stop)?.then_some(l))
}

/// `A⁻¹ b` for a positive definite `A` by Cholesky; `None` where the
/// factorisation fails or the solution is not finite.
fn ridge_cholesky(a: &Array2<f64>, b: &[f64], stop: &Stop) -> Result<Option<Vec<f64>>, FitError> {
    let Some(l) = cholesky(a, stop)? else {
        return Ok(None);
    };
    let mut x = b.to_vec();
    linalg::cholesky_solve(&l, a.nrows(), &mut x);
    Ok(x.iter().all(|v| v.is_finite()).then_some(x))
}

/// Largest condition number for which the Cholesky path is taken: far below
/// the `1e12` at which the eigenvalue cut-off would drop an eigenvalue, and
/// low enough that the Cholesky solution agrees with the pseudo-inverse to
/// about `1e-10` relative.
const CHOLESKY_MAX_CONDITION: f64 = 1e6;

/// `G^+ b` for a symmetric positive semi-definite `G` (with `b` orthogonal
/// to the ones vector when `centred`, the null space centring gives `G`),
/// when `G` is well conditioned apart from that null space: nothing then
/// falls under the cut-off, and `G^+ b` is the solution of
/// `(G + s·11ᵀ/n) x = b`, one Cholesky factorisation instead of a full
/// eigendecomposition (which took about six times as long at 240 x 240).
/// The condition is estimated by inverse iteration on the factor; `None`
/// for anything not clearly well conditioned, which goes the
/// eigendecomposition's way, with its exact cut-off.
fn cholesky_solve(
    gram: &Array2<f64>,
    centred: bool,
    b: &[f64],
    stop: &Stop,
) -> Result<Option<Vec<f64>>, FitError> {
    let m = gram.nrows();
    if m == 0 {
        return Ok(None);
    }
    let trace: f64 = (0..m).map(|i| gram[[i, i]]).sum();
    if !(trace.is_finite() && trace > 0.0) {
        return Ok(None);
    }
    // The centring null space (the ones vector) gets a typical eigenvalue.
    let shift = if centred { trace / (m * m) as f64 } else { 0.0 };
    let Some(l) = cholesky(&gram.mapv(|v| v + shift), stop)? else {
        return Ok(None);
    };
    let norm = |v: &[f64]| linalg::dot(v, v).sqrt();
    // λ_max(A) ≤ trace(A); λ_min(A) from four steps of inverse iteration,
    // from a start with a component along every eigenvector.
    let lambda_max = trace + shift * m as f64;
    let mut v: Vec<f64> = (0..m)
        .map(|i| 1.0 + ((i * 7919) % 101) as f64 / 101.0)
        .collect();
    let mut lambda_min = f64::INFINITY;
    for _ in 0..4 {
        let before = norm(&v);
        linalg::cholesky_solve(&l, m, &mut v);
        let grown = norm(&v) / before;
        if !(grown.is_finite() && grown > 0.0) {
            return Ok(None);
        }
        lambda_min = 1.0 / grown;
    }
    if lambda_max > CHOLESKY_MAX_CONDITION * lambda_min {
        return Ok(None);
    }
    let mut x = b.to_vec();
    linalg::cholesky_solve(&l, m, &mut x);
    Ok(x.iter().all(|v| v.is_finite()).then_some(x))
}

/// `G^+ b` for a symmetric positive semi-definite `G`, through its
/// eigendecomposition (nalgebra's): eigenvalues under the cut-off count as
/// zero.
fn pseudo_solve(model: &'static str, gram: &Array2<f64>, b: Vec<f64>) -> Result<Vec<f64>, FitError> {
    let m = gram.nrows();
    let g = nalgebra::DMatrix::<f64>::from_fn(m, m, |i, j| gram[[i, j]]);
    // The implicit QR iteration takes two or three steps per eigenvalue;
    // LAPACK gives up after 30, and so does this (0 would mean no bound).
    let eig = nalgebra::SymmetricEigen::try_new(g, f64::EPSILON, 30 * m + 30).ok_or(FitError::Numerical {
        model,
        reason: "eigendecomposition did not converge",
    })?;
    let (values, vectors) = (&eig.eigenvalues, &eig.eigenvectors);
    let lambda_max = values.iter().copied().fold(0.0f64, f64::max);
    let cutoff = EIGEN_CUTOFF * lambda_max;
    let mut out = vec![0.0; m];
    for (k, &l) in values.iter().enumerate() {
        if l <= cutoff {
            continue;
        }
        let u = vectors.column(k);
        let coeff = (0..m).map(|i| u[i] * b[i]).sum::<f64>() / l;
        for (i, o) in out.iter_mut().enumerate() {
            *o += coeff * u[i];
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use ndarray::{s, Array1};

    use super::*;
    use crate::dataset::generated;

    fn data(rows: usize, cols: usize) -> (Array2<f64>, Array1<f64>) {
        let ds = generated(rows, cols);
        (ds.x().clone(), ds.y().clone())
    }

    fn max_diff(a: &[f64], b: &[f64]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    }

    /// The fold fit through the rows' Gram matrix and the fit on the rows
    /// alone solve the same system, with and without the intercept and the
    /// penalty.
    #[test]
    fn fold_fits_from_the_shared_gram_equal_fits_on_the_rows_alone() {
        let (x, y) = data(60, 200);
        let gram = RowGram::of(x.view()).unwrap();
        let rows: Vec<usize> = (0..60).filter(|i| i % 5 != 2).collect();
        let (xr, yr) = (x.select(Axis(0), &rows), y.select(Axis(0), &rows));
        for fit_intercept in [true, false] {
            for ridge in [0.0, 0.5] {
                let problem = LeastSquares {
                    model: "test",
                    fit_intercept,
                    ridge,
                };
                let shared = problem
                    .fit_through_gram(&gram, x.view(), y.view(), &rows, &Stop::never())
                    .unwrap();
                let alone = problem.fit_on(xr.view(), yr.view(), &Stop::never()).unwrap();
                assert!(
                    max_diff(&shared.coef, &alone.coef) < 1e-10,
                    "{fit_intercept} {ridge}"
                );
                assert!((shared.intercept - alone.intercept).abs() < 1e-10);
            }
        }
    }

    /// Ridge's coefficients solve `(XcᵀXc + alpha I) w = Xcᵀyc`.
    #[test]
    fn ridge_coefficients_solve_the_penalised_normal_equations() {
        let (x, y) = data(50, 8);
        let problem = LeastSquares {
            model: "Ridge",
            fit_intercept: true,
            ridge: 3.0,
        };
        let model = problem.fit_on(x.view(), y.view(), &Stop::never()).unwrap();
        let xc: Array2<f64> = &x - &x.mean_axis(Axis(0)).unwrap().insert_axis(Axis(0));
        let yc: Array1<f64> = &y - y.mean().unwrap();
        let w = Array1::from(model.coef.clone());
        let residual = xc.t().dot(&xc).dot(&w) + 3.0 * &w - xc.t().dot(&yc);
        assert!(residual.iter().all(|r| r.abs() < 1e-9), "{residual}");
    }

    #[test]
    fn a_rank_deficient_gram_takes_the_eigendecomposition_and_its_cut_off() {
        // Rows 30..40 repeat rows 0..10: the centred Gram matrix loses ten
        // more ranks, which only the eigenvalue cut-off handles.
        let (x, y) = data(40, 100);
        let mut x = x;
        let head = x.slice(s![0..10, ..]).to_owned();
        x.slice_mut(s![30..40, ..]).assign(&head);
        let mean = x.mean_axis(Axis(0)).unwrap();
        let xc = &x - &mean.insert_axis(Axis(0));
        let gram = xc.dot(&xc.t());
        let yc: Vec<f64> = y.iter().map(|v| v - y.mean().unwrap()).collect();
        assert!(cholesky_solve(&gram, true, &yc, &Stop::never()).unwrap().is_none());
        let ols = LinearRegressionParams::DEFAULT.problem();
        assert_eq!(
            ols.solve(gram.clone(), true, yc.clone(), &Stop::never()).unwrap(),
            pseudo_solve("LinearRegression", &gram, yc).unwrap()
        );
    }

    #[test]
    fn a_well_conditioned_gram_takes_cholesky_with_the_same_solution() {
        let (x, y) = data(50, 150);
        let mean = x.mean_axis(Axis(0)).unwrap();
        let xc = &x - &mean.insert_axis(Axis(0));
        let gram = xc.dot(&xc.t());
        let yc: Vec<f64> = y.iter().map(|v| v - y.mean().unwrap()).collect();
        let fast = cholesky_solve(&gram, true, &yc, &Stop::never())
            .unwrap()
            .expect("well conditioned");
        let exact = pseudo_solve("LinearRegression", &gram, yc).unwrap();
        let scale = exact.iter().map(|v| v.abs()).fold(0.0, f64::max);
        assert!(max_diff(&fast, &exact) <= 1e-10 * scale);
    }
}
