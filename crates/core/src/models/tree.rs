//! A regression tree grown exactly as scikit-learn's `DecisionTreeRegressor`
//! (squared error, best splitter, depth-first) grows it inside a forest.
//!
//! Faithful details, each of which changes results if missed:
//! - features are compared as float32, as scikit-learn converts X to float32;
//! - candidate splits lie only between values more than 1e-7 apart;
//! - features are visited in the order of scikit-learn's Fisher-Yates draw with
//!   its own `rand_r`, including the bookkeeping of constant features that it
//!   carries from parent to child, so that ties between equally good splits
//!   resolve to the same feature;
//! - rows with zero weight (not drawn by the bootstrap) are not in the tree.
//!
//! Speed: instead of sorting every feature at every node as scikit-learn does,
//! each column is sorted once per fit ([`SortedColumns`], shared by all trees of
//! a forest) and a node's rows are picked out of that order by a linear scan.

use serde::{Deserialize, Serialize};

use super::{FitError, InvalidModel};
use crate::rng::SklearnRandR;
use crate::serial::budget;
use crate::stop::Stop;

/// scikit-learn's `FEATURE_THRESHOLD`.
const FEATURE_THRESHOLD: f64 = 1e-7;
/// scikit-learn's `EPSILON` for "this node is pure".
const EPSILON: f64 = f64::EPSILON;
pub const TREE_LEAF: i64 = -1;
pub const TREE_UNDEFINED: i64 = -2;

/// A fitted tree in scikit-learn's array layout (`tree_.feature`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    #[serde(deserialize_with = "budget::vec")]
    pub feature: Vec<i64>,
    #[serde(deserialize_with = "budget::vec")]
    pub threshold: Vec<f64>,
    #[serde(deserialize_with = "budget::vec")]
    pub children_left: Vec<i64>,
    #[serde(deserialize_with = "budget::vec")]
    pub children_right: Vec<i64>,
    #[serde(deserialize_with = "budget::vec")]
    pub value: Vec<f64>,
    #[serde(deserialize_with = "budget::vec")]
    pub n_node_samples: Vec<u64>,
}

impl Tree {
    /// The leaf value for one row.
    pub fn predict_row(&self, row: impl Fn(usize) -> f64) -> f64 {
        let mut node = 0usize;
        loop {
            let left = self.children_left[node];
            if left == TREE_LEAF {
                return self.value[node];
            }
            let f = self.feature[node] as usize;
            // scikit-learn compares the float32 feature against a float64 threshold
            let v = f64::from(row(f) as f32);
            node = if v <= self.threshold[node] {
                left as usize
            } else {
                self.children_right[node] as usize
            };
        }
    }

    /// Rejects trees that could index out of bounds or loop when predicting.
    pub fn validate(&self, n_features: usize) -> Result<(), InvalidModel> {
        let n = self.value.len();
        let lens = [
            self.feature.len(),
            self.threshold.len(),
            self.children_left.len(),
            self.children_right.len(),
            self.n_node_samples.len(),
        ];
        if n == 0 || lens.iter().any(|&l| l != n) {
            return Err(InvalidModel::TreeArrays { lens, nodes: n });
        }
        for node in 0..n {
            let (l, r) = (self.children_left[node], self.children_right[node]);
            if l == TREE_LEAF {
                continue;
            }
            // Children always come after their parent, which rules out cycles.
            let ok = |c: i64| c > node as i64 && (c as usize) < n;
            if !ok(l) || !ok(r) {
                return Err(InvalidModel::TreeChildren {
                    node,
                    left: l,
                    right: r,
                });
            }
            let f = self.feature[node];
            if f < 0 || f as usize >= n_features {
                return Err(InvalidModel::TreeFeature {
                    node,
                    feature: f,
                    n_features,
                });
            }
            if self.threshold[node].is_nan() {
                return Err(InvalidModel::NanThreshold { node });
            }
        }
        Ok(())
    }
}

/// Every column of the training rows as float32, sorted once: for feature `f`,
/// `values[f * n..(f + 1) * n]` ascending and `rows[...]` the row of each value.
pub struct SortedColumns {
    n: usize,
    p: usize,
    values: Vec<f32>,
    rows: Vec<u32>,
}

