//! `KNeighborsRegressor`: brute-force euclidean neighbours, uniform or
//! inverse-distance weights.
//!
//! Squared distances are computed as `|a|^2 - 2 a·b + |b|^2` with one matrix
//! product, as scikit-learn's brute-force search does, so near-ties at the k-th
//! neighbour resolve the same way; ties in distance keep the lower training index.

use ndarray::{s, Array1, Array2, ArrayView1, ArrayView2, Axis};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::gram::CrossFoldGram;
use super::model::{Fitted, FoldsData, Model, Prediction, Role, Rows};
use super::{FitError, FittedState, InvalidModel, Prepared};
use crate::params::{ConfigError, IntRange, ParamReader};
use crate::stop::{Stop, StopReason};

/// How neighbours' targets are averaged (scikit-learn's `weights`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KnnWeights {
    /// Every neighbour counts the same.
    Uniform,
    /// Neighbours count by the inverse of their distance.
    Distance,
}

impl KnnWeights {
    fn as_str(self) -> &'static str {
        match self {
            KnnWeights::Uniform => "uniform",
            KnnWeights::Distance => "distance",
        }
    }
}

/// Checked `KNeighborsRegressor` parameters, built only by
/// [`Model::parse`] or [`Model::DEFAULT`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnnParams {
    n_neighbors: usize,
    weights: KnnWeights,
}

/// The most neighbours a query may ask for (and never more than the
/// training rows, checked when fitting).
pub const MAX_NEIGHBOURS: u64 = 100_000;

/// Query rows whose distances are computed at once: bounds the distance
/// block to `QUERY_BLOCK x n_train` and is the unit between stop checks.
const QUERY_BLOCK: usize = 256;

impl Model for KnnParams {
    const NAME: &'static str = "KNeighborsRegressor";

    const ROLE: Role = Role::Regressor;
    const DEFAULT: Self = Self {
        n_neighbors: 5,
        weights: KnnWeights::Uniform,
    };
    const KNOWN: &'static [&'static str] = &[
        "n_neighbors",
        "weights",
        "algorithm",
        "metric",
        "p",
        "n_jobs",
        "leaf_size",
    ];

    fn parse(r: &ParamReader<'_>) -> Result<Self, ConfigError> {
        const NEIGHBOURS: IntRange = IntRange {
            min: 1,
            max: MAX_NEIGHBOURS,
            expected: "an integer in 1..=100000 (and at most the training rows)",
        };
        const P: IntRange = IntRange {
            min: 2,
            max: 2,
            expected: "2 (euclidean)",
        };
        r.ignored(&["algorithm", "n_jobs", "leaf_size"]);
        r.choice(
            "metric",
            "minkowski",
            &["minkowski", "euclidean"],
            "\"minkowski\" (with p=2) or \"euclidean\"",
        )?;
        r.int("p", 2, P)?;
        let d = Self::DEFAULT;
        let weights = match r.choice(
            "weights",
            d.weights.as_str(),
            &["uniform", "distance"],
            "\"uniform\" or \"distance\"",
        )? {
            "distance" => KnnWeights::Distance,
            _ => KnnWeights::Uniform,
        };
        Ok(Self {
            n_neighbors: r.count("n_neighbors", d.n_neighbors, NEIGHBOURS)?,
            weights,
        })
    }

    fn to_json(&self) -> Value {
        json!({"n_neighbors": self.n_neighbors, "weights": self.weights.as_str()})
    }

    fn fit(&self, data: &Rows<'_>, _stop: &Stop) -> Fitted {
        let (x, y) = data.selected();
        self.remember(x.view(), y.view())
            .map(FittedState::Neighbours)
    }

    /// With more features than rows, the rows' products across folds, once
    /// for all folds.
    fn prepare(&self, data: &FoldsData<'_>, _stop: &Stop) -> Prepared {
        CrossFoldGram::of_threads(data.x, data.folds, data.threads)
            .map_or(Prepared::Nothing, Prepared::CrossFold)
    }

    fn predict_fold(&self, data: &Rows<'_>, test: &[usize], stop: &Stop) -> Prediction {
        let Prepared::CrossFold(gram) = data.prepared else {
            return Ok(None);
        };
        self.predict_cross_fold(gram, data.x, data.y, data.rows, test, stop)
            .map(Some)
    }

    fn check_state(&self, state: &FittedState, n_features: usize) -> Result<(), InvalidModel> {
        state.neighbours(Self::NAME, n_features).map(drop)
    }

    /// The training rows and their targets.
    fn fitted_bytes(&self, n: usize, p: usize) -> u64 {
        (n as u64).saturating_mul(p as u64 + 1).saturating_mul(8)
    }
}

