//! The Gram matrix of a dataset's rows, computed once and shared by every
//! fold of the models that solve in row space when there are more features
//! than rows (LinearRegression's minimum-norm solution, LinearSVR's dual), and
//! by KNeighborsRegressor's out-of-fold distances.

use std::ops::Range;

use ndarray::{s, Array2, ArrayView2};

use crate::cv::Fold;
use crate::parallel::run_jobs;

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
        Self::of_threads(x, 1)
    }

    /// [`RowGram::of`], its blocks of rows multiplied on up to `threads`
    /// threads (the same matrix for any count).
    pub fn of_threads(x: ArrayView2<f64>, threads: usize) -> Option<Self> {
        (x.nrows() < x.ncols()).then(|| Self(lower_product(x, threads)))
    }

    /// The entry for rows `i` and `j`.
    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.0[[i, j]]
    }

    /// The Gram matrix of the rows `rows`, with `add` added to every entry
    /// (a constant feature's contribution).
    pub fn select(&self, rows: &[usize], add: f64) -> Array2<f64> {
        let k = &self.0;
        let m = rows.len();
        // Row by row, each a gather from one row of the products, rather
        // than indexing the matrix element by element (docs/benchmarks.md).
        let mut out = Vec::with_capacity(m * m);
        for &ri in rows {
            let row = k.row(ri);
            match row.as_slice() {
                Some(row) => out.extend(rows.iter().map(|&rj| row[rj] + add)),
                None => out.extend(rows.iter().map(|&rj| row[rj] + add)),
            }
        }
        Array2::from_shape_vec((m, m), out).unwrap_or_else(|_| Array2::zeros((m, m)))
    }
}

/// Dot products of every row with every row outside its own fold (and
/// with itself): all KNeighborsRegressor's out-of-fold search reads, for
/// about two fifths of the multiply-adds of the whole Gram matrix with five
/// folds (each unordered pair of folds once, no block within a fold).
///
/// Memory: as [`RowGram`], it exists only when `n < p`.
#[derive(Debug, Clone)]
pub struct CrossFoldGram(Array2<f64>);

impl CrossFoldGram {
    /// The cross-fold products of `x`'s rows, or `None` when the rows are
    /// not fewer than the features, or the folds are not contiguous ranges
    /// of test rows that cover the rows in order, each trained on all the
    /// others (KFold without shuffling, as the stack uses).
    pub fn of(x: ArrayView2<f64>, folds: &[Fold]) -> Option<Self> {
        Self::of_threads(x, folds, 1)
    }

    /// [`CrossFoldGram::of`], its blocks multiplied on up to `threads`
    /// threads (the same products for any count).
    pub fn of_threads(x: ArrayView2<f64>, folds: &[Fold], threads: usize) -> Option<Self> {
        if x.nrows() >= x.ncols() {
            return None;
        }
        let blocks = contiguous_blocks(folds, x.nrows())?;
        let mut k = blocked_lower(x, &blocks, false, threads);
        for (i, row) in x.rows().into_iter().enumerate() {
            k[[i, i]] = row.dot(&row);
        }
        Some(Self(k))
    }

    /// The product of rows `i` and `j`, for two rows in different folds or
    /// `i == j` (within a fold it is not computed).
    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.0[[i, j]]
    }
}

/// The folds' test rows as ranges, when each is a contiguous ascending range,
/// they follow one another from row 0 to row `n`, and each fold trains on
/// exactly the rows outside its range.
fn contiguous_blocks(folds: &[Fold], n: usize) -> Option<Vec<Range<usize>>> {
    let mut blocks = Vec::with_capacity(folds.len());
    let mut start = 0;
    for fold in folds {
        let end = start + fold.test.len();
        let test_in_order = fold.test.iter().copied().eq(start..end);
        let train_is_rest = fold.train.iter().copied().eq((0..start).chain(end..n));
        if !test_in_order || !train_is_rest {
            return None;
        }
        blocks.push(start..end);
        start = end;
    }
    (start == n).then_some(blocks)
}

/// Rows per block of [`lower_product`]: small enough that the blocks on the
/// diagonal, computed in full, add little (`n·BLOCK/2` extra dot products),
/// large enough for the matrix-product kernel to run at speed.
const BLOCK: usize = 32;

