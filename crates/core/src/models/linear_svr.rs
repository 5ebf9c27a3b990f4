//! `LinearSVR`: liblinear's dual coordinate descent for L2-regularised
//! epsilon-insensitive (L1-loss) or squared epsilon-insensitive (L2-loss)
//! support vector regression (`solve_l2r_l1l2_svr`), with the bias as an extra
//! feature of value `intercept_scaling` that is regularised like the weights.

use ndarray::{ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::gram::RowGram;
use super::linalg::{axpy, dot};
use super::model::{Fitted, FoldsData, GramSolver, Model, Role, Rows};
use super::{FitError, LinearModel, Prepared};
use crate::params::{non_negative, positive, tolerance, ConfigError, ParamReader, SOLVER_ITER};
use crate::rng::NumpyRandomState;
use crate::stop::Stop;

/// The loss LinearSVR minimises (scikit-learn's `loss`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SvrLoss {
    /// `epsilon_insensitive`: the absolute error beyond epsilon (L1 loss).
    EpsilonInsensitive,
    /// `squared_epsilon_insensitive`: the squared error beyond epsilon (L2 loss).
    SquaredEpsilonInsensitive,
}

impl SvrLoss {
    fn as_str(self) -> &'static str {
        match self {
            SvrLoss::EpsilonInsensitive => "epsilon_insensitive",
            SvrLoss::SquaredEpsilonInsensitive => "squared_epsilon_insensitive",
        }
    }
}

/// Checked `LinearSVR` parameters (scikit-learn names and defaults), built
/// only by [`Model::parse`] or [`Model::DEFAULT`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearSvrParams {
    epsilon: f64,
    #[serde(rename = "C")]
    c: f64,
    tol: f64,
    loss: SvrLoss,
    fit_intercept: bool,
    intercept_scaling: f64,
    max_iter: usize,
    /// Seeds the order in which dual variables are visited.
    random_state: u32,
}

impl Model for LinearSvrParams {
    const NAME: &'static str = "LinearSVR";

    const ROLE: Role = Role::Regressor;
    const DEFAULT: Self = Self {
        epsilon: 0.0,
        c: 1.0,
        tol: 1e-4,
        loss: SvrLoss::EpsilonInsensitive,
        fit_intercept: true,
        intercept_scaling: 1.0,
        max_iter: 1000,
        random_state: 0,
    };
    const KNOWN: &'static [&'static str] = &[
        "epsilon",
        "C",
        "tol",
        "loss",
        "fit_intercept",
        "intercept_scaling",
        "max_iter",
        "random_state",
        "dual",
        "verbose",
    ];

    fn parse(r: &ParamReader<'_>) -> Result<Self, ConfigError> {
        r.ignored(&["verbose"]);
        match r.get("dual") {
            None | Some(Value::Bool(true)) => {}
            Some(Value::String(s)) if s == "auto" => {}
            Some(v @ Value::Bool(false)) => {
                return Err(r.range(
                    "dual",
                    v.to_string(),
                    "true or \"auto\" (only the dual solver is implemented)",
                ))
            }
            Some(v) => return Err(r.wrong("dual", "true, false or \"auto\"", v)),
        }
        let d = Self::DEFAULT;
        let loss = match r.choice(
            "loss",
            d.loss.as_str(),
            &["epsilon_insensitive", "squared_epsilon_insensitive"],
            "\"epsilon_insensitive\" or \"squared_epsilon_insensitive\"",
        )? {
            "squared_epsilon_insensitive" => SvrLoss::SquaredEpsilonInsensitive,
            _ => SvrLoss::EpsilonInsensitive,
        };
        Ok(Self {
            epsilon: r.float("epsilon", d.epsilon, non_negative, ">= 0")?,
            c: r.float("C", d.c, positive, "> 0")?,
            tol: r.float("tol", d.tol, tolerance, ">= 1e-15")?,
            loss,
            fit_intercept: r.bool("fit_intercept", d.fit_intercept)?,
            intercept_scaling: r.float(
                "intercept_scaling",
                d.intercept_scaling,
                positive,
                "> 0",
            )?,
            max_iter: r.count("max_iter", d.max_iter, SOLVER_ITER)?,
            random_state: r.seed()?,
        })
    }

    fn to_json(&self) -> Value {
        json!({
            "epsilon": self.epsilon, "C": self.c, "tol": self.tol, "loss": self.loss.as_str(),
            "fit_intercept": self.fit_intercept, "intercept_scaling": self.intercept_scaling,
            "max_iter": self.max_iter, "random_state": self.random_state,
        })
    }

    /// With more features than rows, a coordinate step reads `w·x_i` off
    /// the rows' Gram matrix (made once for all folds).
    fn fit(&self, data: &Rows<'_>, stop: &Stop) -> Fitted {
        data.fit_linear(self, stop)
    }

    fn prepare(&self, data: &FoldsData<'_>, _stop: &Stop) -> Prepared {
        RowGram::of_threads(data.x, data.threads).map_or(Prepared::Nothing, Prepared::RowGram)
    }

    fn max_iter(&self) -> Option<usize> {
        Some(self.max_iter)
    }
}

