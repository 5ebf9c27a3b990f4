//! `KNeighborsRegressor`: brute-force euclidean neighbours, uniform or
//! inverse-distance weights.
//!
//! Squared distances are computed as `|a|^2 - 2 a·b + |b|^2` with one matrix
//! product, as scikit-learn's brute-force search does, so near-ties at the k-th
//! neighbour resolve the same way; ties in distance keep the lower training index.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use super::FitError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KnnWeights {
    Uniform,
    Distance,
}

/// Checked `KNeighborsRegressor` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnnParams {
    pub n_neighbors: usize,
    pub weights: KnnWeights,
}

impl Default for KnnParams {
    fn default() -> Self {
        Self {
            n_neighbors: 5,
            weights: KnnWeights::Uniform,
        }
    }
}

/// The fitted state: the training rows themselves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Neighbours {
    pub n_neighbors: usize,
    pub weights: KnnWeights,
    /// Training rows, `n_train x n_features`, stored as `.npy` bytes.
    #[serde(with = "crate::npy::serde_2d")]
    pub x: Array2<f64>,
    /// Training targets, stored as `.npy` bytes.
    #[serde(with = "crate::npy::serde_1d")]
    pub y: Array1<f64>,
}

impl KnnParams {
    pub fn fit(&self, x: ArrayView2<f64>, y: ArrayView1<f64>) -> Result<Neighbours, FitError> {
        if self.n_neighbors > x.nrows() {
            return Err(FitError::TooFewNeighbours {
                k: self.n_neighbors,
                n: x.nrows(),
            });
        }
        Ok(Neighbours {
            n_neighbors: self.n_neighbors,
            weights: self.weights,
            x: x.to_owned(),
            y: y.to_owned(),
        })
    }
}

impl Neighbours {
    pub fn validate(&self, n_features: usize) -> Result<(), String> {
        if self.y.is_empty() || self.x.dim() != (self.y.len(), n_features) {
            return Err(format!(
                "KNeighborsRegressor holds a {:?} matrix for {} rows of {} features",
                self.x.dim(),
                self.y.len(),
                n_features
            ));
        }
        if self.n_neighbors == 0 || self.n_neighbors > self.y.len() {
            return Err(format!(
                "KNeighborsRegressor n_neighbors {} is not in 1..={}",
                self.n_neighbors,
                self.y.len()
            ));
        }
        Ok(())
    }

    /// Predictions for the rows of `x` (feature count checked by the caller).
    pub fn predict(&self, x: ArrayView2<f64>) -> Array1<f64> {
        let train = self.x.view();
        let k = self.n_neighbors;
        let cross = x.dot(&train.t());
        let train_sq: Vec<f64> = train.axis_iter(Axis(0)).map(|r| r.dot(&r)).collect();
        let mut out = Array1::zeros(x.nrows());
        let mut dist: Vec<(f64, usize)> = Vec::with_capacity(train_sq.len());
        for (i, row) in x.axis_iter(Axis(0)).enumerate() {
            let row_sq = row.dot(&row);
            dist.clear();
            dist.extend(
                cross
                    .row(i)
                    .iter()
                    .zip(&train_sq)
                    .enumerate()
                    .map(|(j, (c, t))| ((row_sq - 2.0 * c + t).max(0.0), j)),
            );
            let by_distance =
                |a: &(f64, usize), b: &(f64, usize)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
            if k < dist.len() {
                dist.select_nth_unstable_by(k - 1, by_distance);
            }
            let nearest = &mut dist[..k];
            nearest.sort_unstable_by(by_distance);
            out[i] = match self.weights {
                KnnWeights::Uniform => {
                    nearest.iter().map(|&(_, j)| self.y[j]).sum::<f64>() / k as f64
                }
                KnnWeights::Distance => {
                    let exact: Vec<&(f64, usize)> =
                        nearest.iter().filter(|(d, _)| *d == 0.0).collect();
                    if !exact.is_empty() {
                        exact.iter().map(|&&(_, j)| self.y[j]).sum::<f64>() / exact.len() as f64
                    } else {
                        let (num, den) = nearest.iter().fold((0.0, 0.0), |(num, den), &(d2, j)| {
                            let w = 1.0 / d2.sqrt();
                            (num + w * self.y[j], den + w)
                        });
                        num / den
                    }
                }
            };
        }
        out
    }
}
