//! Why a decoded model was refused: the checks that keep a crafted model
//! from indexing out of bounds or looping while it predicts.

use thiserror::Error;

use crate::stack::StackError;

/// An inconsistency found in a decoded model.
#[derive(Debug, Error)]
pub enum InvalidModel {
    /// The parameters name one kind of model and the fitted state another.
    #[error("{model} cannot hold the fitted state of another kind of model")]
    WrongState {
        /// The model the parameters name.
        model: &'static str,
    },
    /// A linear model's coefficients do not match its feature count.
    #[error("{model} has {coefs} coefficients for {features} features")]
    Coefficients {
        /// The model's name.
        model: &'static str,
        /// Coefficients held.
        coefs: usize,
        /// Features the model was fitted on.
        features: usize,
    },
    /// A tree model's tree count differs from what its parameters grow.
    #[error("{model} has {trees} trees but its parameters grow {expected}")]
    TreeCount {
        /// The model's name.
        model: &'static str,
        /// Trees held.
        trees: usize,
        /// Trees the parameters grow.
        expected: usize,
    },
    /// A forest without trees.
    #[error("forest has no trees")]
    NoTrees,
    /// A tree whose node arrays differ in length.
    #[error("tree arrays have inconsistent lengths {lens:?} / {nodes}")]
    TreeArrays {
        /// Lengths of feature, threshold, children_left, children_right, n_node_samples.
        lens: [usize; 5],
        /// Length of the value array.
        nodes: usize,
    },
    /// A node whose children are not later nodes of the tree.
    #[error("node {node} has invalid children {left}, {right}")]
    TreeChildren {
        /// The node.
        node: usize,
        /// Its left child as stored.
        left: i64,
        /// Its right child as stored.
        right: i64,
    },
    /// A node that splits on a feature the model does not have.
    #[error("node {node} splits on feature {feature} of {n_features}")]
    TreeFeature {
        /// The node.
        node: usize,
        /// The feature it splits on.
        feature: i64,
        /// Features the model was fitted on.
        n_features: usize,
    },
    /// A node whose threshold is NaN.
    #[error("node {node} has a NaN threshold")]
    NanThreshold {
        /// The node.
        node: usize,
    },
    /// A KNN model whose training matrix does not match its targets.
    #[error(
        "KNeighborsRegressor holds a {shape:?} matrix for {labels} rows of {n_features} features"
    )]
    NeighbourShape {
        /// Shape of the stored training matrix.
        shape: (usize, usize),
        /// Stored targets.
        labels: usize,
        /// Features the model was fitted on.
        n_features: usize,
    },
    /// A KNN model asking for more neighbours than it holds rows.
    #[error("KNeighborsRegressor n_neighbors {k} is not in 1..={n}")]
    NeighbourCount {
        /// `n_neighbors`.
        k: usize,
        /// Training rows held.
        n: usize,
    },
    /// A model list longer than any run writes.
    #[error("model list holds {len} models; the limit is {limit}")]
    ListTooLong {
        /// Models in the list.
        len: usize,
        /// [`crate::serial::MAX_LIST_MODELS`].
        limit: usize,
    },
    /// A model list whose order refers past its distinct models.
    #[error("model list refers to model {index} of {len}")]
    ListIndex {
        /// The index referred to.
        index: usize,
        /// Distinct models held.
        len: usize,
    },
    /// A model list holding a model it never uses.
    #[error("model list holds model {0} but never uses it")]
    ListUnused(usize),
    /// Level-0 models fitted on different feature counts.
    #[error("level-0 models disagree on the number of features")]
    FeaturesDisagree,
    /// The two layers do not fit together.
    #[error("{0}")]
    Stack(#[from] StackError),
}