/// Maps a float32 to an integer with the same order (IEEE-754 total order).
fn order_key(v: f32) -> u32 {
    let bits = v.to_bits();
    if bits & 0x8000_0000 != 0 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

/// The float32 whose [`order_key`] is `key`.
fn from_order_key(key: u32) -> f32 {
    f32::from_bits(if key & 0x8000_0000 != 0 {
        key & 0x7FFF_FFFF
    } else {
        !key
    })
}

/// Columns per tile when [`SortedColumns::new`] lays out its keys.
const KEY_TILE: usize = 32;

/// Sorts the columns `columns` of `x` into `values` and `rows` (each
/// `columns.len() * n` long, column after column).
///
/// (value key, row) packed in one u64 sorts as plain integers, without a
/// comparator call per pair (about twice as fast; `cargo bench -p
/// stacking-core`). The keys are laid out column after column, written a
/// tile of columns at a time so that the rows are read in runs and the
/// columns written in runs (reading a column of a row-major matrix strides by
/// p).
fn sort_columns(
    x: ndarray::ArrayView2<f64>,
    columns: std::ops::Range<usize>,
    values: &mut [f32],
    rows: &mut [u32],
) {
    let n = x.nrows();
    let first = columns.start;
    let mut keys = vec![0u64; columns.len() * n];
    for start in columns.clone().step_by(KEY_TILE) {
        let end = (start + KEY_TILE).min(columns.end);
        for (i, row) in x.rows().into_iter().enumerate() {
            let tile = row.slice(ndarray::s![start..end]);
            for (f, &v) in (start..end).zip(tile.iter()) {
                keys[(f - first) * n + i] = (u64::from(order_key(v as f32)) << 32) | i as u64;
            }
        }
    }
    for ((column, values), rows) in keys
        .chunks_mut(n)
        .zip(values.chunks_mut(n))
        .zip(rows.chunks_mut(n))
    {
        // Stable on the value key: rows were written in ascending order, so
        // ties stay in row order, as sorting the whole u64 orders them.
        radsort::sort_by_key(column, |k| (k >> 32) as u32);
        for ((&k, value), row) in column.iter().zip(values).zip(rows) {
            *row = (k & 0xFFFF_FFFF) as u32;
            *value = from_order_key((k >> 32) as u32);
        }
    }
}

impl SortedColumns {
    pub fn new(x: ndarray::ArrayView2<f64>) -> Self {
        Self::with_threads(x, 1)
    }

    /// [`SortedColumns::new`], its columns sorted on up to `threads` threads
    /// (the same result for any count).
    pub fn with_threads(x: ndarray::ArrayView2<f64>, threads: usize) -> Self {
        let (n, p) = x.dim();
        let mut values = vec![0.0f32; n * p];
        let mut rows = vec![0u32; n * p];
        if n > 0 && p > 0 {
            // Whole tiles of columns per thread.
            let per_thread = p.div_ceil(threads.max(1)).div_ceil(KEY_TILE) * KEY_TILE;
            let mut parts = values
                .chunks_mut(per_thread * n)
                .zip(rows.chunks_mut(per_thread * n))
                .enumerate()
                .map(|(t, (values, rows))| {
                    let first = t * per_thread;
                    (first..first + values.len() / n, values, rows)
                });
            std::thread::scope(|scope| {
                // The calling thread sorts the first part itself.
                let mine = parts.next();
                for (columns, values, rows) in parts {
                    scope.spawn(move || sort_columns(x, columns, values, rows));
                }
                if let Some((columns, values, rows)) = mine {
                    sort_columns(x, columns, values, rows);
                }
            });
        }
        Self { n, p, values, rows }
    }

    pub fn n_features(&self) -> usize {
        self.p
    }

    fn column(&self, f: usize) -> impl Iterator<Item = (f32, u32)> + '_ {
        let range = f * self.n..(f + 1) * self.n;
        self.values[range.clone()]
            .iter()
            .copied()
            .zip(self.rows[range].iter().copied())
    }
}

