//! `DecisionTreeRegressor`: one CART tree, grown as each tree of the forest
//! is (the same splitter, limits and node budget, `random_forest.rs`) on
//! every row with weight one, its feature order from `rand_r` seeded by
//! `RandomState(random_state).randint(0, 2^31-1)` as scikit-learn's. The
//! fitted state is a forest of one tree, so prediction, the stored format
//! and its checks are the forest's.

/// Checked `DecisionTreeRegressor` parameters: a forest's of one tree.
pub type DecisionTreeParams = super::random_forest::TreesParams<true>;