/// The fitted state: the training rows themselves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Neighbours {
    /// Neighbours averaged per prediction.
    pub n_neighbors: usize,
    /// How they are averaged.
    pub weights: KnnWeights,
    /// Training rows, `n_train x n_features`, stored as `.npy` bytes.
    #[serde(with = "crate::npy::serde_2d")]
    pub x: Array2<f64>,
    /// Training targets, stored as `.npy` bytes.
    #[serde(with = "crate::npy::serde_1d")]
    pub y: Array1<f64>,
}

impl KnnParams {
    /// Keeps the training rows: KNN fits by remembering them.
    pub fn remember(&self, x: ArrayView2<f64>, y: ArrayView1<f64>) -> Result<Neighbours, FitError> {
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
    /// Rejects a decoded model whose rows, targets or `n_neighbors` disagree.
    pub fn validate(&self, n_features: usize) -> Result<(), InvalidModel> {
        if self.y.is_empty() || self.x.dim() != (self.y.len(), n_features) {
            return Err(InvalidModel::NeighbourShape {
                shape: self.x.dim(),
                labels: self.y.len(),
                n_features,
            });
        }
        if self.n_neighbors == 0 || self.n_neighbors > self.y.len() {
            return Err(InvalidModel::NeighbourCount {
                k: self.n_neighbors,
                n: self.y.len(),
            });
        }
        Ok(())
    }

    /// Predictions for the rows of `x` (feature count checked by the caller),
    /// a block of query rows at a time.
    pub fn predict(&self, x: ArrayView2<f64>, stop: &Stop) -> Result<Array1<f64>, StopReason> {
        let train = self.x.view();
        let train_sq: Vec<f64> = train.axis_iter(Axis(0)).map(|r| r.dot(&r)).collect();
        let max_train_sq = train_sq.iter().copied().fold(0.0, f64::max);
        let mut out = Array1::zeros(x.nrows());
        let mut dist: Vec<(f64, usize)> = Vec::with_capacity(train_sq.len());
        let mut start = 0;
        while start < x.nrows() {
            stop.check()?;
            let end = (start + QUERY_BLOCK).min(x.nrows());
            let block = x.slice(s![start..end, ..]);
            let cross = block.dot(&train.t());
            for (i, row) in block.axis_iter(Axis(0)).enumerate() {
                let row_sq = row.dot(&row);
                let search = Search {
                    k: self.n_neighbors,
                    weights: self.weights,
                    tolerance: rounding_bound(row.len(), row_sq + max_train_sq),
                    direct: |j: usize| direct_distance(row, train.row(j)),
                };
                let products = cross
                    .row(i)
                    .into_iter()
                    .copied()
                    .zip(train_sq.iter().copied());
                out[start + i] = search.predict(&mut dist, row_sq, products, |j| self.y[j]);
            }
            start = end;
        }
        Ok(out)
    }
}

impl KnnParams {
    /// Out-of-fold predictions for the rows `test` by their neighbours among
    /// the rows `train` (a fold `gram` was made for), with every dot product
    /// read off `gram`: the same neighbours and predictions as fitting on
    /// `train` and predicting `test`, without a product per fold.
    pub fn predict_cross_fold(
        &self,
        gram: &CrossFoldGram,
        x: ArrayView2<f64>,
        y: ArrayView1<f64>,
        train: &[usize],
        test: &[usize],
        stop: &Stop,
    ) -> Result<Array1<f64>, FitError> {
        if self.n_neighbors > train.len() {
            return Err(FitError::TooFewNeighbours {
                k: self.n_neighbors,
                n: train.len(),
            });
        }
        let train_sq: Vec<f64> = train.iter().map(|&j| gram.get(j, j)).collect();
        let max_train_sq = train_sq.iter().copied().fold(0.0, f64::max);
        let mut out = Array1::zeros(test.len());
        let mut dist: Vec<(f64, usize)> = Vec::with_capacity(train.len());
        for (pos, &i) in test.iter().enumerate() {
            if pos % QUERY_BLOCK == 0 {
                stop.check()?;
            }
            let row_sq = gram.get(i, i);
            let search = Search {
                k: self.n_neighbors,
                weights: self.weights,
                tolerance: rounding_bound(x.ncols(), row_sq + max_train_sq),
                direct: |j: usize| direct_distance(x.row(i), x.row(train[j])),
            };
            let products = train
                .iter()
                .map(|&t| gram.get(i, t))
                .zip(train_sq.iter().copied());
            out[pos] = search.predict(&mut dist, row_sq, products, |j| y[train[j]]);
        }
        Ok(out)
    }
}

/// `|a|^2 - 2 a·b + |b|^2`, clipped at zero, as scikit-learn's brute-force
/// search computes a squared distance.
fn expanded_distance(a_sq: f64, ab: f64, b_sq: f64) -> f64 {
    (a_sq - 2.0 * ab + b_sq).max(0.0)
}

/// `sum (a_i - b_i)^2`: accurate to the distance itself rather than to the
/// rows' norms, for the few pairs the expanded form cannot order.
fn direct_distance(a: ArrayView1<f64>, b: ArrayView1<f64>) -> f64 {
    a.iter().zip(b).map(|(u, v)| (u - v) * (u - v)).sum()
}

/// A bound on the rounding error of [`expanded_distance`] for rows of `p`
/// features whose squared norms sum to at most `norms`: each of the three
/// terms carries at most `p` roundings relative to the norms.
fn rounding_bound(p: usize, norms: f64) -> f64 {
    4.0 * (p as f64 + 2.0) * f64::EPSILON * norms
}

/// One query's neighbour search over squared distances computed in the
/// expanded form.
struct Search<F> {
    k: usize,
    weights: KnnWeights,
    /// How far an expanded distance may be from the true one.
    tolerance: f64,
    /// The true distance to a training row, computed directly.
    direct: F,
}

impl<F: Fn(usize) -> f64> Search<F> {
    /// The prediction for a query with squared norm `row_sq`, from its
    /// products with the training rows, `(a·b, |b|²)` in training order,
    /// and their targets `y`. `dist` is scratch.
    fn predict(
        &self,
        dist: &mut Vec<(f64, usize)>,
        row_sq: f64,
        products: impl Iterator<Item = (f64, f64)>,
        y: impl Fn(usize) -> f64,
    ) -> f64 {
        dist.clear();
        dist.extend(
            products
                .enumerate()
                .map(|(j, (ab, b_sq))| (expanded_distance(row_sq, ab, b_sq), j)),
        );
        self.weights.average(self.nearest(dist), y)
    }

