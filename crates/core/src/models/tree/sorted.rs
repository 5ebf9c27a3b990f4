//! Every column of a dataset as float32, sorted once per fit and shared by
//! every tree of a forest.

use super::FEATURE_THRESHOLD;

/// Every column of the training rows as float32, sorted once: for feature `f`,
/// `values[f * n..(f + 1) * n]` ascending and `rows[...]` the row of each value.
pub struct SortedColumns {
    pub(super) n: usize,
    pub(super) p: usize,
    values: Vec<f32>,
    rows: Vec<u32>,
    /// Per feature: every two neighbouring values are more than
    /// `FEATURE_THRESHOLD` apart, so that between any two rows of any node
    /// lies a candidate split and the scan need not compare values.
    distinct: Vec<bool>,
}

/// Maps a float32 to an integer with the same order (IEEE-754 total order).
/// Negative values have every bit flipped, the others their sign bit set;
/// written without a branch, so that a row of keys is made in vector
/// instructions.
fn order_key(v: f32) -> u32 {
    let bits = v.to_bits();
    let flip = (((bits as i32) >> 31) as u32) | 0x8000_0000;
    bits ^ flip
}

/// The float32 whose [`order_key`] is `key`.
fn from_order_key(key: u32) -> f32 {
    let flip = !(((key as i32) >> 31) as u32) | 0x8000_0000;
    f32::from_bits(key ^ flip)
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
    distinct: &mut [bool],
) {
    let n = x.nrows();
    let first = columns.start;
    let mut keys = vec![0u64; columns.len() * n];
    let key = |v: f64, i: usize| (u64::from(order_key(v as f32)) << 32) | i as u64;
    for start in columns.clone().step_by(KEY_TILE) {
        let end = (start + KEY_TILE).min(columns.end);
        let mut tile_keys = [0u64; KEY_TILE];
        for (i, row) in x.rows().into_iter().enumerate() {
            let tile = row.slice(ndarray::s![start..end]);
            match tile.as_slice() {
                // A row-major matrix: the tile is a plain slice, its keys
                // made a vector at a time.
                Some(tile) => {
                    for (k, &v) in tile_keys.iter_mut().zip(tile) {
                        *k = key(v, i);
                    }
                }
                None => {
                    for (k, &v) in tile_keys.iter_mut().zip(tile.iter()) {
                        *k = key(v, i);
                    }
                }
            }
            for (f, &k) in (start..end).zip(&tile_keys) {
                if let Some(slot) = keys.get_mut((f - first) * n + i) {
                    *slot = k;
                }
            }
        }
    }
    for (((column, values), rows), distinct) in keys
        .chunks_mut(n)
        .zip(values.chunks_mut(n))
        .zip(rows.chunks_mut(n))
        .zip(distinct)
    {
        // By the value key's upper 24 bits: radsort skips the digit that is
        // zero in every key, so three passes instead of four. Keys equal
        // there (values within 2^-15 of each other, rare in real data) are
        // then put in order by the whole word, value key then row, with an
        // insertion sort that costs one comparison a key on sorted input.
        radsort::sort_by_key(column, |k| (k >> 40) as u32);
        insertion_sort(column);
        for ((&k, value), row) in column.iter().zip(values.iter_mut()).zip(rows) {
            *row = (k & 0xFFFF_FFFF) as u32;
            *value = from_order_key((k >> 32) as u32);
        }
        // Sorted, so when every value is more than the threshold above the
        // one before, any later value is too (rounding is monotonic).
        // (A fold rather than `all`, which stops early and so stays scalar.)
        *distinct = values.windows(2).fold(true, |apart, pair| {
            apart & (f64::from(pair[1]) > f64::from(pair[0]) + FEATURE_THRESHOLD)
        });
    }
}

