//! Growing one tree depth first, as scikit-learn's `DepthFirstTreeBuilder`
//! with the best splitter: its feature draw, its constant-feature
//! bookkeeping, its node order.

use super::levels::LaneScans;
use super::lists::NodeLists;
use super::scan::{
    reciprocal_table, scan_members, scan_whole_distinct, FeatureScan, NodeSums, RowStat,
};
use super::sorted::SortedColumns;
use super::{Tree, EPSILON, FEATURE_THRESHOLD, TREE_LEAF, TREE_UNDEFINED};
use crate::models::FitError;
use crate::rng::SklearnRandR;
use crate::stop::Stop;

/// Growth limits of one tree.
pub struct TreeLimits {
    pub max_depth: usize,
    pub min_samples_split: usize,
    pub min_samples_leaf: usize,
    pub max_features: usize,
}

impl TreeLimits {
    /// Whether a node at `depth` with `n_node` rows may be split (before
    /// looking at its impurity).
    pub(super) fn may_split(&self, depth: usize, n_node: usize) -> bool {
        depth < self.max_depth
            && n_node >= self.min_samples_split
            && n_node >= 2 * self.min_samples_leaf
    }
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

struct Split {
    feature: usize,
    threshold: f64,
}

/// The root lists of the trees whose row weights are `weights`, filled
/// together, to hand to [`grow`].
pub fn root_lists(data: &SortedColumns, weights: &[&[f64]]) -> Vec<RootLists> {
    NodeLists::roots(data, weights)
        .into_iter()
        .map(RootLists)
        .collect()
}

/// A root's rows in every feature's order (see [`root_lists`]).
pub struct RootLists(NodeLists);

/// Grows one tree on the rows with non-zero `weight`, adding at most
/// `growth.node_budget` nodes (and taking them off it), checking the stop
/// flag at every node. `root`, from [`root_lists`] with the same weights,
/// gives the root's rows in every feature's order instead of picking them
/// out of the columns.
pub fn grow(
    data: &SortedColumns,
    (y, weight): (&[f64], &[f64]),
    root: Option<RootLists>,
    limits: &TreeLimits,
    rand_r_seed: u32,
    growth: &mut Growth<'_>,
) -> Result<Tree, FitError> {
    let start = match root {
        Some(root) => Start::Lists(root.0),
        None => Start::Plain,
    };
    grow_from(data, (y, weight), start, limits, rand_r_seed, growth)
}

/// What a tree's growth starts from besides the columns.
pub(super) enum Start<'a> {
    /// Nothing: every node picks its rows out of the columns.
    Plain,
    /// The root's rows in every feature's order.
    Lists(NodeLists),
    /// The scans of the root and of its children, made ahead by a level.
    Ahead(ScansAhead<'a>),
}

/// The scans of a tree's first nodes, made ahead ([`super::levels`]).
#[derive(Clone, Copy, Default)]
pub(super) struct ScansAhead<'a> {
    pub(super) root: Option<LaneScans<'a>>,
    pub(super) left: Option<LaneScans<'a>>,
    pub(super) right: Option<LaneScans<'a>>,
}

/// [`grow`] from `start`.
pub(super) fn grow_from(
    data: &SortedColumns,
    (y, weight): (&[f64], &[f64]),
    start: Start<'_>,
    limits: &TreeLimits,
    rand_r_seed: u32,
    growth: &mut Growth<'_>,
) -> Result<Tree, FitError> {
    let (root, ahead) = match start {
        Start::Plain => (None, ScansAhead::default()),
        Start::Lists(lists) => (Some(lists), ScansAhead::default()),
        Start::Ahead(ahead) => (None, ahead),
    };
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
        reciprocal_pairs: whole.then(Vec::new),
        ahead,
        tree: Tree {
            feature: Vec::new(),
            threshold: Vec::new(),
            children_left: Vec::new(),
            children_right: Vec::new(),
            value: Vec::new(),
            n_node_samples: Vec::new(),
        },
    };
    builder.run(root, growth)?;
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
    /// For the node being split (count `C`): `[1 / c, 1 / (C - c)]` for every
    /// left count `c`, one load per candidate; `None` unless the weights are
    /// whole numbers.
    reciprocal_pairs: Option<Vec<[f64; 2]>>,
    /// Scans of the first nodes made ahead, read instead of scanning.
    ahead: ScansAhead<'a>,
    tree: Tree,
}