impl GramSolver for LinearSvrParams {
    /// Dual coordinate descent as liblinear's, stopping when `stop` is set.
    fn fit_on(
        &self,
        x: ArrayView2<f64>,
        y: ArrayView1<f64>,
        stop: &Stop,
    ) -> Result<LinearModel, FitError> {
        let x = x.as_standard_layout();
        let p = x.ncols();
        let rows = x.as_slice().ok_or(FitError::Numerical {
            model: "LinearSVR",
            reason: "feature matrix is not contiguous",
        })?;
        let bias = self.bias();
        let mut primal = Primal {
            rows,
            p,
            bias,
            w: vec![0.0; p],
            w_bias: 0.0,
        };
        let qd: Vec<f64> = rows
            .chunks_exact(p.max(1))
            .map(|r| dot(r, r) + bias * bias)
            .collect();
        let y: Vec<f64> = y.to_vec();
        let (_, iter) = self.solve(Dual {
            y: &y,
            qd: &qd,
            margins: &mut primal,
            stop,
        })?;
        finish(primal.w, primal.w_bias * bias, iter)
    }

    /// [`GramSolver::fit_on`] on the rows `rows` of `x`, reading `w·x_i`
    /// off the rows' Gram matrix (from `gram`, of all of `x`'s rows): a
    /// coordinate step then costs `O(n)` instead of `O(p)`, with the same
    /// visiting order, steps and stopping rule.
    fn fit_through_gram(
        &self,
        gram: &RowGram,
        x: ArrayView2<f64>,
        y: ArrayView1<f64>,
        rows: &[usize],
        stop: &Stop,
    ) -> Result<LinearModel, FitError> {
        let bias = self.bias();
        let n = rows.len();
        // Row-major, so that row i of K is one contiguous slice.
        let k: Vec<f64> = gram.select(rows, bias * bias).iter().copied().collect();
        let qd: Vec<f64> = (0..n).map(|i| k[i * n + i]).collect();
        let mut kernel = Kernel { k, g: vec![0.0; n] };
        let y_rows: Vec<f64> = rows.iter().map(|&r| y[r]).collect();
        let (beta, iter) = self.solve(Dual {
            y: &y_rows,
            qd: &qd,
            margins: &mut kernel,
            stop,
        })?;
        let mut w = ndarray::Array1::<f64>::zeros(x.ncols());
        for (&r, &b) in rows.iter().zip(&beta) {
            if b != 0.0 {
                w.scaled_add(b, &x.row(r));
            }
        }
        let w_bias: f64 = beta.iter().map(|b| b * bias).sum();
        finish(w.to_vec(), w_bias * bias, iter)
    }

}

impl LinearSvrParams {
    fn bias(&self) -> f64 {
        if self.fit_intercept {
            self.intercept_scaling
        } else {
            0.0
        }
    }

