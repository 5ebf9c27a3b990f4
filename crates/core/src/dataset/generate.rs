//! scikit-learn's `make_classification`, reproduced on numpy's random stream.

use ndarray::{Array1, Array2, Axis};

use super::{Dataset, DatasetError};
use crate::npy;
use crate::rng::NumpyRandomState;

/// Parameters of [`make_classification`]; the defaults are the benchmark's.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorParams {
    /// Rows to generate.
    pub n_samples: usize,
    /// Columns to generate (two of them informative).
    pub n_features: usize,
    /// scikit-learn's `weights`: `[w0, w1]`, or `[w0]` meaning `[w0, 1 - w0]`.
    /// Kept as given, because `1 - 0.9` is not `0.1` in floating point and
    /// scikit-learn sizes the clusters from the literal values.
    pub weights: Vec<f64>,
    /// Fraction of labels flipped at random (scikit-learn's `flip_y`).
    pub flip_y: f64,
    /// scikit-learn's `random_state`.
    pub seed: u32,
}

impl Default for GeneratorParams {
    fn default() -> Self {
        Self {
            n_samples: 300,
            n_features: 1024,
            weights: vec![0.9, 0.1],
            flip_y: 0.1,
            seed: 42,
        }
    }
}

const N_INFORMATIVE: usize = 2;
const N_CLUSTERS_PER_CLASS: usize = 2;
const N_CLASSES: usize = 2;
const CLASS_SEP: f64 = 1.0;

/// scikit-learn's `make_classification(n_samples, n_features, n_informative=2,
/// n_redundant=0, n_repeated=0, n_classes=2, n_clusters_per_class=2, weights,
/// flip_y, class_sep=1.0, hypercube=True, shift=0, scale=1, shuffle=True,
/// random_state=seed)`, step for step on numpy's `RandomState` stream, so the
/// default parameters give exactly scikit-learn's dataset.
pub fn make_classification(p: &GeneratorParams) -> Result<Dataset, DatasetError> {
    generate(p).map(|(dataset, _)| dataset)
}

impl GeneratorParams {
    /// Checks the parameters without generating anything.
    pub fn validate(&self) -> Result<(), DatasetError> {
        check_params(self).map(|_| ())
    }
}

/// Validates the parameters; returns the two class weights.
fn check_params(p: &GeneratorParams) -> Result<[f64; 2], DatasetError> {
    if p.n_features < N_INFORMATIVE {
        return Err(DatasetError::GeneratorParam {
            name: "n_features",
            reason: format!("must be at least {N_INFORMATIVE}, got {}", p.n_features),
        });
    }
    if p.n_samples < 2 {
        return Err(DatasetError::GeneratorParam {
            name: "n_samples",
            reason: format!("must be at least 2, got {}", p.n_samples),
        });
    }
    let weights = match p.weights[..] {
        [w0] => [w0, 1.0 - w0],
        [w0, w1] => [w0, w1],
        _ => {
            return Err(DatasetError::GeneratorParam {
                name: "weights",
                reason: format!("needs 1 or 2 class weights, got {}", p.weights.len()),
            })
        }
    };
    if weights.iter().any(|w| !(*w > 0.0 && *w < 1.0)) {
        return Err(DatasetError::GeneratorParam {
            name: "weights",
            reason: format!("class weights must be in (0, 1), got {weights:?}"),
        });
    }
    if !(0.0..=1.0).contains(&p.flip_y) {
        return Err(DatasetError::GeneratorParam {
            name: "flip_y",
            reason: format!("must be in [0, 1], got {}", p.flip_y),
        });
    }
    // The wire form must be addressable; whether the memory is there is
    // known only when it is allocated (`zeroed`).
    let addressable = p
        .n_samples
        .checked_mul(p.n_features)
        .and_then(|values| values.checked_add(p.n_samples))
        .and_then(|values| values.checked_mul(8))
        .is_some_and(|bytes| bytes <= isize::MAX as usize);
    if !addressable {
        return Err(too_large(p));
    }
    Ok(weights)
}

fn too_large(p: &GeneratorParams) -> DatasetError {
    DatasetError::TooLarge {
        rows: p.n_samples,
        cols: p.n_features,
    }
}

/// `0..len`, allocated as [`zeroed`] is.
fn indices(len: usize, p: &GeneratorParams) -> Result<Vec<usize>, DatasetError> {
    let mut v = zeroed::<usize>(len, p)?;
    for (i, slot) in v.iter_mut().enumerate() {
        *slot = i;
    }
    Ok(v)
}

/// `len` zeroes, or [`DatasetError::TooLarge`] when the allocator refuses
/// them: the shape comes from the user's flags, and an infallible
/// allocation would abort the process (a driver would die instead of
/// reporting NOT_SERVING with the reason).
fn zeroed<T: Clone + Default>(len: usize, p: &GeneratorParams) -> Result<Vec<T>, DatasetError> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| too_large(p))?;
    v.resize(len, T::default());
    Ok(v)
}