/// Weighted sums of a set of rows: (Σw, Σw·y, Σw·y²).
fn sums(rows: &[u32], y: &[f64], w: &[f64]) -> (f64, f64, f64) {
    rows.iter().fold((0.0, 0.0, 0.0), |(sw, swy, swy2), &r| {
        let (wi, yi) = (w[r as usize], y[r as usize]);
        (sw + wi, swy + wi * yi, swy2 + wi * yi * yi)
    })
}

pub(super) fn impurity_of(sw: f64, swy: f64, swy2: f64) -> f64 {
    let mean = swy / sw;
    swy2 / sw - mean * mean
}

impl Builder<'_> {
    fn run(&mut self, root: Option<NodeLists>, growth: &mut Growth<'_>) -> Result<(), FitError> {
        let rows: Vec<u32> = (0..self.data.n as u32)
            .filter(|&r| self.weight[r as usize] != 0.0)
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        let (sw, swy, swy2) = sums(&rows, self.y, self.weight);
        let n_root = rows.len();
        let mut stack = vec![NodeRecord {
            rows,
            depth: 0,
            parent: None,
            impurity: impurity_of(sw, swy, swy2),
            n_constant_features: 0,
            lists: root.filter(|lists| lists.len == n_root),
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
                };
                self.pair_reciprocals(count);
                let ahead = match (rec.depth, rec.parent) {
                    (0, None) => self.ahead.root,
                    (1, Some((_, true))) => self.ahead.left,
                    (1, Some((_, false))) => self.ahead.right,
                    _ => None,
                };
                // Keep the orders the scan picks out only when a child may
                // be split in turn (and is not scanned ahead).
                let mut lists = rec.lists.take().or_else(|| {
                    (ahead.is_none()
                        && self.may_split(
                            rec.depth + 1,
                            n_node.saturating_sub(self.limits.min_samples_leaf),
                        ))
                    .then(|| NodeLists::new(n_node, self.data.p))
                });
                let (best, constants) =
                    self.best_split(&node, rec.n_constant_features, ahead, lists.as_mut());
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

    /// Fills `reciprocal_pairs` for a node whose weights add up to `count`
    /// (left empty, so every candidate is divided out, should a sum fall
    /// outside the table, which whole weights cannot).
    fn pair_reciprocals(&mut self, count: u32) {
        let (Some(pairs), Some(recip)) = (&mut self.reciprocal_pairs, &self.reciprocal) else {
            return;
        };
        pairs.clear();
        let total = count as usize;
        if total < recip.len() {
            pairs.extend((0..=total).map(|c| [recip[c], recip[total - c]]));
        }
    }

    fn may_split(&self, depth: usize, n_node: usize) -> bool {
        self.limits.may_split(depth, n_node)
    }

    /// scikit-learn's `node_split_best`. Returns the split (if any) and the
    /// number of constant features to hand to the children. `ahead` holds
    /// the node's scans made ahead, if any; `lists` the node's known feature
    /// orders, and keeps those its scan picks out.
    fn best_split(
        &mut self,
        node: &NodeSums,
        n_known_constants: usize,
        ahead: Option<LaneScans<'_>>,
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
            let scan = match ahead.and_then(|scans| scans.get(feature)) {
                Some(scan) => scan,
                None => self.scan_feature(feature, node, best_proxy, lists.as_deref_mut()),
            };
            if scan.constant {
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
        let stats = &self.row_stats[..];
        let (best, last) = match &self.reciprocal_pairs {
            Some(pairs) if self.data.distinct(feature) => {
                scan_whole_distinct(members, stats, pairs, node, msl, floor)
            }
            Some(pairs) => scan_members::<true>(members, stats, pairs, node, msl, floor),
            None => scan_members::<false>(members, stats, &[], node, msl, floor),
        };
        let first = members.first().map_or(f64::NAN, |&(v, _)| f64::from(v));
        FeatureScan {
            constant: last <= first + FEATURE_THRESHOLD,
            best,
        }
    }
}