    /// liblinear's `solve_l2r_l1l2_svr`: the dual variables and the epochs
    /// run. Compiled a second time for AVX2 and chosen once per fit where
    /// the CPU has it, as [`super::elastic_net`]'s descent is: a step's
    /// update of the margins (or weights) then runs four values to an
    /// instruction instead of baseline x86-64's two. No FMA, so every
    /// product and sum is rounded as in the baseline build (tested).
    fn solve(&self, dual: Dual<'_, impl Margins>) -> Result<(Vec<f64>, usize), FitError> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { self.solve_avx2(dual) };
        }
        self.solve_here(dual)
    }

    /// [`Self::solve_here`] compiled for AVX2.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn solve_avx2(
        &self,
        dual: Dual<'_, impl Margins>,
    ) -> Result<(Vec<f64>, usize), FitError> {
        self.solve_here(dual)
    }

    /// The solver itself, inlined into each of the builds `solve` chooses from.
    #[inline(always)]
    fn solve_here(
        &self,
        Dual {
            y,
            qd,
            margins,
            stop,
        }: Dual<'_, impl Margins>,
    ) -> Result<(Vec<f64>, usize), FitError> {
        let n = y.len();
        let (lambda, upper) = match self.loss {
            SvrLoss::EpsilonInsensitive => (0.0, self.c),
            SvrLoss::SquaredEpsilonInsensitive => (0.5 / self.c, f64::INFINITY),
        };
        let mut beta = vec![0.0f64; n];
        let mut index: Vec<usize> = (0..n).collect();
        let mut active = n;
        let mut rng = NumpyRandomState::new(self.random_state);
        let mut gmax_old = f64::INFINITY;
        let mut gnorm1_init = -1.0;
        let mut iter = 0;
        while iter < self.max_iter {
            stop.check()?;
            let mut gmax_new = 0.0f64;
            let mut gnorm1_new = 0.0f64;
            for i in 0..active {
                let j = i + rng.bounded_u32((active - i - 1) as u32) as usize;
                index.swap(i, j);
            }
            let mut s = 0;
            while s < active {
                let i = index[s];
                let g = -y[i] + lambda * beta[i] + margins.margin(i);
                let h = qd[i] + lambda;
                let gp = g + self.epsilon;
                let gn = g - self.epsilon;
                let mut violation = 0.0;
                let mut shrink = false;
                if beta[i] == 0.0 {
                    if gp < 0.0 {
                        violation = -gp;
                    } else if gn > 0.0 {
                        violation = gn;
                    } else if gp > gmax_old && gn < -gmax_old {
                        shrink = true;
                    }
                } else if beta[i] >= upper {
                    if gp > 0.0 {
                        violation = gp;
                    } else if gp < -gmax_old {
                        shrink = true;
                    }
                } else if beta[i] <= -upper {
                    if gn < 0.0 {
                        violation = -gn;
                    } else if gn > gmax_old {
                        shrink = true;
                    }
                } else if beta[i] > 0.0 {
                    violation = gp.abs();
                } else {
                    violation = gn.abs();
                }
                if shrink {
                    active -= 1;
                    index.swap(s, active);
                    continue;
                }
                gmax_new = gmax_new.max(violation);
                gnorm1_new += violation;
                let d = if gp < h * beta[i] {
                    -gp / h
                } else if gn > h * beta[i] {
                    -gn / h
                } else {
                    -beta[i]
                };
                s += 1;
                if d.abs() < 1.0e-12 {
                    continue;
                }
                let old = beta[i];
                beta[i] = (beta[i] + d).clamp(-upper, upper);
                let d = beta[i] - old;
                if d != 0.0 {
                    margins.step(i, d);
                }
            }
            if iter == 0 {
                gnorm1_init = gnorm1_new;
            }
            iter += 1;
            if gnorm1_new <= self.tol * gnorm1_init {
                if active == n {
                    break;
                }
                active = n;
                gmax_old = f64::INFINITY;
                continue;
            }
            gmax_old = gmax_new;
        }
        Ok((beta, iter))
    }
}

/// What one run of the dual solver works on: the targets, the diagonal of
/// the (regularised) Gram matrix, the margins it updates, and the flag that
/// stops it.
struct Dual<'a, M> {
    y: &'a [f64],
    qd: &'a [f64],
    margins: &'a mut M,
    stop: &'a Stop,
}

/// What the dual solver needs of the primal: `w·x_i` (bias term included)
/// and the step `w += d·x_i`.
trait Margins {
    fn margin(&self, i: usize) -> f64;
    fn step(&mut self, i: usize, d: f64);
}

/// The weights themselves: `O(p)` per margin and per step.
#[cfg_attr(test, derive(Clone))]
struct Primal<'a> {
    rows: &'a [f64],
    p: usize,
    bias: f64,
    w: Vec<f64>,
    w_bias: f64,
}

impl Margins for Primal<'_> {
    #[inline(always)]
    fn margin(&self, i: usize) -> f64 {
        dot(&self.w, &self.rows[i * self.p..(i + 1) * self.p]) + self.w_bias * self.bias
    }

    #[inline(always)]
    fn step(&mut self, i: usize, d: f64) {
        axpy(d, &self.rows[i * self.p..(i + 1) * self.p], &mut self.w);
        self.w_bias += d * self.bias;
    }
}

/// Every margin kept up to date through the Gram matrix: `O(1)` per margin,
/// `O(n)` per step.
#[cfg_attr(test, derive(Clone))]
struct Kernel {
    /// The n x n Gram matrix (bias included), row-major.
    k: Vec<f64>,
    g: Vec<f64>,
}

impl Margins for Kernel {
    #[inline(always)]
    fn margin(&self, i: usize) -> f64 {
        self.g[i]
    }

    #[inline(always)]
    fn step(&mut self, i: usize, d: f64) {
        let n = self.g.len();
        axpy(d, &self.k[i * n..(i + 1) * n], &mut self.g);
    }
}

/// The model, refused if the weights diverged.
fn finish(w: Vec<f64>, intercept: f64, n_iter: usize) -> Result<LinearModel, FitError> {
    if w.iter().any(|v| !v.is_finite()) || !intercept.is_finite() {
        return Err(FitError::Numerical {
            model: "LinearSVR",
            reason: "weights diverged",
        });
    }
    Ok(LinearModel {
        coef: w,
        intercept,
        n_iter,
    })
}

