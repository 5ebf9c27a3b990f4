//! `ElasticNet` and `Lasso`: scikit-learn's cyclic coordinate descent
//! (`enet_coordinate_descent`) on centred data, stopping on the duality gap.
//! Lasso is ElasticNet with no L2 term (`l1_ratio` 1), as in scikit-learn:
//! one parameters type, [`DescentParams`], serves both.
//!
//! Objective: `(1 / (2 n)) ||y - X w - b||^2 + alpha l1_ratio ||w||_1
//! + (alpha (1 - l1_ratio) / 2) ||w||^2`.
//!
//! The duality gap follows scikit-learn's three cases: with an L1 term its
//! formulation A (a rescaled residual as the dual point), with only an L2
//! term its formulation B, and with neither the squared gradient.

use ndarray::{Array1, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::linalg::{axpy, column_major, dot};
use super::model::{Fitted, FoldsData, Model, Role, Rows};
use super::{FitError, FittedState, LinearModel, Prepared};
use crate::params::{non_negative, tolerance, ConfigError, ParamReader, SOLVER_ITER};
use crate::stop::Stop;

/// Checked `ElasticNet` parameters.
pub type ElasticNetParams = DescentParams<false>;

/// Checked `ElasticNet` parameters (with `LASSO`, `Lasso`'s: `l1_ratio`
/// fixed at 1 and not a parameter): built only by [`Model::parse`] (or
/// [`Model::DEFAULT`]), so every value is within its documented bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DescentParams<const LASSO: bool> {
    alpha: f64,
    l1_ratio: f64,
    fit_intercept: bool,
    max_iter: usize,
    tol: f64,
}

/// ElasticNet's parameters; Lasso has them all but the first.
const KNOWN: &[&str] = &[
    "l1_ratio",
    "alpha",
    "fit_intercept",
    "max_iter",
    "tol",
    "precompute",
    "copy_X",
    "warm_start",
    "positive",
    "selection",
    "random_state",
];

impl<const LASSO: bool> Model for DescentParams<LASSO> {
    const NAME: &'static str = if LASSO { "Lasso" } else { "ElasticNet" };
    const ROLE: Role = Role::Regressor;
    const DEFAULT: Self = Self {
        alpha: 1.0,
        l1_ratio: if LASSO { 1.0 } else { 0.5 },
        fit_intercept: true,
        max_iter: 1000,
        tol: 1e-4,
    };
    const KNOWN: &'static [&'static str] = if LASSO { KNOWN.split_at(1).1 } else { KNOWN };

    fn parse(r: &ParamReader<'_>) -> Result<Self, ConfigError> {
        r.ignored(&["copy_X", "random_state"]);
        r.must_be_false("precompute", "false (the Gram matrix is never precomputed)")?;
        r.must_be_false("warm_start", "false (every fit starts from zero)")?;
        r.must_be_false(
            "positive",
            "false (positive-only coefficients are not implemented)",
        )?;
        r.choice(
            "selection",
            "cyclic",
            &["cyclic"],
            "\"cyclic\" (random selection is not implemented)",
        )?;
        let d = Self::DEFAULT;
        let in_unit = |v: f64| (0.0..=1.0).contains(&v);
        Ok(Self {
            alpha: r.float("alpha", d.alpha, non_negative, ">= 0")?,
            l1_ratio: match LASSO {
                true => d.l1_ratio,
                false => r.float("l1_ratio", d.l1_ratio, in_unit, "in [0, 1]")?,
            },
            fit_intercept: r.bool("fit_intercept", d.fit_intercept)?,
            max_iter: r.count("max_iter", d.max_iter, SOLVER_ITER)?,
            tol: r.float("tol", d.tol, tolerance, ">= 1e-15")?,
        })
    }

    fn to_json(&self) -> Value {
        let mut params = json!({
            "alpha": self.alpha, "fit_intercept": self.fit_intercept,
            "max_iter": self.max_iter, "tol": self.tol,
        });
        if !LASSO {
            params["l1_ratio"] = json!(self.l1_ratio);
        }
        params
    }

    /// Through X column by column, made once for every fold's fit (or here).
    fn fit(&self, data: &Rows<'_>, stop: &Stop) -> Fitted {
        let made;
        let all = match data.prepared {
            Prepared::ColumnMajor(all) => all,
            _ => {
                made = ColumnMajor::of(data.x);
                &made
            }
        };
        self.problem()
            .fit_rows(data.x, all, data.y, data.rows, stop)
            .map(FittedState::Linear)
    }

    fn prepare(&self, data: &FoldsData<'_>, _stop: &Stop) -> Prepared {
        Prepared::ColumnMajor(ColumnMajor::of(data.x))
    }

    fn max_iter(&self) -> Option<usize> {
        Some(self.max_iter)
    }
}