/// `X Xᵀ` from its lower triangle, in blocks of [`BLOCK`] rows.
fn lower_product(x: ArrayView2<f64>, threads: usize) -> Array2<f64> {
    let n = x.nrows();
    let blocks: Vec<Range<usize>> = (0..n)
        .step_by(BLOCK)
        .map(|start| start..(start + BLOCK).min(n))
        .collect();
    blocked_lower(x, &blocks, true, threads)
}

/// `X Xᵀ` of a symmetric product from below the diagonal: each block of rows
/// is multiplied only by the rows before it (and by itself when
/// `with_diagonal`; otherwise those entries stay zero), and the upper half
/// is mirrored from the lower, which also makes the matrix exactly
/// symmetric.
///
/// ndarray's product (matrixmultiply) rather than faer's triangular product:
/// with faer's kernels the solvers that ran after it in the same thread took
/// about 1.5x their time (LinearSVR 7.0 -> 10.7 ms, Lasso 6.6 -> 9.1 ms,
/// `cargo bench -p stacking-core`).
fn blocked_lower(
    x: ArrayView2<f64>,
    blocks: &[Range<usize>],
    with_diagonal: bool,
    threads: usize,
) -> Array2<f64> {
    let n = x.nrows();
    let upto = |block: &Range<usize>| {
        if with_diagonal {
            block.end
        } else {
            block.start
        }
    };
    // Each block's product on its own (the last blocks, the largest, first),
    // then copied into place: the copy is n²/2 values against n²p/2
    // multiply-adds.
    let products = run_jobs(blocks.len(), threads, |job| {
        let block = &blocks[blocks.len() - 1 - job];
        let before = x.slice(s![..upto(block), ..]);
        x.slice(s![block.clone(), ..]).dot(&before.t())
    });
    let mut k = Array2::<f64>::zeros((n, n));
    for (job, product) in products.iter().enumerate() {
        let block = &blocks[blocks.len() - 1 - job];
        k.slice_mut(s![block.clone(), ..upto(block)])
            .assign(product);
    }
    for i in 0..n {
        for j in i + 1..n {
            k[[i, j]] = k[[j, i]];
        }
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cv::kfold;
    use crate::dataset::generated;

    #[test]
    fn both_products_agree_with_a_full_product_where_they_are_defined() {
        let ds = generated(70, 90);
        let x = ds.x().view();
        let full = x.dot(&x.t());
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * (1.0 + b.abs());
        let gram = RowGram::of(x).unwrap();
        let folds = kfold(70, 5).unwrap();
        let cross = CrossFoldGram::of(x, &folds).unwrap();
        let fold_of = |i: usize| folds.iter().position(|f| f.test.contains(&i)).unwrap();
        for i in 0..70 {
            for j in 0..70 {
                assert!(close(gram.get(i, j), full[[i, j]]), "({i}, {j})");
                assert_eq!(gram.get(i, j), gram.get(j, i));
                if i == j || fold_of(i) != fold_of(j) {
                    assert!(close(cross.get(i, j), full[[i, j]]), "cross ({i}, {j})");
                }
            }
        }
    }

    #[test]
    fn products_are_the_same_on_any_number_of_threads() {
        let ds = generated(150, 200);
        let x = ds.x().view();
        let folds = kfold(150, 5).unwrap();
        let (gram, cross) = (
            RowGram::of(x).unwrap(),
            CrossFoldGram::of(x, &folds).unwrap(),
        );
        for threads in [2, 3, 8] {
            assert_eq!(RowGram::of_threads(x, threads).unwrap().0, gram.0);
            assert_eq!(
                CrossFoldGram::of_threads(x, &folds, threads).unwrap().0,
                cross.0
            );
        }
    }

    #[test]
    fn cross_fold_products_need_contiguous_folds_over_all_rows() {
        let x = Array2::<f64>::ones((6, 10));
        let mut folds = kfold(6, 3).unwrap();
        assert!(CrossFoldGram::of(x.view(), &folds).is_some());
        folds.swap(0, 1);
        assert!(CrossFoldGram::of(x.view(), &folds).is_none());
        assert!(CrossFoldGram::of(x.view(), &folds[..0]).is_none());
        let tall = Array2::<f64>::ones((12, 10));
        assert!(CrossFoldGram::of(tall.view(), &kfold(12, 3).unwrap()).is_none());
    }
}
