//! `RandomForestRegressor`: bootstrapped trees averaged, with scikit-learn's
//! random streams: tree seeds from `RandomState(random_state).randint(2^31-1)`,
//! bootstrap rows from `RandomState(seed).randint(0, n, n)`, and each tree's
//! feature order from `rand_r` seeded by `RandomState(seed).randint(0, 2^31-1)`.
//! The same seed therefore grows the same forest as scikit-learn.

use std::borrow::Cow;

use ndarray::{Array1, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::model::{Fitted, FoldsData, Model, Role, Rows};
use super::tree::{
    grow, grow_shallow, levels_pay, root_lists, shallow_shape, Growth, ShallowTree, SortedColumns, Tree,
    TreeLimits,
};
use super::{FitError, FittedState, InvalidModel, Prepared};
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

    /// The trees `prepare` grew for these rows, or grown on the columns it
    /// sorted once for every fold (or sorted here).
    fn fit(&self, data: &Rows<'_>, stop: &Stop) -> Fitted {
        let sorted;
        let columns: &SortedColumns = match data.prepared {
            Prepared::Forest(prepared) => {
                if let Some(forest) = prepared.grown_for(data.rows) {
                    stop.check()?;
                    return Ok(FittedState::Forest(forest.clone()));
                }
                &prepared.columns
            }
            _ => {
                sorted = SortedColumns::new(data.x);
                &sorted
            }
        };
        self.grow_forest_rows(columns, data.y, data.rows, stop)
            .map(FittedState::Forest)
    }

    /// The columns sorted once; shallow trees are grown here for every fit
    /// at once, their levels scanned together (`tree::grow_shallow`).
    fn prepare(&self, data: &FoldsData<'_>, stop: &Stop) -> Prepared {
        let columns = SortedColumns::with_threads(data.x, data.threads);
        let fits: Vec<Vec<usize>> = data
            .folds
            .iter()
            .map(|fold| fold.train.clone())
            .chain(std::iter::once((0..data.x.nrows()).collect()))
            .collect();
        let y: Vec<f64> = data.y.to_vec();
        // Stopped or refused here, each fit grows its own and meets the
        // same stop or error.
        let grown = levels_pay()
            .then(|| self.grow_shallow_fits(&columns, &y, &fits, data.threads, stop))
            .and_then(Result::ok)
            .flatten()
            .map(|forests| fits.into_iter().zip(forests).collect())
            .unwrap_or_default();
        Prepared::Forest(PreparedForest { columns, grown })
    }

    fn check_state(&self, state: &FittedState, n_features: usize) -> Result<(), InvalidModel> {
        state
            .forest(Self::NAME, n_features, self.n_estimators)
            .map(drop)
    }

    /// The sorted columns (8 bytes a value) and the orders of the nodes
    /// being split, two trees' worth (8 bytes a value each): a tree's lists
    /// hold at most every row once per feature, and the second tree's root
    /// waits, filled, while the first grows. Shallow trees grown by levels
    /// hold instead 64 bytes a row for the level's lanes and 128 per thread
    /// (two) for a column's sums and estimates, and three levels' scans of
    /// 16 lanes of 32 bytes per feature.
    fn fit_memory_bytes(&self, n: usize, p: usize) -> u64 {
        let (n, p) = (n as u64, p as u64);
        n.saturating_mul(p)
            .saturating_mul(24)
            .saturating_add(n.saturating_mul(64 + 2 * 128))
            .saturating_add(p.saturating_mul(3 * 16 * 32))
    }

    /// No tree is counted: a forest's size depends on the data.
    fn fitted_bytes(&self, _n: usize, _p: usize) -> u64 {
        0
    }
}

/// What a forest's folds share: the columns sorted once, and the trees
/// grown for each fit's rows when they were grown together.
pub struct PreparedForest {
    columns: SortedColumns,
    grown: Vec<(Vec<usize>, Forest)>,
}