/// The default generator at `n_samples` x `n_features`: the tests' small
/// datasets.
#[cfg(test)]
pub(crate) fn generated(n_samples: usize, n_features: usize) -> Dataset {
    make_classification(&GeneratorParams {
        n_samples,
        n_features,
        ..GeneratorParams::default()
    })
    .expect("valid generator parameters")
}

/// Which columns of the generated dataset hold the two informative features.
pub fn informative_columns(p: &GeneratorParams) -> Result<Vec<usize>, DatasetError> {
    let (_, cols) = generate(p)?;
    Ok(cols
        .iter()
        .enumerate()
        .filter(|(_, &c)| c < N_INFORMATIVE)
        .map(|(pos, _)| pos)
        .collect())
}

/// The dataset and the column permutation applied to it.
fn generate(p: &GeneratorParams) -> Result<(Dataset, Vec<usize>), DatasetError> {
    draw(p)?.into_dataset(p)
}

/// [`make_classification`] in its wire form ([`Dataset::to_bytes`]), with
/// its row count, written straight from the generator: the same bytes,
/// without building the feature matrix first (one pass and one buffer of
/// the dataset's size less, which a driver's cold start waits for).
pub fn make_classification_bytes(p: &GeneratorParams) -> Result<(Vec<u8>, usize), DatasetError> {
    let n = p.n_samples;
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    draw(p)?.into_bytes(p, threads).map(|bytes| (bytes, n))
}

/// Draws everything, in scikit-learn's order.
fn draw(p: &GeneratorParams) -> Result<Draw, DatasetError> {
    let weights = check_params(p)?;
    let n = p.n_samples;
    let n_clusters = N_CLASSES * N_CLUSTERS_PER_CLASS;
    let mut per_cluster: Vec<usize> = (0..n_clusters)
        .map(|k| (n as f64 * weights[k % N_CLASSES] / N_CLUSTERS_PER_CLASS as f64) as usize)
        .collect();
    let assigned: usize = per_cluster.iter().sum();
    for i in 0..n.saturating_sub(assigned) {
        per_cluster[i % n_clusters] += 1;
    }

    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let mut rng = NumpyRandomState::new(p.seed);
    let mut y = Array1::from(zeroed::<f64>(n, p)?);
    // Hypercube vertices: sample_without_replacement(4, 4) draws nothing and
    // yields 0..4, whose two low bits are the vertex coordinates.
    let centroids: Vec<[f64; 2]> = (0..n_clusters)
        .map(|v| {
            let bit = |b: usize| ((v >> b) & 1) as f64 * 2.0 * CLASS_SEP - CLASS_SEP;
            [bit(1), bit(0)]
        })
        .collect();
    // The informative columns (row-major, n x 2), then the useless ones
    // (n x (n_features - 2)), in the order scikit-learn draws them.
    let mut informative = zeroed(n * N_INFORMATIVE, p)?;
    rng.fill_standard_normal(&mut informative, threads);
    let mut stop = 0;
    for (k, centroid) in centroids.iter().enumerate() {
        let start = stop;
        stop += per_cluster[k];
        let mut a = [[0.0; 2]; 2];
        for row in a.iter_mut() {
            for v in row.iter_mut() {
                *v = 2.0 * rng.uniform() - 1.0;
            }
        }
        for i in start..stop {
            y[i] = (k % N_CLASSES) as f64;
            let row = &mut informative[i * N_INFORMATIVE..(i + 1) * N_INFORMATIVE];
            let (x0, x1) = (row[0], row[1]);
            for (j, v) in row.iter_mut().enumerate() {
                *v = x0 * a[0][j] + x1 * a[1][j] + centroid[j];
            }
        }
    }
    let n_useless = p.n_features - N_INFORMATIVE;
    let mut useless = zeroed(n * n_useless, p)?;
    rng.fill_standard_normal(&mut useless, threads);
    // The mask is drawn even when flip_y is 0, as scikit-learn does.
    let mut flip = zeroed::<bool>(n, p)?;
    for f in flip.iter_mut() {
        *f = rng.uniform() < p.flip_y;
    }
    for (i, _) in flip.iter().enumerate().filter(|(_, &f)| f) {
        y[i] = rng.randint(0, N_CLASSES as i64) as f64;
    }
    let mut rows = indices(n, p)?;
    rng.shuffle(&mut rows);
    let mut cols = indices(p.n_features, p)?;
    rng.shuffle(&mut cols);
    Ok(Draw {
        y: y.select(Axis(0), &rows),
        informative,
        useless,
        rows,
        cols,
    })
}

/// What the generator drew, before rows and columns are shuffled into place.
struct Draw {
    informative: Vec<f64>,
    useless: Vec<f64>,
    /// Output row `i` is drawn row `rows[i]`, output column `j` drawn column `cols[j]`.
    rows: Vec<usize>,
    cols: Vec<usize>,
    /// The labels, already in output order.
    y: Array1<f64>,
}