    /// The `k` nearest of `dist` (distance, training index), nearest first,
    /// ties to the lower index (scikit-learn's heap keeps the first found).
    ///
    /// Distances within `tolerance` of the k-th are too close for the
    /// expanded form to order; when such a group straddles the k-th place,
    /// its members are measured again directly and ordered by that.
    fn nearest<'d>(&self, dist: &'d mut [(f64, usize)]) -> &'d [(f64, usize)] {
        let k = self.k.min(dist.len());
        if k == 0 {
            return &dist[..0];
        }
        let by_distance =
            |a: &(f64, usize), b: &(f64, usize)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
        if k < dist.len() {
            dist.select_nth_unstable_by(k - 1, by_distance);
        }
        let kth = dist[k - 1].0;
        let near_kth = |d: f64| (d - kth).abs() <= self.tolerance;
        if dist[k..].iter().any(|&(d, _)| near_kth(d)) {
            // Bring the whole ambiguous group to the front of the tail,
            // measure it directly, and let the nearest of it fill the slots
            // the sure neighbours leave.
            let sure = dist[..k]
                .iter()
                .filter(|&&(d, _)| d < kth - self.tolerance)
                .count();
            dist[..k].sort_unstable_by(by_distance);
            let mut end = sure;
            for i in sure..dist.len() {
                if near_kth(dist[i].0) {
                    dist.swap(end, i);
                    end += 1;
                }
            }
            for entry in &mut dist[sure..end] {
                entry.0 = (self.direct)(entry.1);
            }
            dist[sure..end].sort_unstable_by(by_distance);
        }
        let nearest = &mut dist[..k];
        nearest.sort_unstable_by(by_distance);
        nearest
    }
}