/// Growth limits of one tree.
pub struct TreeLimits {
    pub max_depth: usize,
    pub min_samples_split: usize,
    pub min_samples_leaf: usize,
    pub max_features: usize,
}

struct NodeRecord {
    rows: Vec<u32>,
    depth: usize,
    parent: Option<(usize, bool)>,
    impurity: f64,
    n_constant_features: usize,
    /// The rows in each feature's order, handed down by the parent.
    lists: Option<NodeLists>,
}

/// A node's rows in each feature's sorted order (`(value, row)`, feature `f`
/// at `entries[f * len..(f + 1) * len]`), for the features whose order is
/// known (`filled`).
///
/// A node that will be split keeps the orders its scan picks out, and hands
/// each child its part of them in one pass; a child then reads its orders
/// instead of picking its rows out of all `n` (the cost of a node goes from
/// `p·n` to `p·rows in the node`). Memory: the pending nodes of a depth-first
/// growth hold disjoint rows, so all lists together hold at most `p·n`
/// entries, the size of [`SortedColumns`].
struct NodeLists {
    len: usize,
    /// One spare entry at the end: the branch-free partition writes one
    /// entry past each feature's part.
    entries: Vec<(f32, u32)>,
    filled: Vec<bool>,
}

impl NodeLists {
    fn new(len: usize, p: usize) -> Self {
        Self {
            len,
            entries: vec![(0.0, 0); p * len + 1],
            filled: vec![false; p],
        }
    }

    fn get(&self, f: usize) -> Option<&[(f32, u32)]> {
        let range = f * self.len..(f + 1) * self.len;
        self.filled[f].then(|| &self.entries[range])
    }

    /// Keeps feature `f`'s order, when it has the node's row count.
    fn set(&mut self, f: usize, members: &[(f32, u32)]) {
        if members.len() == self.len {
            self.entries[f * self.len..(f + 1) * self.len].copy_from_slice(members);
            self.filled[f] = true;
        }
    }

    /// The lists of the rows whose `tag` is `left_tag` and of the others,
    /// in one pass over every known feature, keeping each feature's order.
    fn partition(&self, tag: &[u32], left_tag: u32, n_left: usize) -> (Self, Self) {
        let p = self.filled.len();
        let n_right = self.len - n_left;
        let (mut left, mut right) = (Self::new(n_left, p), Self::new(n_right, p));
        for f in (0..p).filter(|&f| self.filled[f]) {
            let (mut l, mut r) = (f * n_left, f * n_right);
            for &entry in &self.entries[f * self.len..(f + 1) * self.len] {
                // Written to both sides, kept by one: no branch to mispredict.
                left.entries[l] = entry;
                right.entries[r] = entry;
                let is_left = usize::from(tag[entry.1 as usize] == left_tag);
                l += is_left;
                r += 1 - is_left;
            }
            // A count that disagrees (it cannot) leaves the feature unknown.
            left.filled[f] = l == (f + 1) * n_left;
            right.filled[f] = r == (f + 1) * n_right;
        }
        (left, right)
    }
}

struct Split {
    feature: usize,
    threshold: f64,
}

/// Grows one tree on the rows with non-zero `weight`, adding at most
/// `*node_budget` nodes (and taking them off it), checking `stop` at every
/// node.
pub fn grow(
    data: &SortedColumns,
    y: &[f64],
    weight: &[f64],
    limits: &TreeLimits,
    rand_r_seed: u32,
    growth: &mut Growth<'_>,
) -> Result<Tree, FitError> {
    let reciprocal = reciprocal_table(weight);
    let whole = reciprocal.is_some();
    let mut builder = Builder {
        data,
        y,
        weight,
        limits,
        rand: SklearnRandR::new(rand_r_seed),
        features: (0..data.p).collect(),
        constant_features: vec![0; data.p],
        tag: vec![u32::MAX; data.n],
        next_tag: 0,
        row_stats: y
            .iter()
            .zip(weight)
            .map(|(y, &w)| RowStat {
                wy: y * w,
                w,
                count: if whole { w as u32 } else { 0 },
            })
            .collect(),
        members: Vec::with_capacity(data.n + 1),
        reciprocal,
        tree: Tree {
            feature: Vec::new(),
            threshold: Vec::new(),
            children_left: Vec::new(),
            children_right: Vec::new(),
            value: Vec::new(),
            n_node_samples: Vec::new(),
        },
    };
    builder.run(growth)?;
    Ok(builder.tree)
}