impl PreparedForest {
    /// The forest grown for exactly these rows, if any.
    fn grown_for(&self, rows: &[usize]) -> Option<&Forest> {
        self.grown
            .iter()
            .find(|(fit, _)| fit[..] == *rows)
            .map(|(_, forest)| forest)
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

    /// Each tree's weights on a fit on `rows` of `n`: bootstrap draws over
    /// the rows' positions (or ones), zero outside them.
    fn fit_weights(&self, seed: u32, rows: &[usize], n: usize) -> Vec<f64> {
        let mut weight = vec![0.0; n];
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
        weight
    }

    /// The seed of a tree's feature draws (`rand_r`) from its tree seed.
    fn rand_r_seed(seed: u32) -> u32 {
        let mut rs = NumpyRandomState::new(seed);
        rs.randint(0, i64::from(RAND_R_MAX)) as u32
    }

    /// Every fit's forest (for each of `fits`' rows), its trees grown level
    /// by level together with every other fit's, 16 at a time, when the
    /// trees are shallow enough (`tree::grow_shallow`); `None` when they
    /// are not. The same trees as [`Self::grow_forest_rows`] grows.
    fn grow_shallow_fits(
        &self,
        data: &SortedColumns,
        y: &[f64],
        fits: &[Vec<usize>],
        threads: usize,
        stop: &Stop,
    ) -> Result<Option<Vec<Forest>>, FitError> {
        let weights =
            |fit: usize, _, seed| Cow::Owned(self.fit_weights(seed, &fits[fit], y.len()));
        self.grow_shallow_with(data, y, fits.len(), weights, threads, stop)
    }

    /// [`Self::grow_shallow_fits`] for `fits` fits, tree `k` of fit `j`
    /// grown on the weights `weights(j, k, seed)`.
    fn grow_shallow_with<'w>(
        &self,
        data: &SortedColumns,
        y: &[f64],
        fits: usize,
        mut weights: impl FnMut(usize, usize, u32) -> Cow<'w, [f64]>,
        threads: usize,
        stop: &Stop,
    ) -> Result<Option<Vec<Forest>>, FitError> {
        let limits = self.shape.limits(data.n_features());
        if !shallow_shape(data, y, &limits) {
            return Ok(None);
        }
        let seeds = self.tree_seeds();
        // Every fit has its own node budget, as when grown apart.
        let mut growth = Growth {
            node_budget: MAX_FOREST_NODES.saturating_mul(fits),
            stop,
        };
        let all: Vec<(usize, usize, u32)> = (0..fits)
            .flat_map(|fit| {
                let seeds = &seeds;
                seeds.iter().enumerate().map(move |(k, &seed)| (fit, k, seed))
            })
            .collect();
        let mut forests: Vec<Forest> = (0..fits).map(|_| Forest { trees: Vec::new() }).collect();
        // Weights are made a batch at a time: all of them at once would be
        // fits × trees × rows.
        for batch in all.chunks(super::tree::LANES) {
            let batch_weights: Vec<Cow<'w, [f64]>> = batch
                .iter()
                .map(|&(fit, k, seed)| weights(fit, k, seed))
                .collect();
            let views: Vec<&[f64]> = batch_weights.iter().map(|w| &w[..]).collect();
            let trees: Vec<ShallowTree<'_>> = batch
                .iter()
                .zip(&views)
                .map(|(&(_, _, seed), weight)| ShallowTree {
                    weight,
                    rand_r_seed: Self::rand_r_seed(seed),
                })
                .collect();
            let Some(grown) = grow_shallow(data, y, &trees, &limits, threads, &mut growth)? else {
                return Ok(None);
            };
            for (&(fit, _, _), tree) in batch.iter().zip(grown) {
                forests[fit].trees.push(tree);
            }
        }
        Ok(Some(forests))
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
            |_, seed| Cow::Owned(self.fit_weights(seed, rows, y.len())),
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
    /// `weights(k, seed)`, all of them within one node budget: level by
    /// level when they are shallow enough, else depth first.
    fn grow_trees<'w>(
        &self,
        data: &SortedColumns,
        y: ArrayView1<f64>,
        mut weights: impl FnMut(usize, u32) -> Cow<'w, [f64]>,
        stop: &Stop,
    ) -> Result<Forest, FitError> {
        let y: Vec<f64> = y.to_vec();
        let one_fit = |_, k, seed| weights(k, seed);
        let shallow = match levels_pay() {
            true => self.grow_shallow_with(data, &y, 1, one_fit, 1, stop)?,
            false => None,
        };
        match shallow.and_then(|forests| forests.into_iter().next()) {
            Some(forest) => Ok(forest),
            None => self.grow_depth_first(data, &y, weights, stop),
        }
    }

