//! `RandomForestRegressor`: bootstrapped trees averaged, with scikit-learn's
//! random streams: tree seeds from `RandomState(random_state).randint(2^31-1)`,
//! bootstrap rows from `RandomState(seed).randint(0, n, n)`, and each tree's
//! feature order from `rand_r` seeded by `RandomState(seed).randint(0, 2^31-1)`.
//! The same seed therefore grows the same forest as scikit-learn.

use std::borrow::Cow;

use ndarray::{Array1, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::tree::{grow, root_lists, Growth, SortedColumns, Tree, TreeLimits};
use super::model::{Fitted, Model, Role, Rows};
use super::{FitError, FittedState, InvalidModel, Prepared};
use crate::cv::Fold;
use crate::params::{ConfigError, IntRange, ParamReader};
use crate::rng::{NumpyRandomState, RAND_R_MAX};
use crate::stop::Stop;

/// The most trees a forest may be asked for.
pub const MAX_ESTIMATORS: u64 = 10_000;
/// The deepest a tree may be asked to grow.
pub const MAX_DEPTH: u64 = 10_000;
/// The most nodes one fit may grow over all its trees (about 48 bytes each,
/// so 96 MiB); a fit that would pass it stops with [`FitError::TooLarge`].
pub const MAX_FOREST_NODES: usize = 2_000_000;

/// How many features each split considers (scikit-learn's `max_features`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxFeatures {
    /// Every feature (`None` or `1.0` in scikit-learn).
    All,
    /// `sqrt(p)` features.
    Sqrt,
    /// `log2(p)` features.
    Log2,
    /// This fraction of the features, at least one.
    Fraction(f64),
    /// This many features.
    Count(usize),
}

impl MaxFeatures {
    /// Features considered at each split for `p` features.
    pub fn resolve(self, p: usize) -> usize {
        let k = match self {
            MaxFeatures::All => p,
            MaxFeatures::Sqrt => (p as f64).sqrt() as usize,
            MaxFeatures::Log2 => (p as f64).log2() as usize,
            MaxFeatures::Fraction(f) => (f * p as f64) as usize,
            MaxFeatures::Count(k) => k,
        };
        k.clamp(1, p.max(1))
    }
}

/// Checked `RandomForestRegressor` parameters.
pub type RandomForestParams = TreesParams<false>;

/// Checked parameters of a forest, or with `SINGLE` of one
/// `DecisionTreeRegressor` (one tree, no bootstrap, its seed
/// `random_state` itself): built only by [`Model::parse`] or
/// [`Model::DEFAULT`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreesParams<const SINGLE: bool> {
    n_estimators: usize,
    shape: TreeShape,
    bootstrap: bool,
    random_state: u32,
}

/// How each tree grows: the parameters a forest shares with a single
/// decision tree, with scikit-learn's names, defaults and bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeShape {
    max_depth: Option<usize>,
    min_samples_split: usize,
    min_samples_leaf: usize,
    max_features: MaxFeatures,
}

impl TreeShape {
    /// scikit-learn's defaults: grown until pure, every feature at each split.
    pub const DEFAULT: Self = Self {
        max_depth: None,
        min_samples_split: 2,
        min_samples_leaf: 1,
        max_features: MaxFeatures::All,
    };

    /// Reads and checks the shape's parameters.
    pub fn read(r: &ParamReader<'_>) -> Result<Self, ConfigError> {
        const DEPTH: IntRange = IntRange {
            min: 1,
            max: MAX_DEPTH,
            expected: "an integer in 1..=10000, or null",
        };
        // Row counts: beyond 2^31 they only mean "never split".
        const SPLIT: IntRange = IntRange {
            min: 2,
            max: 1 << 31,
            expected: "an integer in 2..=2147483648",
        };
        const LEAF: IntRange = IntRange {
            min: 1,
            max: 1 << 31,
            expected: "an integer in 1..=2147483648",
        };
        const FEATURES: &str =
            "an integer in 1..=2147483648, a fraction in (0, 1], \"sqrt\" or \"log2\"";
        r.choice(
            "criterion",
            "squared_error",
            &["squared_error"],
            "\"squared_error\"",
        )?;
        let max_features = match r.get("max_features") {
            None => MaxFeatures::All,
            Some(Value::String(s)) if s == "sqrt" => MaxFeatures::Sqrt,
            Some(Value::String(s)) if s == "log2" => MaxFeatures::Log2,
            Some(v @ Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
                (Some(k), _) if (1..=1 << 31).contains(&k) => MaxFeatures::Count(k as usize),
                (None, Some(f)) if f > 0.0 && f <= 1.0 => MaxFeatures::Fraction(f),
                _ => return Err(r.range("max_features", crate::params::short(v), FEATURES)),
            },
            Some(v) => {
                return Err(r.wrong("max_features", "a number, \"sqrt\", \"log2\" or null", v))
            }
        };
        let d = Self::DEFAULT;
        Ok(Self {
            max_depth: r.opt_count("max_depth", DEPTH)?,
            min_samples_split: r.count("min_samples_split", d.min_samples_split, SPLIT)?,
            min_samples_leaf: r.count("min_samples_leaf", d.min_samples_leaf, LEAF)?,
            max_features,
        })
    }

