//! The Gram matrix of a dataset's rows, computed once and shared by every
//! fold of the models that solve in row space when there are more features
//! than rows (LinearRegression's minimum-norm solution, LinearSVR's dual).

use ndarray::{Array2, ArrayView2};

/// `X Xᵀ` of the uncentred rows: a fold's Gram matrix is a selection of it,
/// `O(n²)` instead of a new `O(n² p)` product per fold.
///
/// Memory: it exists only when `n < p`, so its `n²` entries never outnumber
/// the `n·p` of the dataset itself; the bounds on a request's dataset bound it.
#[derive(Debug, Clone)]
pub struct RowGram(Array2<f64>);

impl RowGram {
    /// The Gram matrix of `x`'s rows, or `None` when the rows are not fewer
    /// than the features (the models then work in feature space).
    pub fn of(x: ArrayView2<f64>) -> Option<Self> {
        (x.nrows() < x.ncols()).then(|| Self(x.dot(&x.t())))
    }

    /// The Gram matrix of the rows `rows`, with `add` added to every entry
    /// (a constant feature's contribution).
    pub fn select(&self, rows: &[usize], add: f64) -> Array2<f64> {
        let k = &self.0;
        Array2::from_shape_fn((rows.len(), rows.len()), |(i, j)| {
            k[[rows[i], rows[j]]] + add
        })
    }
}