impl KnnWeights {
    /// The neighbours' targets averaged with these weights.
    fn average(self, nearest: &[(f64, usize)], y: impl Fn(usize) -> f64) -> f64 {
        match self {
            KnnWeights::Uniform => {
                nearest.iter().map(|&(_, j)| y(j)).sum::<f64>() / nearest.len() as f64
            }
            KnnWeights::Distance => {
                let exact: Vec<usize> = nearest
                    .iter()
                    .filter(|(d, _)| *d == 0.0)
                    .map(|&(_, j)| j)
                    .collect();
                if !exact.is_empty() {
                    exact.iter().map(|&j| y(j)).sum::<f64>() / exact.len() as f64
                } else {
                    let (num, den) = nearest.iter().fold((0.0, 0.0), |(num, den), &(d2, j)| {
                        let w = 1.0 / d2.sqrt();
                        (num + w * y(j), den + w)
                    });
                    num / den
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array1, Array2};

    use crate::cv::Fold;
    use serde_json::json;

    use super::*;

    /// One query row at 1e4 in every feature and `m` training rows that
    /// differ from it in feature 0 by nearly the same tiny amount, the last
    /// one nearest. The expanded form's rounding (~1e-8 at norms of 1e10)
    /// swamps the differences between their squared distances (~1e-15).
    fn near_ties(m: usize, p: usize) -> (Array2<f64>, Array1<f64>) {
        let mut x = Array2::from_elem((m + 1, p), 1e4);
        for j in 0..m {
            x[[j, 0]] += 1e-3 * (1.0 + (m - j) as f64 * 1e-6);
        }
        let y = Array1::from_iter((0..=m).map(|j| j as f64));
        (x, y)
    }

    fn one_neighbour() -> KnnParams {
        crate::models::parse::<KnnParams>(json!({"n_neighbors": 1}).as_object().unwrap()).unwrap()
    }

    #[test]
    fn neighbours_too_close_for_the_expanded_distance_are_ordered_by_the_direct_one() {
        let m = 50;
        let (x, y) = near_ties(m, 64);
        let train: Vec<usize> = (0..m).collect();
        let model = one_neighbour()
            .remember(x.slice(s![..m, ..]), y.slice(s![..m]))
            .unwrap();
        let predicted = model.predict(x.slice(s![m.., ..]), &Stop::never()).unwrap();
        assert_eq!(predicted[0], (m - 1) as f64, "fitted model");

        let folds = [
            Fold {
                train: vec![m],
                test: train.clone(),
            },
            Fold {
                train: train.clone(),
                test: vec![m],
            },
        ];
        let gram = CrossFoldGram::of(x.view(), &folds).unwrap();
        let fold = one_neighbour()
            .predict_cross_fold(&gram, x.view(), y.view(), &train, &[m], &Stop::never())
            .unwrap();
        assert_eq!(fold[0], (m - 1) as f64, "through the Gram matrix");
    }

    #[test]
    fn exact_ties_go_to_the_lower_training_index() {
        let x = ndarray::array![[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]];
        let y = ndarray::array![0.0, 10.0, 20.0, 30.0];
        let two = crate::models::parse::<KnnParams>(json!({"n_neighbors": 2}).as_object().unwrap()).unwrap();
        let model = two.remember(x.slice(s![1.., ..]), y.slice(s![1..])).unwrap();
        let predicted = model.predict(x.slice(s![..1, ..]), &Stop::never()).unwrap();
        // All three training rows are at distance 1: the first two win.
        assert_eq!(predicted[0], 15.0);
    }
}