impl Draw {
    fn n_features(&self) -> usize {
        self.cols.len()
    }

    /// Output row `i`, one value at a time: one gather instead of a row
    /// select followed by a column select.
    fn row(&self, i: usize) -> impl Iterator<Item = f64> + '_ {
        let r = self.rows[i];
        let n_useless = self.n_features() - N_INFORMATIVE;
        let inf = &self.informative[r * N_INFORMATIVE..(r + 1) * N_INFORMATIVE];
        let rest = &self.useless[r * n_useless..(r + 1) * n_useless];
        self.cols.iter().map(move |&c| {
            if c < N_INFORMATIVE {
                inf[c]
            } else {
                rest[c - N_INFORMATIVE]
            }
        })
    }

    fn into_dataset(self, params: &GeneratorParams) -> Result<(Dataset, Vec<usize>), DatasetError> {
        let shape = (self.rows.len(), self.n_features());
        let mut values = zeroed(shape.0 * shape.1, params)?;
        if shape.1 > 0 {
            for (i, out) in values.chunks_exact_mut(shape.1).enumerate() {
                for (v, value) in out.iter_mut().zip(self.row(i)) {
                    *v = value;
                }
            }
        }
        // The buffer has the shape's length by construction.
        let x = Array2::from_shape_vec(shape, values).map_err(|_| too_large(params))?;
        Ok((Dataset::new(x, self.y)?, self.cols))
    }

    /// The wire form ([`Dataset::to_bytes`]), written row by row straight
    /// from the draw: no feature matrix in between. Blocks of rows go to up
    /// to `threads` threads (the calling thread writes the first).
    fn into_bytes(self, params: &GeneratorParams, threads: usize) -> Result<Vec<u8>, DatasetError> {
        let (n, p) = (self.rows.len(), self.n_features());
        let labels = self.y.mapv(|v| v as i64);
        let header = npy::f64_2d_header(n, p);
        let start = header.len();
        let labels_npy = npy::encode_i64_1d(&labels);
        let mut out = zeroed(start + n * p * 8, params)?;
        out.try_reserve_exact(labels_npy.len())
            .map_err(|_| too_large(params))?;
        out[..start].copy_from_slice(&header);
        if n > 0 && p > 0 {
            let rows_per_part = n.div_ceil(threads.max(1));
            let write = |first_row: usize, part: &mut [u8]| {
                for (i, row) in part.chunks_exact_mut(p * 8).enumerate() {
                    for (dst, value) in row.chunks_exact_mut(8).zip(self.row(first_row + i)) {
                        dst.copy_from_slice(&value.to_le_bytes());
                    }
                }
            };
            crate::parallel::on_parts(
                out[start..]
                    .chunks_mut(rows_per_part * p * 8)
                    .enumerate()
                    .map(|(k, part)| (k * rows_per_part, part)),
                |(first_row, part)| write(first_row, part),
            );
        }
        out.extend_from_slice(&labels_npy);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bytes_written_straight_from_the_draw_are_the_datasets_wire_form() {
        for params in [
            GeneratorParams::default(),
            GeneratorParams {
                n_samples: 57,
                n_features: 3,
                weights: vec![0.7],
                flip_y: 0.3,
                seed: 7,
            },
        ] {
            let (bytes, n) = make_classification_bytes(&params).unwrap();
            let dataset = make_classification(&params).unwrap();
            assert_eq!(n, dataset.n_samples());
            assert!(bytes == dataset.to_bytes(), "{params:?}");
            assert_eq!(Dataset::from_bytes(&bytes).unwrap().x(), dataset.x());
        }
        assert!(make_classification_bytes(&GeneratorParams {
            n_features: 1,
            ..GeneratorParams::default()
        })
        .is_err());
    }

    /// A shape from the flags that cannot be had is an error naming it, not
    /// an abort: one whose size overflows is refused by `validate` (so by
    /// `check-config`), and one the allocator refuses (2^45 rows need 256 TiB
    /// for the labels alone, beyond any x86-64 or arm64 address space) when
    /// it is generated.
    #[test]
    fn a_dataset_too_large_to_allocate_is_refused_with_its_shape() {
        let overflowing = GeneratorParams {
            n_samples: usize::MAX / 4,
            n_features: 1024,
            ..GeneratorParams::default()
        };
        let err = overflowing.validate().unwrap_err();
        assert!(matches!(err, DatasetError::TooLarge { .. }), "{err}");
        assert!(err.to_string().contains("x 1024 is too large"), "{err}");
        let unallocatable = GeneratorParams {
            n_samples: 1 << 45,
            n_features: 2,
            ..GeneratorParams::default()
        };
        unallocatable.validate().unwrap();
        for result in [
            make_classification_bytes(&unallocatable).map(drop),
            make_classification(&unallocatable).map(drop),
        ] {
            let err = result.unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("the generated dataset of 35184372088832 x 2 is too large"),
                "{err}"
            );
        }
    }
}