impl<const LASSO: bool> DescentParams<LASSO> {
    /// The problem these parameters pose, with scikit-learn's split of
    /// `alpha` into the two penalties.
    pub fn problem(&self) -> CoordinateDescent {
        CoordinateDescent {
            model: Self::NAME,
            l1: self.alpha * self.l1_ratio,
            l2: self.alpha * (1.0 - self.l1_ratio),
            fit_intercept: self.fit_intercept,
            max_iter: self.max_iter,
            tol: self.tol,
        }
    }
}

/// One elastic-net problem for the coordinate descent: the per-row
/// penalties (scikit-learn's `alpha · l1_ratio` and `alpha · (1 - l1_ratio)`,
/// scaled by the rows inside), and the stopping rule.
#[derive(Debug, Clone, Copy)]
pub struct CoordinateDescent {
    /// The model's name, for errors.
    pub model: &'static str,
    /// The L1 penalty per row.
    pub l1: f64,
    /// The L2 penalty per row.
    pub l2: f64,
    /// Centre X and y first, and fit the intercept.
    pub fit_intercept: bool,
    /// The most passes over the coordinates.
    pub max_iter: usize,
    /// The tolerance on the coefficient change and (times `||y||²`) the gap.
    pub tol: f64,
}

/// The rows of a fit as coordinate descent reads them, before centring: all
/// of X in column-major order, made once for every fold's fit.
pub struct ColumnMajor {
    data: Vec<f64>,
    rows: usize,
}

impl ColumnMajor {
    /// `x`, column by column.
    pub fn of(x: ArrayView2<f64>) -> Self {
        Self {
            data: column_major(x),
            rows: x.nrows(),
        }
    }
}

/// `rows` as runs of consecutive rows, `(first, length)`.
fn runs(rows: &[usize]) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &i in rows {
        match runs.last_mut() {
            Some((first, len)) if *first + *len == i => *len += 1,
            _ => runs.push((i, 1)),
        }
    }
    runs
}

/// The rows of one fit: column-major, centred when the intercept is fitted,
/// with the columns' squared norms and products with the targets.
struct Columns {
    /// `n x p`, column `j` at `data[j * n..(j + 1) * n]`.
    data: Vec<f64>,
    n: usize,
    /// The column means (zero when not centred).
    means: Vec<f64>,
    /// Each column's squared norm.
    norms: Vec<f64>,
    /// Each column's product with the targets given.
    with_y: Vec<f64>,
}

impl Columns {
    /// The rows `rows` of `x` (`all` is the same matrix, column-major),
    /// centred when `centre` is set, and `y` (one per row of `rows`). The
    /// means add the rows in order and divide by their count, as ndarray's
    /// `mean_axis` does, so they are the same bits as the means of
    /// `x.select(rows)`; they are summed row by row, all columns at once: a
    /// column's sum alone is a chain of dependent additions, which took a
    /// large part of a fit. The copy goes by runs of consecutive rows (a
    /// fold's rows are two), so that it is a subtraction over slices.
    /// Inlined into each build of the descent (the AVX2 one included).
    #[inline(always)]
    fn of(
        x: ArrayView2<f64>,
        all: &ColumnMajor,
        rows: &[usize],
        centre: bool,
        y: &[f64],
    ) -> Self {
        let (n, p) = (rows.len(), x.ncols());
        let mut means = vec![0.0; p];
        if centre && n > 0 {
            let x = x.as_standard_layout();
            for &i in rows {
                let row = x.row(i);
                match row.to_slice() {
                    Some(row) => means.iter_mut().zip(row).for_each(|(m, v)| *m += v),
                    None => means.iter_mut().zip(row.iter()).for_each(|(m, v)| *m += v),
                }
            }
            for m in &mut means {
                *m /= n as f64;
            }
        }
        let runs = runs(rows);
        let mut data = Vec::with_capacity(n * p);
        let mut norms = Vec::with_capacity(p);
        let mut with_y = Vec::with_capacity(p);
        for (j, mean) in means.iter().enumerate() {
            let source = &all.data[j * all.rows..(j + 1) * all.rows];
            let start = data.len();
            for &(first, len) in &runs {
                data.extend(source[first..first + len].iter().map(|v| v - mean));
            }
            let column = &data[start..];
            norms.push(dot(column, column));
            with_y.push(dot(column, y));
        }
        Self {
            data,
            n,
            means,
            norms,
            with_y,
        }
    }