/// What bounds the growth of a forest's trees: the nodes it may still add
/// (a cap on its memory), and the flag that stops it.
pub struct Growth<'a> {
    pub node_budget: usize,
    pub stop: &'a Stop,
}

struct Builder<'a> {
    data: &'a SortedColumns,
    y: &'a [f64],
    weight: &'a [f64],
    limits: &'a TreeLimits,
    rand: SklearnRandR,
    features: Vec<usize>,
    constant_features: Vec<usize>,
    /// Which node (by tag) each row currently belongs to.
    tag: Vec<u32>,
    next_tag: u32,
    /// What the scan adds up for every row, side by side.
    row_stats: Vec<RowStat>,
    /// Scratch: the current node's (value, row) of one feature, in order.
    members: Vec<(f32, u32)>,
    /// `1 / c` for the whole numbers the weights' sums can reach, when the
    /// weights are whole numbers.
    reciprocal: Option<Vec<f64>>,
    tree: Tree,
}

/// Weighted sums of a set of rows: (Σw, Σw·y, Σw·y²).
fn sums(rows: &[u32], y: &[f64], w: &[f64]) -> (f64, f64, f64) {
    rows.iter().fold((0.0, 0.0, 0.0), |(sw, swy, swy2), &r| {
        let (wi, yi) = (w[r as usize], y[r as usize]);
        (sw + wi, swy + wi * yi, swy2 + wi * yi * yi)
    })
}

fn impurity_of(sw: f64, swy: f64, swy2: f64) -> f64 {
    let mean = swy / sw;
    swy2 / sw - mean * mean
}