    /// The shape's parameters, defaults filled in, in scikit-learn's names.
    pub fn to_json(&self) -> Value {
        let max_features = match self.max_features {
            MaxFeatures::All => Value::Null,
            MaxFeatures::Sqrt => json!("sqrt"),
            MaxFeatures::Log2 => json!("log2"),
            MaxFeatures::Fraction(f) => json!(f),
            MaxFeatures::Count(k) => json!(k),
        };
        json!({
            "max_depth": self.max_depth, "min_samples_split": self.min_samples_split,
            "min_samples_leaf": self.min_samples_leaf, "max_features": max_features,
        })
    }

    /// The limits of a tree on `p` features (scikit-learn raises
    /// `min_samples_split` to twice `min_samples_leaf`).
    pub(crate) fn limits(&self, p: usize) -> TreeLimits {
        TreeLimits {
            max_depth: self.max_depth.unwrap_or(usize::MAX),
            min_samples_split: self
                .min_samples_split
                .max(self.min_samples_leaf.saturating_mul(2)),
            min_samples_leaf: self.min_samples_leaf,
            max_features: self.max_features.resolve(p),
        }
    }
}

/// Every parameter a forest knows and the ones a single tree knows too,
/// then the single tree's own.
const KNOWN: &[&str] = &[
    "n_estimators",
    "bootstrap",
    "n_jobs",
    "verbose",
    "criterion",
    "max_depth",
    "min_samples_split",
    "min_samples_leaf",
    "max_features",
    "random_state",
    "splitter",
];

impl<const SINGLE: bool> Model for TreesParams<SINGLE> {
    const NAME: &'static str = if SINGLE {
        "DecisionTreeRegressor"
    } else {
        "RandomForestRegressor"
    };
    const ROLE: Role = Role::Regressor;
    /// scikit-learn's defaults, but a single tree's `random_state` is 0
    /// rather than a fresh seed per fit: a benchmark's runs repeat.
    const DEFAULT: Self = Self {
        n_estimators: if SINGLE { 1 } else { 100 },
        shape: TreeShape::DEFAULT,
        bootstrap: !SINGLE,
        random_state: 0,
    };
    const KNOWN: &'static [&'static str] = if SINGLE {
        KNOWN.split_at(4).1
    } else {
        KNOWN.split_at(KNOWN.len() - 1).0
    };

    fn parse(r: &ParamReader<'_>) -> Result<Self, ConfigError> {
        const ESTIMATORS: IntRange = IntRange {
            min: 1,
            max: MAX_ESTIMATORS,
            expected: "an integer in 1..=10000",
        };
        r.ignored(&["n_jobs", "verbose"]);
        let d = Self::DEFAULT;
        if SINGLE {
            r.choice(
                "splitter",
                "best",
                &["best"],
                "\"best\" (the random splitter is not implemented)",
            )?;
        }
        Ok(Self {
            n_estimators: match SINGLE {
                true => d.n_estimators,
                false => r.count("n_estimators", d.n_estimators, ESTIMATORS)?,
            },
            shape: TreeShape::read(r)?,
            bootstrap: !SINGLE && r.bool("bootstrap", d.bootstrap)?,
            random_state: r.seed()?,
        })
    }

    fn to_json(&self) -> Value {
        let mut params = self.shape.to_json();
        if !SINGLE {
            params["n_estimators"] = json!(self.n_estimators);
            params["bootstrap"] = json!(self.bootstrap);
        }
        params["random_state"] = json!(self.random_state);
        params
    }

    /// On the columns `prepare` sorted once for every fold (or sorted here).
    fn fit(&self, data: &Rows<'_>, stop: &Stop) -> Fitted {
        let sorted;
        let columns: &SortedColumns = match data.prepared {
            Prepared::Sorted(columns) => columns,
            _ => {
                sorted = SortedColumns::new(data.x);
                &sorted
            }
        };
        self.grow_forest_rows(columns, data.y, data.rows, stop)
            .map(FittedState::Forest)
    }

    fn prepare(&self, x: ArrayView2<f64>, _folds: &[Fold], threads: usize) -> Prepared {
        Prepared::Sorted(SortedColumns::with_threads(x, threads))
    }

    fn check_state(&self, state: &FittedState, n_features: usize) -> Result<(), InvalidModel> {
        state
            .forest(Self::NAME, n_features, self.n_estimators)
            .map(drop)
    }

    /// The sorted columns (8 bytes a value) and the orders of the nodes
    /// being split, two trees' worth (8 bytes a value each): a tree's lists
    /// hold at most every row once per feature, and the second tree's root
    /// waits, filled, while the first grows.
    fn fit_memory_bytes(&self, n: usize, p: usize) -> u64 {
        (n as u64).saturating_mul(p as u64).saturating_mul(24)
    }

    /// No tree is counted: a forest's size depends on the data.
    fn fitted_bytes(&self, _n: usize, _p: usize) -> u64 {
        0
    }
}