    fn col(&self, j: usize) -> &[f64] {
        &self.data[j * self.n..(j + 1) * self.n]
    }

    /// `X' r`.
    #[inline(always)]
    fn times(&self, r: &[f64]) -> Vec<f64> {
        (0..self.norms.len()).map(|j| dot(self.col(j), r)).collect()
    }
}

impl CoordinateDescent {
    /// Coordinate descent as scikit-learn's on the rows `rows` of `x` (`all`
    /// is the same matrix, column-major) and `y` (each below `y.len()`): the
    /// same model as fitting on `x.select(rows)`; ends once `stop` is set.
    pub fn fit_rows(
        &self,
        x: ArrayView2<f64>,
        all: &ColumnMajor,
        y: ArrayView1<f64>,
        rows: &[usize],
        stop: &Stop,
    ) -> Result<LinearModel, FitError> {
        // Views reborrowed to the call's lifetime (ndarray views are
        // invariant in theirs).
        let fit = Fit {
            x: x.view(),
            all,
            y: y.view(),
            rows,
            stop,
        };
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { self.descend_avx2(&fit) };
        }
        self.descend(&fit)
    }

    /// [`Self::descend`] compiled for AVX2, chosen once per fit: the
    /// descent's dot products and updates then run four values to an
    /// instruction instead of two (the build targets baseline x86-64, and a
    /// choice per dot product cost more than it saved; the gain is in
    /// docs/benchmarks.md). No FMA: every product and sum is rounded as
    /// in the baseline build, so the model is the same bits (tested).
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn descend_avx2(&self, fit: &Fit<'_>) -> Result<LinearModel, FitError> {
        self.descend(fit)
    }

    /// The descent itself, inlined into each of the builds `fit_rows`
    /// chooses from.
    #[inline(always)]
    fn descend(&self, fit: &Fit<'_>) -> Result<LinearModel, FitError> {
        let Fit {
            x,
            all,
            y,
            rows,
            stop,
        } = *fit;
        let n = rows.len();
        let y = Array1::from_iter(rows.iter().map(|&i| y[i]));
        let y_mean = if self.fit_intercept {
            y.mean().unwrap_or(0.0)
        } else {
            0.0
        };
        let yc: Vec<f64> = y.iter().map(|v| v - y_mean).collect();
        let cols = Columns::of(x, all, rows, self.fit_intercept, &yc);
        let p = cols.norms.len();
        let penalties = Penalties {
            // scikit-learn scales the penalties by n and the gap tolerance by ||y||^2.
            l1: self.l1 * n as f64,
            l2: self.l2 * n as f64,
        };
        let l1 = penalties.l1;
        let l2 = penalties.l2;
        let mut w = vec![0.0f64; p];
        let mut r = yc.clone();
        let d_w_tol = self.tol;
        let gap_tol = self.tol * dot(&yc, &yc);
        // Gap-safe screening, as scikit-learn's: a feature whose dual
        // constraint is provably slack at the optimum is dropped (its weight
        // is zero there); only an L1 term makes such a bound.
        let screening = l1 > 0.0;
        let mut active: Vec<usize> = (0..p).collect();
        // At w = 0 the residual is yc: X'R came with the copy.
        let mut gap = Gap::of(cols.with_y.clone(), &w, &r, &yc, penalties);
        if gap.value <= gap_tol {
            return self.finish(w, &cols.means, y_mean, 0);
        }
        if screening {
            gap.screen(&mut active, &cols, &mut w, &mut r, penalties);
        }
        let mut n_iter = 0;
        for it in 0..self.max_iter {
            stop.check()?;
            n_iter = it + 1;
            let mut w_max = 0.0f64;
            let mut d_w_max = 0.0f64;
            for &j in &active {
                let norm = cols.norms[j];
                if norm == 0.0 {
                    continue;
                }
                let w_j = w[j];
                // X_j · (R + w_j X_j), without adding w_j X_j back first.
                let tmp = dot(cols.col(j), &r) + w_j * norm;
                w[j] = soft_threshold(tmp, l1, norm + l2);
                if w[j] != w_j {
                    axpy(w_j - w[j], cols.col(j), &mut r);
                }
                d_w_max = d_w_max.max((w[j] - w_j).abs());
                w_max = w_max.max(w[j].abs());
            }
            let check_gap =
                w_max == 0.0 || d_w_max / w_max <= d_w_tol || it == self.max_iter - 1;
            if check_gap {
                gap = Gap::of(cols.times(&r), &w, &r, &yc, penalties);
                if gap.value <= gap_tol {
                    break;
                }
                if screening {
                    gap.screen(&mut active, &cols, &mut w, &mut r, penalties);
                }
            }
        }
        self.finish(w, &cols.means, y_mean, n_iter)
    }

    /// The model from the centred problem's weights, refused if they are
    /// not finite.
    fn finish(
        &self,
        w: Vec<f64>,
        x_mean: &[f64],
        y_mean: f64,
        n_iter: usize,
    ) -> Result<LinearModel, FitError> {
        if w.iter().any(|v| !v.is_finite()) {
            return Err(FitError::Numerical {
                model: self.model,
                reason: "coefficients diverged",
            });
        }
        let intercept = y_mean - dot(x_mean, &w);
        Ok(LinearModel {
            coef: w,
            intercept,
            n_iter,
        })
    }
}