impl Builder<'_> {
    fn run(&mut self, growth: &mut Growth<'_>) -> Result<(), FitError> {
        let rows: Vec<u32> = (0..self.data.n as u32)
            .filter(|&r| self.weight[r as usize] != 0.0)
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        let (sw, swy, swy2) = sums(&rows, self.y, self.weight);
        let mut stack = vec![NodeRecord {
            rows,
            depth: 0,
            parent: None,
            impurity: impurity_of(sw, swy, swy2),
            n_constant_features: 0,
            lists: None,
        }];
        while let Some(mut rec) = stack.pop() {
            growth.stop.check()?;
            growth.node_budget = growth
                .node_budget
                .checked_sub(1)
                .ok_or(FitError::TooLarge {
                    model: "RandomForestRegressor",
                    what: "its trees would have more than MAX_FOREST_NODES nodes in all",
                })?;
            let (sw, swy, _) = sums(&rec.rows, self.y, self.weight);
            let n_node = rec.rows.len();
            let mut is_leaf = !self.may_split(rec.depth, n_node) || rec.impurity <= EPSILON;
            let mut split = None;
            let mut n_constant = rec.n_constant_features;
            let node_tag = self.next_tag;
            if !is_leaf {
                let tag = node_tag;
                self.next_tag += 1;
                for &r in &rec.rows {
                    self.tag[r as usize] = tag;
                }
                let count = rec
                    .rows
                    .iter()
                    .map(|&r| self.row_stats[r as usize].count)
                    .fold(0u32, u32::wrapping_add);
                let node = NodeSums {
                    tag,
                    n: n_node,
                    sw,
                    swy,
                    count,
                };
                // Keep the orders the scan picks out only when a child may
                // be split in turn.
                let mut lists = rec.lists.take().or_else(|| {
                    self.may_split(
                        rec.depth + 1,
                        n_node.saturating_sub(self.limits.min_samples_leaf),
                    )
                    .then(|| NodeLists::new(n_node, self.data.p))
                });
                let (best, constants) =
                    self.best_split(&node, rec.n_constant_features, lists.as_mut());
                rec.lists = lists;
                n_constant = constants;
                split = best;
                is_leaf = split.is_none();
            }
            let node_id = self.tree.value.len();
            if let Some((parent, is_left)) = rec.parent {
                if is_left {
                    self.tree.children_left[parent] = node_id as i64;
                } else {
                    self.tree.children_right[parent] = node_id as i64;
                }
            }
            self.tree.value.push(swy / sw);
            self.tree.n_node_samples.push(n_node as u64);
            self.tree.children_left.push(TREE_LEAF);
            self.tree.children_right.push(TREE_LEAF);
            match split.filter(|_| !is_leaf) {
                None => {
                    self.tree.feature.push(TREE_UNDEFINED);
                    self.tree.threshold.push(TREE_UNDEFINED as f64);
                }
                Some(s) => {
                    self.tree.feature.push(s.feature as i64);
                    self.tree.threshold.push(s.threshold);
                    // This node's rows still carry `node_tag`; the left ones
                    // get their own tag.
                    let left_tag = self.next_tag;
                    self.next_tag += 1;
                    let (mut left, mut right) = (Vec::new(), Vec::new());
                    for (v, r) in self.data.column(s.feature) {
                        if self.tag[r as usize] == node_tag {
                            if f64::from(v) <= s.threshold {
                                self.tag[r as usize] = left_tag;
                                left.push(r);
                            } else {
                                right.push(r);
                            }
                        }
                    }
                    let depth = rec.depth + 1;
                    let (left_lists, right_lists) = match &rec.lists {
                        Some(lists)
                            if self.may_split(depth, left.len())
                                || self.may_split(depth, right.len()) =>
                        {
                            let (l, r) = lists.partition(&self.tag, left_tag, left.len());
                            (Some(l), Some(r))
                        }
                        _ => (None, None),
                    };
                    drop(rec.lists.take());
                    let child = |rows: Vec<u32>,
                                 is_left: bool,
                                 lists: Option<NodeLists>,
                                 y: &[f64],
                                 w: &[f64]| {
                        let (sw, swy, swy2) = sums(&rows, y, w);
                        NodeRecord {
                            impurity: impurity_of(sw, swy, swy2),
                            rows,
                            depth,
                            parent: Some((node_id, is_left)),
                            n_constant_features: n_constant,
                            lists,
                        }
                    };
                    // Right is pushed first so the left subtree is built first.
                    stack.push(child(right, false, right_lists, self.y, self.weight));
                    stack.push(child(left, true, left_lists, self.y, self.weight));
                }
            }
        }
        Ok(())
    }

    /// Whether a node at `depth` with `n_node` rows may be split (before
    /// looking at its impurity).
    fn may_split(&self, depth: usize, n_node: usize) -> bool {
        let limits = self.limits;
        depth < limits.max_depth
            && n_node >= limits.min_samples_split
            && n_node >= 2 * limits.min_samples_leaf
    }

    /// scikit-learn's `node_split_best`. Returns the split (if any) and the
    /// number of constant features to hand to the children. `lists` holds
    /// the node's known feature orders and keeps those its scan picks out.
    fn best_split(
        &mut self,
        node: &NodeSums,
        n_known_constants: usize,
        mut lists: Option<&mut NodeLists>,
    ) -> (Option<Split>, usize) {
        let p = self.data.p;
        let mut n_found_constants = 0;
        let mut n_drawn_constants = 0;
        let mut n_total_constants = n_known_constants;
        let mut n_visited = 0;
        let mut f_i = p;
        let mut best: Option<Split> = None;
        let mut best_proxy = f64::NEG_INFINITY;
        while f_i > n_total_constants
            && (n_visited < self.limits.max_features
                || n_visited <= n_found_constants + n_drawn_constants)
        {
            n_visited += 1;
            let mut f_j = self
                .rand
                .rand_int(n_drawn_constants, f_i - n_found_constants);
            if f_j < n_known_constants {
                self.features.swap(n_drawn_constants, f_j);
                n_drawn_constants += 1;
                continue;
            }
            f_j += n_found_constants;
            let feature = self.features[f_j];
            let scan = self.scan_feature(feature, node, best_proxy, lists.as_deref_mut());
            if scan.last <= scan.first + FEATURE_THRESHOLD {
                self.features.swap(f_j, n_total_constants);
                n_found_constants += 1;
                n_total_constants += 1;
                continue;
            }
            f_i -= 1;
            self.features.swap(f_i, f_j);
            if let Some((proxy, threshold)) = scan.best {
                if proxy > best_proxy {
                    best_proxy = proxy;
                    best = Some(Split { feature, threshold });
                }
            }
        }
        // scikit-learn's invariant: the known constants keep their order for
        // siblings and children, and newly found ones are appended.
        self.features[..n_known_constants]
            .copy_from_slice(&self.constant_features[..n_known_constants]);
        let found = n_known_constants..n_known_constants + n_found_constants;
        self.constant_features[found.clone()].copy_from_slice(&self.features[found]);
        (best, n_total_constants)
    }

    /// One pass over a feature's sorted values restricted to the node: the
    /// node's smallest and largest value, and the first best split position
    /// (scikit-learn evaluates positions in increasing order and keeps the
    /// first strict maximum), reported only if its proxy beats `floor`, the
    /// best of the features scanned before (a split that does not beat it is
    /// never chosen).
    ///
    /// Each candidate's proxy `sl²/wl + sr²/wr` takes two divisions, which
    /// were most of a forest's time. With whole-number weights (bootstrap
    /// counts) the weights' sums are whole numbers too, so a table of
    /// reciprocals gives the proxy to within a few roundings; only a candidate
    /// whose estimate comes within [`ESTIMATE_SLACK`] of the best so far is
    /// divided out exactly, and the comparison that decides is always made
    /// on the exact value, so the chosen split is the same bit for bit.
    fn scan_feature(
        &mut self,
        feature: usize,
        node: &NodeSums,
        floor: f64,
        lists: Option<&mut NodeLists>,
    ) -> FeatureScan {
        let msl = self.limits.min_samples_leaf;
        let (sw, swy, n_node) = (node.sw, node.swy, node.n);
        let members: &[(f32, u32)] = match lists {
            Some(lists) if lists.filled[feature] => lists.get(feature).unwrap_or_default(),
            lists => {
                // Branch-free compaction of the node's rows: whether a row
                // is in the node is a coin flip the branch predictor cannot
                // learn, and skipping non-members with a branch cost ~3x
                // more per row.
                let members = &mut self.members;
                members.resize(self.data.n + 1, (0.0, 0));
                let mut k = 0;
                for (v, r) in self.data.column(feature) {
                    members[k] = (v, r);
                    k += usize::from(self.tag[r as usize] == node.tag);
                }
                match lists {
                    Some(lists) => {
                        lists.set(feature, &members[..k]);
                        lists.get(feature).unwrap_or(&members[..k])
                    }
                    None => &members[..k],
                }
            }
        };
        // With whole weights, the running weight sums are whole numbers,
        // kept as integers too (`cl`) to index the table of reciprocals.
        let recip = self.reciprocal.as_deref().unwrap_or_default();
        let estimate = |sl: f64, cl: u32, sr: f64| {
            let cr = node.count.wrapping_sub(cl);
            match (recip.get(cl as usize), recip.get(cr as usize)) {
                (Some(il), Some(ir)) => sl * sl * il + sr * sr * ir,
                _ => f64::INFINITY,
            }
        };
        // Candidate positions (rows on the left) run from `lo` to `lo + span`.
        let lo = msl.max(1);
        let span = n_node.saturating_sub(msl).checked_sub(lo);
        let (mut sl, mut wl, mut cl) = (0.0, 0.0, 0u32);
        let mut prev = f64::NAN;
        let mut best: Option<(f64, f64)> = None;
        let mut bar = floor;
        let mut bar_slack = floor * (1.0 - ESTIMATE_SLACK);
        for (count, &(v, r)) in members.iter().enumerate() {
            let v = f64::from(v);
            // `prev` is NaN at the first row, which is never a candidate.
            if v > prev + FEATURE_THRESHOLD && span.is_some_and(|s| count.wrapping_sub(lo) <= s) {
                let sr = swy - sl;
                if estimate(sl, cl, sr) >= bar_slack {
                    let proxy = sl * sl / wl + sr * sr / (sw - wl);
                    if proxy > bar {
                        let mut threshold = prev / 2.0 + v / 2.0;
                        if threshold == v || threshold.is_infinite() {
                            threshold = prev;
                        }
                        best = Some((proxy, threshold));
                        bar = proxy;
                        bar_slack = proxy * (1.0 - ESTIMATE_SLACK);
                    }
                }
            }
            let row = &self.row_stats[r as usize];
            sl += row.wy;
            wl += row.w;
            cl = cl.wrapping_add(row.count);
            prev = v;
        }
        FeatureScan {
            first: members.first().map_or(f64::NAN, |&(v, _)| f64::from(v)),
            last: prev,
            best,
        }
    }
}