    /// [`Self::grow_trees`], every tree grown depth first.
    fn grow_depth_first<'w>(
        &self,
        data: &SortedColumns,
        y: &[f64],
        mut weights: impl FnMut(usize, u32) -> Cow<'w, [f64]>,
        stop: &Stop,
    ) -> Result<Forest, FitError> {
        let limits = self.shape.limits(data.n_features());
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
                trees.push(grow(
                    data,
                    (y, weight),
                    Some(root),
                    &limits,
                    Self::rand_r_seed(seed),
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

    /// Shallow trees grown a level at a time, many trees' nodes scanned
    /// together, are the trees grown depth first, bit for bit: on columns
    /// of distinct values and with ties, for several `min_samples_leaf`,
    /// depths 1 and 2, more trees than one batch of lanes, with bootstrap
    /// or not, on a fold's rows and on all, on one thread or two.
    #[test]
    fn shallow_trees_grown_by_levels_are_the_trees_grown_depth_first() {
        let distinct = generated(160, 30);
        // Halves: most columns hold each value many times over.
        let tied = crate::dataset::Dataset::new(
            distinct.x().mapv(|v| (v * 2.0).round() / 2.0),
            distinct.y().to_owned(),
        )
        .unwrap();
        // Few rows, constant and two-valued columns, few positive targets.
        let edge = crate::dataset::Dataset::new(
            ndarray::Array2::from_shape_fn((23, 6), |(r, f)| match f {
                0 | 4 => 1.5,
                1 => (r % 2) as f64,
                _ => ((r * (f + 2)) % 23) as f64 - 0.5 * f as f64,
            }),
            ndarray::Array1::from_shape_fn(23, |r| f64::from(r % 7 == 3)),
        )
        .unwrap();
        let fits_of = |n: usize| [(0..n).filter(|r| r % 5 != 2).collect::<Vec<_>>(), (0..n).collect()];
        let configs = [
            json!({"n_estimators": 2, "max_depth": 2, "min_samples_leaf": 2, "random_state": 42}),
            json!({"n_estimators": 21, "max_depth": 2, "random_state": 5}),
            json!({"n_estimators": 5, "max_depth": 1, "min_samples_leaf": 4, "random_state": 8}),
            json!({"n_estimators": 3, "max_depth": 2, "bootstrap": false,
                   "min_samples_leaf": 5, "random_state": 2}),
            json!({"n_estimators": 4, "max_depth": 2, "max_features": 0.6,
                   "min_samples_split": 30, "random_state": 4}),
        ];
        let mut splits = 0;
        for ds in [&distinct, &tied, &edge] {
            let data = SortedColumns::new(ds.x().view());
            let y = ds.y().to_vec();
            let (n, fits) = (ds.n_samples(), fits_of(ds.n_samples()));
            for config in &configs {
                let params =
                    crate::models::parse::<RandomForestParams>(config.as_object().unwrap()).unwrap();
                let stop = Stop::never();
                let by_levels = |threads| {
                    params
                        .grow_shallow_fits(&data, &y, &fits, threads, &stop)
                        .unwrap()
                        .expect("shallow enough to grow by levels")
                };
                let (one, two) = (by_levels(1), by_levels(2));
                assert_eq!(one, two, "{config}: one thread or two");
                for (rows, forest) in fits.iter().zip(one) {
                    let weights = |_, seed| Cow::Owned(params.fit_weights(seed, rows, n));
                    let deep = params
                        .grow_depth_first(&data, &y, weights, &stop)
                        .unwrap();
                    assert_eq!(forest, deep, "{config}, {} rows", rows.len());
                    splits += forest.trees.iter().map(|t| t.value.len() / 2).sum::<usize>();
                }
            }
        }
        assert!(splits > 100, "{splits} splits prove little");
        // Deeper trees, fewer features drawn or other targets: depth first.
        let fits = fits_of(distinct.n_samples());
        let y = distinct.y().to_vec();
        let data = SortedColumns::new(distinct.x().view());
        let halves: Vec<f64> = y.iter().map(|v| v * 0.5).collect();
        for (config, y) in [
            (json!({"n_estimators": 2, "max_depth": 3}), &y),
            (json!({"n_estimators": 2, "max_depth": 2, "max_features": "sqrt"}), &y),
            (json!({"n_estimators": 2, "max_depth": 2}), &halves),
        ] {
            let params =
                crate::models::parse::<RandomForestParams>(config.as_object().unwrap()).unwrap();
            let grown = params.grow_shallow_fits(&data, y, &fits, 1, &Stop::never());
            assert_eq!(grown.unwrap(), None, "{config}");
        }
    }
}
