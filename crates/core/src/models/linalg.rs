//! Small dense kernels shared by the solvers.
//!
//! `dot` keeps eight independent accumulators so the compiler vectorises it;
//! ndarray's `dot` on 1-d views of a few hundred elements costs about twice as
//! much per call in the coordinate-descent inner loops, where it runs ~10^5 times.

/// Inner product of two equally long slices.
#[inline(always)]
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let (a_tail, b_tail) = (a_chunks.remainder(), b_chunks.remainder());
    for (ca, cb) in a_chunks.zip(b_chunks) {
        for k in 0..8 {
            acc[k] += ca[k] * cb[k];
        }
    }
    let mut tail = 0.0;
    for (x, y) in a_tail.iter().zip(b_tail) {
        tail += x * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// `x` in column-major order (column `j` at `[j * n..(j + 1) * n]`),
/// copied in 8 x 8 blocks: each block's rows are read and its columns
/// written one cache line each. Writing a whole row's columns at once (a
/// stride of `n` values per element) took most of a Lasso fit.
pub fn column_major(x: ndarray::ArrayView2<f64>) -> Vec<f64> {
    const B: usize = 8;
    let (n, p) = x.dim();
    let x = x.as_standard_layout();
    let Some(src) = x.as_slice() else {
        // Not reached (a standard layout is contiguous); correct anyway.
        return x.t().iter().copied().collect();
    };
    let mut out = vec![0.0; n * p];
    for i0 in (0..n).step_by(B) {
        for j0 in (0..p).step_by(B) {
            let j1 = (j0 + B).min(p);
            for i in i0..(i0 + B).min(n) {
                for (j, v) in (j0..j1).zip(&src[i * p + j0..i * p + j1]) {
                    out[j * n + i] = *v;
                }
            }
        }
    }
    out
}

/// `y += alpha * x`.
#[inline(always)]
pub fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// Columns factored between two looks at the stop flag in
/// [`cholesky_until`]: one panel's update is at most `m^2/4 * 64` multiply-
/// adds (about 40 ms at m = 5,800, the largest a 512 MiB budget admits).
const PANEL: usize = 64;

/// Factors the symmetric positive definite `m x m` matrix in `a` (column
/// major; only its lower triangle is read) into its lower Cholesky factor,
/// in place, one panel of [`PANEL`] columns at a time, checking `stop`
/// between panels: faer's own factorisation runs to its end, and at
/// thousands of columns that is seconds nobody may be waiting for.
/// `Ok(false)` when the matrix is not positive definite.
pub(crate) fn cholesky_until(
    a: &mut [f64],
    m: usize,
    stop: &crate::stop::Stop,
) -> Result<bool, crate::stop::StopReason> {
    use faer::linalg::matmul::matmul;
    use faer::linalg::triangular_solve::solve_lower_triangular_in_place;
    use faer::reborrow::{Reborrow, ReborrowMut};
    use faer::{Accum, MatMut, Par};
    let mut mat = MatMut::from_column_major_slice_mut(a, m, m);
    for j in (0..m).step_by(PANEL) {
        stop.check()?;
        let w = PANEL.min(m - j);
        if j > 0 {
            // A[j.., j..j+w] -= L[j.., ..j] L[j..j+w, ..j]^T
            let (left, right) = mat.rb_mut().split_at_col_mut(j);
            let left = left.rb();
            matmul(
                right.submatrix_mut(j, 0, m - j, w),
                Accum::Add,
                left.submatrix(j, 0, m - j, j),
                left.submatrix(j, 0, w, j).transpose(),
                -1.0,
                Par::Seq,
            );
        }
        // The diagonal block, by hand (at most 64 x 64).
        for c in j..j + w {
            let mut d = mat[(c, c)];
            for k in j..c {
                d -= mat[(c, k)] * mat[(c, k)];
            }
            if d.is_nan() || d <= 0.0 {
                return Ok(false);
            }
            let d = d.sqrt();
            mat[(c, c)] = d;
            for r in c + 1..j + w {
                let mut v = mat[(r, c)];
                for k in j..c {
                    v -= mat[(r, k)] * mat[(c, k)];
                }
                mat[(r, c)] = v / d;
            }
        }
        if j + w < m {
            // L[j+w.., j..j+w] = A[j+w.., j..j+w] L_jj^{-T}
            let (top, bottom) = mat.rb_mut().split_at_row_mut(j + w);
            solve_lower_triangular_in_place(
                top.rb().submatrix(j, j, w, w),
                bottom.submatrix_mut(0, j, m - j - w, w).transpose_mut(),
                Par::Seq,
            );
        }
    }
    Ok(true)
}

/// Solves `L L^T x = b` in place, `L` the factor [`cholesky_until`] left in
/// `l` (its upper triangle is not read).
pub(crate) fn cholesky_solve(l: &[f64], m: usize, b: &mut [f64]) {
    use faer::linalg::triangular_solve::{
        solve_lower_triangular_in_place, solve_upper_triangular_in_place,
    };
    use faer::reborrow::ReborrowMut;
    use faer::{MatMut, MatRef, Par};
    let l = MatRef::from_column_major_slice(l, m, m);
    let mut x = MatMut::from_column_major_slice_mut(b, m, 1);
    solve_lower_triangular_in_place(l, x.rb_mut(), Par::Seq);
    solve_upper_triangular_in_place(l.transpose(), x, Par::Seq);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stop::{Stop, StopReason};

    /// A symmetric positive definite matrix of `m` columns, column major.
    fn spd(m: usize) -> Vec<f64> {
        let mut a = vec![0.0; m * m];
        for i in 0..m {
            for j in 0..m {
                let v = ((i * 31 + j * 17) % 13) as f64 / 13.0 - 0.5;
                a[j * m + i] += v;
                a[i * m + j] += v;
            }
            a[i * m + i] += m as f64 + 2.0;
        }
        a
    }

    #[test]
    fn the_panelled_factor_solves_like_faers() {
        use faer::linalg::solvers::Solve;
        for m in [1, 5, 63, 64, 65, 200] {
            let a = spd(m);
            let b: Vec<f64> = (0..m).map(|i| (i as f64).sin()).collect();
            let mut l = a.clone();
            assert!(cholesky_until(&mut l, m, &Stop::never()).unwrap());
            let mut x = b.clone();
            cholesky_solve(&l, m, &mut x);
            let faer_a = faer::Mat::<f64>::from_fn(m, m, |i, j| a[j * m + i]);
            let faer_b = faer::Mat::<f64>::from_fn(m, 1, |i, _| b[i]);
            let want = faer_a.llt(faer::Side::Lower).unwrap().solve(&faer_b);
            for i in 0..m {
                assert!((x[i] - want[(i, 0)]).abs() < 1e-12, "m={m} i={i}");
            }
        }
    }

    #[test]
    fn a_matrix_that_is_not_positive_definite_is_told_and_a_stop_is_heard() {
        let mut a = spd(70);
        a[69 * 70 + 69] = -1e6;
        assert_eq!(cholesky_until(&mut a, 70, &Stop::never()), Ok(false));
        let stop = Stop::never();
        stop.request(StopReason::Cancelled);
        let mut a = spd(70);
        assert_eq!(
            cholesky_until(&mut a, 70, &stop),
            Err(StopReason::Cancelled)
        );
    }
}