/// The fitted forest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forest {
    /// The fitted trees, in scikit-learn's order.
    #[serde(deserialize_with = "crate::serial::budget::vec")]
    pub trees: Vec<Tree>,
}

/// scikit-learn's `MAX_INT` for per-tree seeds.
const MAX_INT: i64 = i32::MAX as i64;

impl<const SINGLE: bool> TreesParams<SINGLE> {
    /// The per-tree seeds scikit-learn derives from `random_state` (a
    /// single tree's is `random_state`).
    pub fn tree_seeds(&self) -> Vec<u32> {
        if SINGLE {
            return vec![self.random_state];
        }
        let mut rs = NumpyRandomState::new(self.random_state);
        (0..self.n_estimators)
            .map(|_| rs.randint(0, MAX_INT) as u32)
            .collect()
    }

    /// Bootstrap multiplicities of each of `n` rows for a tree with `seed`.
    pub fn bootstrap_counts(seed: u32, n: usize) -> Vec<f64> {
        let mut rs = NumpyRandomState::new(seed);
        let mut counts = vec![0.0; n];
        for _ in 0..n {
            counts[rs.randint(0, n as i64) as usize] += 1.0;
        }
        counts
    }

    /// Fits on the subset `rows` of the matrix `data` was sorted from, as if
    /// fitted on those rows alone: bootstrap draws are made over the subset's
    /// positions, and rows outside it get weight zero. Lets cross-validation
    /// sort the columns once for all folds.
    pub fn grow_forest_rows(
        &self,
        data: &SortedColumns,
        y: ArrayView1<f64>,
        rows: &[usize],
        stop: &Stop,
    ) -> Result<Forest, FitError> {
        self.grow_trees(
            data,
            y,
            |_, seed| {
                let mut weight = vec![0.0; y.len()];
                if self.bootstrap {
                    let counts = Self::bootstrap_counts(seed, rows.len());
                    for (&row, c) in rows.iter().zip(counts) {
                        weight[row] = c;
                    }
                } else {
                    for &row in rows {
                        weight[row] = 1.0;
                    }
                }
                Cow::Owned(weight)
            },
            stop,
        )
    }

    /// Grows tree `k` on rows weighted by `weights[k]` (the bootstrap counts).
    /// Exposed so that tests can inject scikit-learn's own bootstrap draws.
    pub fn fit_weighted(
        &self,
        x: ArrayView2<f64>,
        y: ArrayView1<f64>,
        weights: &[Vec<f64>],
    ) -> Result<Forest, FitError> {
        self.fit_weighted_until(x, y, weights, &Stop::never())
    }