/// Sorts `words` in place; linear on nearly sorted input.
fn insertion_sort(words: &mut [u64]) {
    for i in 1..words.len() {
        let mut j = i;
        while j > 0 && words[j - 1] > words[j] {
            words.swap(j - 1, j);
            j -= 1;
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
        let mut distinct = vec![false; p];
        if n > 0 && p > 0 {
            // Whole tiles of columns per thread.
            let per_thread = p.div_ceil(threads.max(1)).div_ceil(KEY_TILE) * KEY_TILE;
            let parts = values
                .chunks_mut(per_thread * n)
                .zip(rows.chunks_mut(per_thread * n))
                .zip(distinct.chunks_mut(per_thread))
                .enumerate()
                .map(|(t, ((values, rows), distinct))| {
                    let first = t * per_thread;
                    (first..first + values.len() / n, values, rows, distinct)
                });
            crate::parallel::on_parts(parts, |(columns, values, rows, distinct)| {
                sort_columns(x, columns, values, rows, distinct)
            });
        }
        Self {
            n,
            p,
            values,
            rows,
            distinct,
        }
    }

    /// Whether feature `f`'s neighbouring values are all more than
    /// `FEATURE_THRESHOLD` apart.
    pub(super) fn distinct(&self, f: usize) -> bool {
        self.distinct.get(f).copied().unwrap_or(false)
    }

    pub fn n_features(&self) -> usize {
        self.p
    }

    /// Feature `f`'s rows in its order.
    pub(super) fn column_rows(&self, f: usize) -> &[u32] {
        self.rows
            .get(f * self.n..(f + 1) * self.n)
            .unwrap_or_default()
    }

    /// Feature `f`'s values in order.
    pub(super) fn column_values(&self, f: usize) -> &[f32] {
        self.values
            .get(f * self.n..(f + 1) * self.n)
            .unwrap_or_default()
    }

    pub(super) fn column(&self, f: usize) -> impl Iterator<Item = (f32, u32)> + '_ {
        let range = f * self.n..(f + 1) * self.n;
        self.values[range.clone()]
            .iter()
            .copied()
            .zip(self.rows[range].iter().copied())
    }
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
        // Every column here has ties (or values closer than the threshold).
        assert!((0..p).all(|f| !sorted.distinct(f)));
        // Values a few float32 steps apart, alike in their keys' upper 24
        // bits, in shuffled rows: ordered by the last bits, ties by row.
        let close = ndarray::Array2::from_shape_fn((40, 2), |(i, f)| {
            let step = ((i * 17 + f * 5) % 13) as u32;
            f64::from(f32::from_bits(1.0f32.to_bits() + step)) * if f == 0 { 1.0 } else { -1.0 }
        });
        let close_sorted = SortedColumns::new(close.view());
        for f in 0..2 {
            let mut expected: Vec<(f32, u32)> =
                (0..40).map(|i| (close[[i, f]] as f32, i as u32)).collect();
            expected.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let got: Vec<(f32, u32)> = close_sorted.column(f).collect();
            let bits =
                |v: &[(f32, u32)]| v.iter().map(|(a, r)| (a.to_bits(), *r)).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&expected), "close values, feature {f}");
        }
        let spread = ndarray::Array2::from_shape_fn((n, 3), |(i, f)| match f {
            0 => (i * 7 % n) as f64,
            1 => (i * 7 % n) as f64 * 1e-8,
            _ => (i % 5) as f64,
        });
        let spread = SortedColumns::new(spread.view());
        assert_eq!(
            (0..3).map(|f| spread.distinct(f)).collect::<Vec<_>>(),
            [true, false, false],
            "apart by 1, by 1e-8 (under the threshold), ties"
        );
        for threads in [2, 3, 64] {
            let parallel = SortedColumns::with_threads(x.view(), threads);
            assert_eq!(parallel.rows, sorted.rows, "{threads} threads");
            let bits = |v: &[f32]| v.iter().map(|a| a.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&parallel.values), bits(&sorted.values));
        }
    }
}
