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
//!
//! Shallow trees (`max_depth` at most 2, as the benchmark's) are grown a
//! level at a time instead, many trees' nodes scanned together
//! ([`levels`]), to the same trees.
//!
//! One file per part: [`sorted`] (the columns sorted once), [`grow`] (the
//! depth-first growth and scikit-learn's feature draw), `lists` (the feature
//! orders a node hands its children), `scan` (one feature's split search)
//! and [`levels`] (shallow trees a level at a time).

use serde::{Deserialize, Serialize};

use super::InvalidModel;
use crate::serial::budget;

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

mod grow;
mod levels;
mod lists;
mod scan;
mod sorted;

pub use grow::{grow, root_lists, Growth, TreeLimits};
pub use levels::{grow_shallow, levels_pay, shallow_shape, ShallowTree, LANES};
pub use sorted::SortedColumns;
