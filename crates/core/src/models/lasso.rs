//! `Lasso`: scikit-learn's cyclic coordinate descent (`enet_coordinate_descent`
//! with no L2 term) on centred data, stopping on the duality gap.
//!
//! Objective: `(1 / (2 n)) ||y - X w - b||^2 + alpha ||w||_1`.

use std::borrow::Cow;

use ndarray::{Array1, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::linalg::{axpy, dot};
use super::{FitError, LinearModel};
use crate::params::{non_negative, tolerance, ConfigError, ParamReader, SOLVER_ITER};
use crate::stop::Stop;

/// Checked `Lasso` parameters: built only by [`LassoParams::parse`] (or
/// [`Default`]), so every value is within its documented bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LassoParams {
    alpha: f64,
    fit_intercept: bool,
    max_iter: usize,
    tol: f64,
}

impl Default for LassoParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl LassoParams {
    /// The scikit-learn class name.
    pub const NAME: &'static str = "Lasso";

    /// scikit-learn's defaults.
    const DEFAULT: Self = Self {
        alpha: 1.0,
        fit_intercept: true,
        max_iter: 1000,
        tol: 1e-4,
    };

    const KNOWN: &'static [&'static str] = &[
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

    /// Reads and checks the JSON `params` object.
    pub fn parse(p: &Map<String, Value>) -> Result<Self, ConfigError> {
        let r = ParamReader::new(Self::NAME, p, Self::KNOWN)?;
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
        Ok(Self {
            alpha: r.float("alpha", d.alpha, non_negative, ">= 0")?,
            fit_intercept: r.bool("fit_intercept", d.fit_intercept)?,
            max_iter: r.count("max_iter", d.max_iter, SOLVER_ITER)?,
            tol: r.float("tol", d.tol, tolerance, ">= 1e-15")?,
        })
    }

    /// Every parameter, defaults filled in, in scikit-learn's names.
    pub fn to_json(&self) -> Value {
        json!({
            "alpha": self.alpha, "fit_intercept": self.fit_intercept,
            "max_iter": self.max_iter, "tol": self.tol,
        })
    }
}

/// Columns of a tile of [`centred_columns`]: the rows are read in runs of
/// this many contiguous values and the tile's columns are written one entry
/// further each row, so both sides stay in cache. Reading each column with a
/// stride of `p` values took nearly half of a fit (a cache and TLB miss per
/// value).
const TILE: usize = 32;

/// Column-major copy of the rows `rows` of `x`, centred when `centre` is set;
/// returns the column means. The means add the rows in order and divide by
/// their count, as ndarray's `mean_axis` does, so they are the same bits as
/// the means of `x.select(rows)`.
pub(crate) fn centred_columns(
    x: ArrayView2<f64>,
    rows: &[usize],
    centre: bool,
) -> (Vec<f64>, Vec<f64>) {
    let (n, p) = (rows.len(), x.ncols());
    // Rows as plain slices: the loops below then vectorise. Adding a row
    // through ndarray's element iterators did not, and the column means
    // took a quarter of a fit (`perf`).
    let x = x.as_standard_layout();
    let row = |i: usize| -> Cow<'_, [f64]> {
        match x.row(i).to_slice() {
            Some(r) => Cow::Borrowed(r),
            None => Cow::Owned(x.row(i).to_vec()),
        }
    };
    let mut means = vec![0.0; p];
    if centre && n > 0 {
        for &i in rows {
            for (m, v) in means.iter_mut().zip(row(i).iter()) {
                *m += v;
            }
        }
        for m in &mut means {
            *m /= n as f64;
        }
    }
    let mut cols = vec![0.0; n * p];
    for start in (0..p).step_by(TILE) {
        let end = (start + TILE).min(p);
        for (c, &i) in rows.iter().enumerate() {
            let r = row(i);
            for j in start..end {
                cols[j * n + c] = r[j] - means[j];
            }
        }
    }
    (cols, means)
}