/// scikit-learn's update of one coordinate, `sign(tmp) · max(|tmp| - l1, 0)
/// / d` (`d > 0`). Most coordinates stay at zero, and for them the division
/// is skipped: `(±1 · 0) / d` is `±0`, the same bits without it (its gain
/// is in docs/benchmarks.md).
fn soft_threshold(tmp: f64, l1: f64, d: f64) -> f64 {
    let shrunk = tmp.abs() - l1;
    // A NaN `shrunk` takes the zero branch, as `max(NaN, 0)` is 0.
    if shrunk > 0.0 {
        tmp.signum() * shrunk / d
    } else {
        tmp.signum() * 0.0
    }
}

/// What one fit reads: `x` and the same matrix column-major, the targets,
/// the fit's rows, and the flag that stops it.
#[derive(Clone, Copy)]
struct Fit<'a> {
    x: ArrayView2<'a, f64>,
    all: &'a ColumnMajor,
    y: ArrayView1<'a, f64>,
    rows: &'a [usize],
    stop: &'a Stop,
}

/// The penalties of one fit, scaled by its rows.
#[derive(Debug, Clone, Copy)]
struct Penalties {
    l1: f64,
    l2: f64,
}

/// scikit-learn's duality gap (`gap_enet`) at a point, and what screening
/// needs of it: `X'R - l2·w` and its largest magnitude.
struct Gap {
    value: f64,
    xta: Vec<f64>,
    dual_norm: f64,
}

impl Gap {
    /// The gap at `w` with residual `r` and `xtr = X'r`.
    fn of(xtr: Vec<f64>, w: &[f64], r: &[f64], y: &[f64], Penalties { l1, l2 }: Penalties) -> Self {
        let w_norm2 = if l2 > 0.0 { dot(w, w) } else { 0.0 };
        let r_norm2 = dot(r, r);
        if l1 == 0.0 {
            let xtr_norm2 = dot(&xtr, &xtr);
            let value = if l2 == 0.0 {
                // Least squares: no dual, the first-order condition X'R = 0.
                xtr_norm2
            } else {
                // Formulation B: the L2 penalty alone.
                r_norm2 + 0.5 * l2 * w_norm2 - dot(r, y) + xtr_norm2 / (2.0 * l2)
            };
            return Self {
                value,
                xta: xtr,
                dual_norm: xtr_norm2,
            };
        }
        // Formulation A: the residual, scaled into the dual's feasible set.
        let xta: Vec<f64> = xtr.iter().zip(w).map(|(g, w)| g - l2 * w).collect();
        let dual_norm = xta.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let l1_norm: f64 = w.iter().map(|v| v.abs()).sum();
        let primal = 0.5 * (r_norm2 + l2 * w_norm2) + l1 * l1_norm;
        let scale = if dual_norm > l1 { l1 / dual_norm } else { 1.0 };
        let dual = -0.5 * scale * scale * (r_norm2 + l2 * w_norm2) + scale * dot(r, y);
        Self {
            value: primal - dual,
            xta,
            dual_norm,
        }
    }

