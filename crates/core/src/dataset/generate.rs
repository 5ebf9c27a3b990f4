//! scikit-learn's `make_classification`, reproduced on numpy's random stream.

use ndarray::{Array1, Array2, Axis};

use super::{Dataset, DatasetError};
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
    Ok(weights)
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
    let mut y = Array1::<f64>::zeros(n);
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
    let mut informative = vec![0.0; n * N_INFORMATIVE];
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
    let mut useless = vec![0.0; n * n_useless];
    rng.fill_standard_normal(&mut useless, threads);
    // The mask is drawn even when flip_y is 0, as scikit-learn does.
    let flip: Vec<bool> = (0..n).map(|_| rng.uniform() < p.flip_y).collect();
    for (i, _) in flip.iter().enumerate().filter(|(_, &f)| f) {
        y[i] = rng.randint(0, N_CLASSES as i64) as f64;
    }
    let mut rows: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut rows);
    let mut cols: Vec<usize> = (0..p.n_features).collect();
    rng.shuffle(&mut cols);
    // One gather instead of a row select followed by a column select.
    let mut x = Array2::<f64>::zeros((n, p.n_features));
    for (mut out, &r) in x.outer_iter_mut().zip(&rows) {
        let inf = &informative[r * N_INFORMATIVE..(r + 1) * N_INFORMATIVE];
        let rest = &useless[r * n_useless..(r + 1) * n_useless];
        for (v, &c) in out.iter_mut().zip(&cols) {
            *v = if c < N_INFORMATIVE {
                inf[c]
            } else {
                rest[c - N_INFORMATIVE]
            };
        }
    }
    let y = y.select(Axis(0), &rows);
    Ok((Dataset::new(x, y)?, cols))
}