impl LassoParams {
    /// The solver's iteration cap: a fit that used all of it did not converge.
    pub fn max_iter(&self) -> usize {
        self.max_iter
    }

    /// Coordinate descent as scikit-learn's `Lasso`, stopping when `stop` is set.
    pub fn fit(
        &self,
        x: ArrayView2<f64>,
        y: ArrayView1<f64>,
        stop: &Stop,
    ) -> Result<LinearModel, FitError> {
        let all: Vec<usize> = (0..x.nrows()).collect();
        self.fit_rows(x, y, &all, stop)
    }

    /// [`LassoParams::fit`] on the rows `rows` of `x` and `y` (each below
    /// `x.nrows()` and `y.len()`): the same model as fitting on
    /// `x.select(rows)`, without copying the rows first.
    pub fn fit_rows(
        &self,
        x: ArrayView2<f64>,
        y: ArrayView1<f64>,
        rows: &[usize],
        stop: &Stop,
    ) -> Result<LinearModel, FitError> {
        let (n, p) = (rows.len(), x.ncols());
        let (cols, x_mean) = centred_columns(x, rows, self.fit_intercept);
        let y = Array1::from_iter(rows.iter().map(|&i| y[i]));
        let y_mean = if self.fit_intercept {
            y.mean().unwrap_or(0.0)
        } else {
            0.0
        };
        let yc: Vec<f64> = y.iter().map(|v| v - y_mean).collect();
        let col = |j: usize| &cols[j * n..(j + 1) * n];

        // scikit-learn scales the penalty by n and the gap tolerance by ||y||^2.
        let l1 = self.alpha * n as f64;
        let norm_cols: Vec<f64> = (0..p).map(|j| dot(col(j), col(j))).collect();
        let mut w = vec![0.0f64; p];
        let mut r = yc.clone();
        let d_w_tol = self.tol;
        let gap_tol = self.tol * dot(&yc, &yc);
        let mut n_iter = 0;
        for it in 0..self.max_iter {
            stop.check()?;
            n_iter = it + 1;
            let mut w_max = 0.0f64;
            let mut d_w_max = 0.0f64;
            for j in 0..p {
                if norm_cols[j] == 0.0 {
                    continue;
                }
                let w_j = w[j];
                if w_j != 0.0 {
                    axpy(w_j, col(j), &mut r);
                }
                let tmp = dot(col(j), &r);
                w[j] = tmp.signum() * (tmp.abs() - l1).max(0.0) / norm_cols[j];
                if w[j] != 0.0 {
                    axpy(-w[j], col(j), &mut r);
                }
                d_w_max = d_w_max.max((w[j] - w_j).abs());
                w_max = w_max.max(w[j].abs());
            }
            let check_gap = w_max == 0.0 || d_w_max / w_max < d_w_tol || it == self.max_iter - 1;
            if check_gap && duality_gap(&cols, n, &w, &r, &yc, l1) < gap_tol {
                break;
            }
        }
        if w.iter().any(|v| !v.is_finite()) {
            return Err(FitError::Numerical {
                model: "Lasso",
                reason: "coefficients diverged",
            });
        }
        let intercept = y_mean - dot(&x_mean, &w);
        Ok(LinearModel {
            coef: w,
            intercept,
            n_iter,
        })
    }
}

fn duality_gap(cols: &[f64], n: usize, w: &[f64], r: &[f64], y: &[f64], l1: f64) -> f64 {
    let dual_norm = (0..w.len())
        .map(|j| dot(&cols[j * n..(j + 1) * n], r).abs())
        .fold(0.0f64, f64::max);
    let r_norm2 = dot(r, r);
    let (constant, mut gap) = if dual_norm > l1 {
        let c = l1 / dual_norm;
        (c, 0.5 * (r_norm2 + r_norm2 * c * c))
    } else {
        (1.0, r_norm2)
    };
    let l1_norm: f64 = w.iter().map(|v| v.abs()).sum();
    gap += l1 * l1_norm - constant * dot(r, y);
    gap
}