    /// Gap-safe screening (Ndiaye et al. 2017, eq. 11, as scikit-learn):
    /// keeps in `active` the features that may be nonzero at the optimum,
    /// and zeroes the others' weights (their part of `r` added back).
    fn screen(
        &self,
        active: &mut Vec<usize>,
        cols: &Columns,
        w: &mut [f64],
        r: &mut [f64],
        Penalties { l1, l2 }: Penalties,
    ) {
        let radius = (2.0 * self.value).sqrt() / l1;
        let scale = l1.max(self.dual_norm);
        active.retain(|&j| {
            let norm = cols.norms[j];
            if norm == 0.0 {
                w[j] = 0.0;
                return false;
            }
            let xj_theta = self.xta[j] / scale;
            let d_j = (1.0 - xj_theta.abs()) / (norm + l2).sqrt();
            if d_j <= radius {
                return true;
            }
            if w[j] != 0.0 {
                axpy(w[j], cols.col(j), r);
                w[j] = 0.0;
            }
            false
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::generated;
    use crate::models::parse;

    /// The AVX2 build of the descent fits the very same model as the
    /// baseline build, bit for bit (fold rows in two runs, penalties with
    /// and without an L1 term), where the CPU has AVX2.
    #[test]
    fn the_avx2_descent_is_the_baseline_descent_bit_for_bit() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            let ds = generated(300, 1024);
            let (x, y) = (ds.x().view(), ds.y().view());
            let all = ColumnMajor::of(x);
            let rows: Vec<usize> = (0..60).chain(120..300).collect();
            for params in [
                serde_json::json!({"alpha": 0.1}),
                serde_json::json!({"alpha": 0.01, "l1_ratio": 0.3}),
                serde_json::json!({"alpha": 0.5, "l1_ratio": 0.0}),
            ] {
                let problem = parse::<ElasticNetParams>(params.as_object().unwrap())
                    .unwrap()
                    .problem();
                let stop = Stop::never();
                let fit = Fit {
                    x: x.view(),
                    all: &all,
                    y: y.view(),
                    rows: &rows,
                    stop: &stop,
                };
                let any = problem.descend(&fit).unwrap();
                // SAFETY: the CPU has AVX2, checked above.
                let avx2 = unsafe { problem.descend_avx2(&fit) }.unwrap();
                let bits = |m: &LinearModel| {
                    let mut b: Vec<u64> = m.coef.iter().map(|v| v.to_bits()).collect();
                    b.push(m.intercept.to_bits());
                    b
                };
                assert_eq!(bits(&any), bits(&avx2), "{params}");
                assert!(any.coef.iter().any(|&c| c != 0.0), "{params}");
            }
        }
    }

    /// The shortcut gives the bits of scikit-learn's formula, signed zeros,
    /// NaN and infinities included.
    #[test]
    fn soft_threshold_is_the_formula_bit_for_bit() {
        let specials = [0.0, -0.0, 1e-300, -1e-300, 0.5, -0.5, 1.0, -1.0, 3.0, -7.25];
        let extremes = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, f64::MAX, f64::MIN];
        for &tmp in specials.iter().chain(&extremes) {
            for l1 in [0.0, 0.5, 1.0, 2.0, f64::INFINITY] {
                for d in [1e-300, 0.25, 1.0, 3.0, f64::INFINITY] {
                    let formula = tmp.signum() * (tmp.abs() - l1).max(0.0) / d;
                    let got = soft_threshold(tmp, l1, d);
                    assert_eq!(got.to_bits(), formula.to_bits(), "{tmp} {l1} {d}");
                }
            }
        }
    }
}