/// How far below the exact proxy its reciprocal-table estimate can fall:
/// each of the two terms is a product with one extra rounding of the
/// reciprocal and one of the product, so both are within `3 ε` relative and
/// so is their sum of non-negative terms; `16 ε` leaves room to spare.
const ESTIMATE_SLACK: f64 = 16.0 * f64::EPSILON;

/// `1 / c` for every whole `c` up to the weights' total, when every weight
/// is a whole number (bootstrap counts, or ones) and the total small enough
/// for a table (at most four entries per row); `None` otherwise.
fn reciprocal_table(weight: &[f64]) -> Option<Vec<f64>> {
    let limit = (weight.len() as f64).max(1.0) * 4.0;
    let whole = |w: f64| w >= 0.0 && w.fract() == 0.0 && w <= limit;
    if !weight.iter().all(|&w| whole(w)) {
        return None;
    }
    let total: f64 = weight.iter().sum();
    (total <= limit).then(|| (0..=total as usize).map(|c| 1.0 / c as f64).collect())
}

/// What a scan needs to know of the node being split.
struct NodeSums {
    tag: u32,
    /// Rows in the node.
    n: usize,
    /// Σw and Σw·y over them.
    sw: f64,
    swy: f64,
    /// Σw as a whole number, when the weights are whole.
    count: u32,
}

