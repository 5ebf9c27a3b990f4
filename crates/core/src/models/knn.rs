//! `KNeighborsRegressor`: brute-force euclidean neighbours, uniform or
//! inverse-distance weights.
//!
//! Squared distances are computed as `|a|^2 - 2 a·b + |b|^2` with one matrix
//! product, as scikit-learn's brute-force search does, so near-ties at the k-th
//! neighbour resolve the same way; ties in distance keep the lower training index.

use ndarray::{s, Array1, Array2, ArrayView1, ArrayView2, Axis};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{FitError, InvalidModel};
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
/// [`KnnParams::parse`] or [`Default`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnnParams {
    n_neighbors: usize,
    weights: KnnWeights,
}

impl Default for KnnParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The most neighbours a query may ask for (and never more than the
/// training rows, checked when fitting).
pub const MAX_NEIGHBOURS: u64 = 100_000;

/// Query rows whose distances are computed at once: bounds the distance
/// block to `QUERY_BLOCK x n_train` and is the unit between stop checks.
const QUERY_BLOCK: usize = 256;

impl KnnParams {
    /// The scikit-learn class name.
    pub const NAME: &'static str = "KNeighborsRegressor";

    /// scikit-learn's defaults.
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

    /// Reads and checks the JSON `params` object.
    pub fn parse(p: &Map<String, Value>) -> Result<Self, ConfigError> {
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
        let r = ParamReader::new(Self::NAME, p, Self::KNOWN)?;
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

    /// Every parameter, defaults filled in, in scikit-learn's names.
    pub fn to_json(&self) -> Value {
        json!({"n_neighbors": self.n_neighbors, "weights": self.weights.as_str()})
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
        let mut out = Array1::zeros(x.nrows());
        let mut dist: Vec<(f64, usize)> = Vec::with_capacity(train_sq.len());
        let mut start = 0;
        while start < x.nrows() {
            stop.check()?;
            let end = (start + QUERY_BLOCK).min(x.nrows());
            let block = x.slice(s![start..end, ..]);
            let cross = block.dot(&train.t());
            for (i, row) in block.axis_iter(Axis(0)).enumerate() {
                out[start + i] = self.predict_row(row, cross.row(i), &train_sq, &mut dist);
            }
            start = end;
        }
        Ok(out)
    }

    /// One query row, from its dot products with every training row.
    fn predict_row(
        &self,
        row: ArrayView1<f64>,
        cross: ArrayView1<f64>,
        train_sq: &[f64],
        dist: &mut Vec<(f64, usize)>,
    ) -> f64 {
        let k = self.n_neighbors;
        let row_sq = row.dot(&row);
        dist.clear();
        dist.extend(
            cross
                .iter()
                .zip(train_sq)
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
        match self.weights {
            KnnWeights::Uniform => nearest.iter().map(|&(_, j)| self.y[j]).sum::<f64>() / k as f64,
            KnnWeights::Distance => {
                let exact: Vec<&(f64, usize)> = nearest.iter().filter(|(d, _)| *d == 0.0).collect();
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
        }
    }
}