#[cfg(test)]
mod tests {
    use ndarray::Axis;

    use super::*;
    use crate::dataset::generated;

    #[test]
    fn fold_fits_through_the_gram_matrix_take_the_same_steps_as_through_the_weights() {
        let ds = generated(60, 200);
        let (x, y) = (ds.x(), ds.y());
        let gram = RowGram::of(x.view()).unwrap();
        let rows: Vec<usize> = (0..60).filter(|i| i % 5 != 3).collect();
        let (xr, yr) = (x.select(Axis(0), &rows), y.select(Axis(0), &rows));
        for loss in [
            SvrLoss::EpsilonInsensitive,
            SvrLoss::SquaredEpsilonInsensitive,
        ] {
            for fit_intercept in [true, false] {
                let p = LinearSvrParams {
                    loss,
                    fit_intercept,
                    tol: 1e-6,
                    ..LinearSvrParams::DEFAULT
                };
                let kernel = p
                    .fit_through_gram(&gram, x.view(), y.view(), &rows, &Stop::never())
                    .unwrap();
                let primal = p.fit_on(xr.view(), yr.view(), &Stop::never()).unwrap();
                assert_eq!(kernel.n_iter, primal.n_iter, "{loss:?} {fit_intercept}");
                let diff = kernel
                    .coef
                    .iter()
                    .zip(&primal.coef)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                assert!(diff < 1e-9, "{loss:?} {fit_intercept}: {diff}");
                assert!((kernel.intercept - primal.intercept).abs() < 1e-9);
            }
        }
    }

    /// Both builds of the solver on copies of `margins`: their dual
    /// variables, epochs, and margins after.
    #[cfg(target_arch = "x86_64")]
    fn both_builds<M: Margins + Clone>(
        p: &LinearSvrParams,
        y: &[f64],
        qd: &[f64],
        margins: &M,
    ) -> [((Vec<f64>, usize), M); 2] {
        let stop = Stop::never();
        let (mut a, mut b) = (margins.clone(), margins.clone());
        let dual = |margins| Dual {
            y,
            qd,
            margins,
            stop: &stop,
        };
        let baseline = p.solve_here(dual(&mut a)).unwrap();
        // SAFETY: only called where the CPU has AVX2.
        let avx2 = unsafe { p.solve_avx2(dual(&mut b)) }.unwrap();
        [(baseline, a), (avx2, b)]
    }

    /// The AVX2 build of the dual solver takes the very same steps as the
    /// baseline build, bit for bit, through the weights and through the
    /// Gram matrix, for both losses, where the CPU has AVX2.
    #[test]
    fn the_avx2_solver_is_the_baseline_solver_bit_for_bit() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            let bits = |v: &[f64]| v.iter().map(|b| b.to_bits()).collect::<Vec<_>>();
            // More rows than features: the solver steps on the weights.
            let tall = generated(150, 64);
            let (x, p) = (tall.x().as_slice().unwrap(), tall.n_features());
            let primal = Primal {
                rows: x,
                p,
                bias: 1.0,
                w: vec![0.0; p],
                w_bias: 0.0,
            };
            let qd_tall: Vec<f64> = x.chunks_exact(p).map(|r| dot(r, r) + 1.0).collect();
            // More features than rows: it steps on the Gram matrix.
            let wide = generated(60, 200);
            let n = wide.n_samples();
            let all: Vec<usize> = (0..n).collect();
            let k: Vec<f64> = RowGram::of(wide.x().view()).unwrap().select(&all, 1.0).iter().copied().collect();
            let qd_wide: Vec<f64> = (0..n).map(|i| k[i * n + i]).collect();
            let kernel = Kernel { k, g: vec![0.0; n] };
            for loss in [
                SvrLoss::EpsilonInsensitive,
                SvrLoss::SquaredEpsilonInsensitive,
            ] {
                let params = LinearSvrParams {
                    loss,
                    tol: 1e-6,
                    ..LinearSvrParams::DEFAULT
                };
                let y = tall.y().to_vec();
                let [(base, a), (avx2, b)] = both_builds(&params, &y, &qd_tall, &primal);
                assert!(base.1 > 1, "{loss:?}: one epoch proves little");
                assert_eq!((base.1, bits(&base.0)), (avx2.1, bits(&avx2.0)), "{loss:?}");
                assert_eq!(bits(&a.w), bits(&b.w), "{loss:?}");
                let y = wide.y().to_vec();
                let [(base, a), (avx2, b)] = both_builds(&params, &y, &qd_wide, &kernel);
                assert!(base.1 > 1, "{loss:?}: one epoch proves little");
                assert_eq!((base.1, bits(&base.0)), (avx2.1, bits(&avx2.0)), "{loss:?}");
                assert_eq!(bits(&a.g), bits(&b.g), "{loss:?}");
            }
        }
    }
}
