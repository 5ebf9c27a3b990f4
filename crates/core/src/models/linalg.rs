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
/// between panels: at thousands of columns a factorisation takes seconds
/// nobody may be waiting for. The panels' trailing updates are one matrix
/// product each (ndarray's, `matrixmultiply`), which is where the time goes.
/// `Ok(false)` when the matrix is not positive definite.
pub(crate) fn cholesky_until(
    a: &mut [f64],
    m: usize,
    stop: &crate::stop::Stop,
) -> Result<bool, crate::stop::StopReason> {
    use ndarray::{linalg::general_mat_mul, s, ArrayView2, ArrayViewMut2, ShapeBuilder};
    if a.len() != m * m {
        return Ok(false);
    }
    for j in (0..m).step_by(PANEL) {
        stop.check()?;
        let w = PANEL.min(m - j);
        let (left, right) = a.split_at_mut(j * m);
        if j > 0 {
            // A[j.., j..j+w] -= L[j.., ..j] L[j..j+w, ..j]^T
            let (Ok(done), Ok(mut panel)) = (
                ArrayView2::from_shape((m, j).f(), &*left),
                ArrayViewMut2::from_shape((m, w).f(), &mut right[..w * m]),
            ) else {
                return Ok(false); // not reached: the shapes are the slices'
            };
            general_mat_mul(
                -1.0,
                &done.slice(s![j.., ..]),
                &done.slice(s![j..j + w, ..]).t(),
                1.0,
                &mut panel.slice_mut(s![j.., ..]),
            );
        }
        // The panel's columns, left to right: the diagonal block by the
        // textbook recurrence (at most 64 x 64), and the rows below it
        // (L[j+w.., c] = (A[j+w.., c] - L[j+w.., j..c] L[c, j..c]^T) / L[c, c])
        // as column updates, contiguous in column-major order.
        let panel = &mut right[..w * m];
        for c in 0..w {
            let (before, rest) = panel.split_at_mut(c * m);
            let column = &mut rest[..m];
            for k in 0..c {
                let done = &before[k * m..(k + 1) * m];
                axpy(-done[j + c], &done[j + c..], &mut column[j + c..]);
            }
            let d = column[j + c];
            if d.is_nan() || d <= 0.0 {
                return Ok(false);
            }
            let d = d.sqrt();
            column[j + c] = d;
            for v in &mut column[j + c + 1..] {
                *v /= d;
            }
        }
    }
    Ok(true)
}

/// Solves `L L^T x = b` in place, `L` the factor [`cholesky_until`] left in
/// `l` (column major; its upper triangle is not read).
pub(crate) fn cholesky_solve(l: &[f64], m: usize, b: &mut [f64]) {
    if l.len() != m * m || b.len() != m {
        return;
    }
    // L y = b, column by column.
    for c in 0..m {
        let column = &l[c * m..(c + 1) * m];
        b[c] /= column[c];
        let yc = b[c];
        axpy(-yc, &column[c + 1..], &mut b[c + 1..]);
    }
    // L^T x = y, from the last row up: row c of L^T is column c of L.
    for c in (0..m).rev() {
        let column = &l[c * m..(c + 1) * m];
        b[c] = (b[c] - dot(&column[c + 1..], &b[c + 1..])) / column[c];
    }
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

    /// The factor multiplies back to the matrix and the solution solves
    /// the system, across panel boundaries.
    #[test]
    fn the_panelled_factor_reproduces_the_matrix_and_solves_its_system() {
        for m in [1, 5, 63, 64, 65, 130, 200] {
            let a = spd(m);
            let b: Vec<f64> = (0..m).map(|i| (i as f64).sin()).collect();
            let mut l = a.clone();
            assert!(cholesky_until(&mut l, m, &Stop::never()).unwrap());
            for r in 0..m {
                for c in 0..=r {
                    let product: f64 = (0..=c).map(|k| l[k * m + r] * l[k * m + c]).sum();
                    let want = a[c * m + r];
                    assert!(
                        (product - want).abs() < 1e-12 * m as f64,
                        "m={m} ({r}, {c})"
                    );
                }
            }
            let mut x = b.clone();
            cholesky_solve(&l, m, &mut x);
            for r in 0..m {
                let ax: f64 = (0..m).map(|c| a[c * m + r] * x[c]).sum();
                assert!((ax - b[r]).abs() < 1e-12, "m={m} row {r}");
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