/// One row's part in the scan's sums: `w·y`, `w`, and `w` as a whole number
/// (zero unless every weight is whole).
struct RowStat {
    wy: f64,
    w: f64,
    count: u32,
}

struct FeatureScan {
    first: f64,
    last: f64,
    best: Option<(f64, f64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The radix-sorted columns against a plain sort of (value, row) pairs,
    /// on columns with ties, negative values, both zeros and more columns
    /// than one tile of keys.
    #[test]
    fn sorted_columns_order_values_and_break_ties_by_row() {
        let (n, p) = (37, KEY_TILE + 5);
        let x = ndarray::Array2::from_shape_fn((n, p), |(i, f)| match (i * 7 + f * 3) % 5 {
            0 => 0.0,
            1 => -0.0,
            2 => -((i % 4) as f64) * 1.5,
            3 => 1e30 * (f as f64 - 3.0),
            _ => (i % 3) as f64 + 0.25,
        });
        let sorted = SortedColumns::new(x.view());
        for f in 0..p {
            let mut expected: Vec<(f32, u32)> =
                (0..n).map(|i| (x[[i, f]] as f32, i as u32)).collect();
            expected.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let got: Vec<(f32, u32)> = sorted.column(f).collect();
            let bits =
                |v: &[(f32, u32)]| v.iter().map(|(a, r)| (a.to_bits(), *r)).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&expected), "feature {f}");
        }
        for threads in [2, 3, 64] {
            let parallel = SortedColumns::with_threads(x.view(), threads);
            assert_eq!(parallel.rows, sorted.rows, "{threads} threads");
            let bits = |v: &[f32]| v.iter().map(|a| a.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&parallel.values), bits(&sorted.values));
        }
    }
}