    fn fit_weighted_until(
        &self,
        x: ArrayView2<f64>,
        y: ArrayView1<f64>,
        weights: &[Vec<f64>],
        stop: &Stop,
    ) -> Result<Forest, FitError> {
        let n = x.nrows();
        if weights.len() != self.n_estimators || weights.iter().any(|w| w.len() != n) {
            return Err(FitError::LengthMismatch {
                model: Self::NAME,
                rows: n,
                labels: weights.first().map_or(0, Vec::len),
            });
        }
        let data = SortedColumns::new(x);
        self.grow_trees(&data, y, |k, _| Cow::Borrowed(&weights[k][..]), stop)
    }

    /// Grows one tree per seed on `data`, tree `k` on the row weights
    /// `weights(k, seed)`, all of them within one node budget.
    fn grow_trees<'w>(
        &self,
        data: &SortedColumns,
        y: ArrayView1<f64>,
        mut weights: impl FnMut(usize, u32) -> Cow<'w, [f64]>,
        stop: &Stop,
    ) -> Result<Forest, FitError> {
        let limits = self.shape.limits(data.n_features());
        let y: Vec<f64> = y.to_vec();
        let mut growth = Growth {
            node_budget: MAX_FOREST_NODES,
            stop,
        };
        let seeds = self.tree_seeds();
        let mut trees = Vec::with_capacity(seeds.len());
        // Two trees' roots are picked out of the columns together (one read
        // of each column for both), then each tree grows from its root.
        for (pair, seeds) in seeds.chunks(2).enumerate() {
            let pair_weights: Vec<Cow<'w, [f64]>> = seeds
                .iter()
                .enumerate()
                .map(|(i, &seed)| weights(2 * pair + i, seed))
                .collect();
            let views: Vec<&[f64]> = pair_weights.iter().map(|w| &w[..]).collect();
            let roots = root_lists(data, &views);
            for ((&seed, weight), root) in seeds.iter().zip(&views).zip(roots) {
                growth.stop.check()?;
                let mut rs = NumpyRandomState::new(seed);
                let rand_r_seed = rs.randint(0, i64::from(RAND_R_MAX)) as u32;
                trees.push(grow(
                    data,
                    (&y, weight),
                    Some(root),
                    &limits,
                    rand_r_seed,
                    &mut growth,
                )?);
            }
        }
        Ok(Forest { trees })
    }
}

impl Forest {
    /// Mean of the trees' predictions, summed in tree order then divided, as scikit-learn does.
    pub fn predict(&self, x: ArrayView2<f64>) -> Array1<f64> {
        let k = self.trees.len() as f64;
        x.rows()
            .into_iter()
            .map(|row| {
                self.trees
                    .iter()
                    .map(|t| t.predict_row(|f| row[f]))
                    .sum::<f64>()
                    / k
            })
            .collect()
    }

    /// Rejects a decoded forest whose trees could index out of bounds or loop.
    pub fn validate(&self, n_features: usize) -> Result<(), InvalidModel> {
        if self.trees.is_empty() {
            return Err(InvalidModel::NoTrees);
        }
        self.trees.iter().try_for_each(|t| t.validate(n_features))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::dataset::generated;

    /// Whole-number weights take the reciprocal-table shortcut in the split
    /// search; halved weights are not whole and take the exact divisions
    /// everywhere. Halving every weight halves every proxy exactly (powers of
    /// two), so both must grow the very same trees.
    #[test]
    fn whole_weights_shortcut_grows_the_trees_the_exact_search_grows() {
        let ds = generated(300, 100);
        let params = crate::models::parse::<RandomForestParams>(
            json!({"n_estimators": 4, "max_depth": 10, "random_state": 7})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let counts: Vec<Vec<f64>> = params
            .tree_seeds()
            .into_iter()
            .map(|seed| RandomForestParams::bootstrap_counts(seed, ds.n_samples()))
            .collect();
        let halves: Vec<Vec<f64>> = counts
            .iter()
            .map(|c| c.iter().map(|w| w * 0.5).collect())
            .collect();
        let (x, y) = (ds.x().view(), ds.y().view());
        let whole = params.fit_weighted(x, y, &counts).unwrap();
        let exact = params.fit_weighted(x, y, &halves).unwrap();
        assert!(whole.trees.iter().map(|t| t.value.len()).sum::<usize>() > 4 * 15);
        assert_eq!(whole, exact);
    }
}
