//! The dataset: a validated feature matrix with binary 0/1 labels, scikit-learn's
//! `make_classification` generator, and loading from NumPy `.npy` bytes.

use ndarray::{Array1, Array2, Axis};
use thiserror::Error;

mod generate;

#[cfg(test)]
pub(crate) use self::generate::generated;
pub use self::generate::{
    informative_columns, make_classification, make_classification_bytes, GeneratorParams,
};
use crate::npy::{self, NpyError};

/// Why a dataset was refused.
#[derive(Debug, Error)]
pub enum DatasetError {
    /// An `.npy` part of the wire form could not be read.
    #[error("{what}: {source}")]
    Npy {
        /// Which part: `X.npy` or `y.npy`.
        what: &'static str,
        /// What was wrong with it.
        #[source]
        source: NpyError,
    },
    /// The features are not a matrix (their number of dimensions).
    #[error("features must be a 2-d float array, got {0}-d")]
    FeaturesNot2d(usize),
    /// The labels are not a vector (their number of dimensions).
    #[error("labels must be a 1-d array, got {0}-d")]
    LabelsNot1d(usize),
    /// Features and labels differ in rows.
    #[error("features have {rows} rows but labels have {labels} entries")]
    LengthMismatch {
        /// Rows of the feature matrix.
        rows: usize,
        /// Labels given.
        labels: usize,
    },
    /// No rows or no features.
    #[error("the dataset is empty ({rows} rows, {cols} features)")]
    Empty {
        /// Rows of the feature matrix.
        rows: usize,
        /// Columns of the feature matrix.
        cols: usize,
    },
    /// A label other than 0 or 1 where labels must be 0/1.
    #[error("labels must be 0 or 1; row {index} has label {value}")]
    NonBinaryLabel {
        /// Row of the label.
        index: usize,
        /// The label.
        value: f64,
    },
    /// A third distinct label value.
    #[error("labels must take exactly two distinct values; row {index} has label {value}, a third after {first} and {second}")]
    ThirdLabel {
        /// Row of the third value.
        index: usize,
        /// The third value.
        value: f64,
        /// The first label value seen.
        first: f64,
        /// The second label value seen.
        second: f64,
    },
    /// A label that is NaN or infinite.
    #[error("labels must be finite numbers; row {index} has label {value}")]
    NonFiniteLabel {
        /// Row of the label.
        index: usize,
        /// The label.
        value: f64,
    },
    /// Every label is the same class.
    #[error("both classes must be present; all {n} labels are {class}")]
    SingleClass {
        /// Rows.
        n: usize,
        /// The one label they all carry.
        class: f64,
    },
    #[error(
        "feature value at row {row}, column {col} is {value}; NaN and infinity are not allowed"
    )]
    /// A feature value that is NaN or infinite.
    NonFinite {
        /// Row of the value.
        row: usize,
        /// Column of the value.
        col: usize,
        /// The value.
        value: f64,
    },
    /// A generator parameter out of its range.
    #[error("invalid generator parameter {name}: {reason}")]
    GeneratorParam {
        /// The parameter.
        name: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A generated dataset whose memory could not be had: its size overflows
    /// the address space, or the allocator refused it.
    #[error(
        "the generated dataset of {rows} x {cols} is too large: its {:.1} GB could not be allocated",
        (*rows as f64) * (*cols as f64) * 8e-9
    )]
    TooLarge {
        /// Rows asked for.
        rows: usize,
        /// Columns asked for.
        cols: usize,
    },
}

/// `rows` labels, each 0 or 1, both classes present.
fn check_labels(y: &Array1<f64>, rows: usize) -> Result<(), DatasetError> {
    if y.len() != rows {
        return Err(DatasetError::LengthMismatch {
            rows,
            labels: y.len(),
        });
    }
    if let Some((index, &value)) = y.iter().enumerate().find(|(_, &v)| v != 0.0 && v != 1.0) {
        return Err(DatasetError::NonBinaryLabel { index, value });
    }
    let positives = y.iter().filter(|&&v| v == 1.0).count();
    if positives == 0 || positives == rows {
        return Err(DatasetError::SingleClass {
            n: rows,
            class: if positives == rows { 1.0 } else { 0.0 },
        });
    }
    Ok(())
}

/// Features as a matrix and labels as a vector, or which one has the wrong shape.
fn matrix_and_labels(
    x: ndarray::ArrayD<f64>,
    y: ndarray::ArrayD<f64>,
) -> Result<(Array2<f64>, Array1<f64>), DatasetError> {
    let (x_ndim, y_ndim) = (x.ndim(), y.ndim());
    let x = x
        .into_dimensionality::<ndarray::Ix2>()
        .map_err(|_| DatasetError::FeaturesNot2d(x_ndim))?;
    let y = y
        .into_dimensionality::<ndarray::Ix1>()
        .map_err(|_| DatasetError::LabelsNot1d(y_ndim))?;
    Ok((x, y))
}

/// The two distinct label values, smaller first, or the only value there is.
fn two_label_values(y: &Array1<f64>) -> Result<Result<(f64, f64), f64>, DatasetError> {
    let mut seen: Vec<f64> = Vec::with_capacity(2);
    for (index, &value) in y.iter().enumerate() {
        if !value.is_finite() {
            return Err(DatasetError::NonFiniteLabel { index, value });
        }
        if seen.contains(&value) {
            continue;
        }
        if let [first, second] = seen[..] {
            return Err(DatasetError::ThirdLabel {
                index,
                value,
                first,
                second,
            });
        }
        seen.push(value);
    }
    Ok(match seen[..] {
        [a, b] => Ok((a.min(b), a.max(b))),
        [a] => Err(a),
        // No labels: nothing to map; the length check names the problem.
        _ => Ok((0.0, 1.0)),
    })
}

/// The shape of a dataset in its wire form and where its labels start, read
/// from the first bytes only. The metatrainer needs the labels but not the
/// features, so with this it fetches the labels alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireLayout {
    /// Rows of the dataset.
    pub n_samples: usize,
    /// Columns of the feature matrix.
    pub n_features: usize,
    /// Byte offset of `y.npy` within the wire form.
    pub labels_offset: usize,
}

impl WireLayout {
    /// Bytes from the start of the wire form that hold the features' header
    /// in every dataset this crate writes (numpy pads headers to 64 or 128 bytes).
    pub const PROBE_LEN: usize = 4096;

    /// From a prefix of [`Dataset::to_bytes`] output holding the features' header.
    pub fn from_prefix(prefix: &[u8]) -> Result<Self, DatasetError> {
        let npy_err = |source| DatasetError::Npy {
            what: "features",
            source,
        };
        let x = npy::extent(prefix).map_err(npy_err)?;
        if !matches!(x.descr.as_str(), "<f8" | "f8") {
            return Err(npy_err(NpyError::WrongDtype {
                found: x.descr,
                expected: "little-endian float64 ('<f8')",
            }));
        }
        let [n_samples, n_features] = x.shape[..] else {
            return Err(DatasetError::FeaturesNot2d(x.shape.len()));
        };
        if n_samples == 0 || n_features == 0 {
            return Err(DatasetError::Empty {
                rows: n_samples,
                cols: n_features,
            });
        }
        Ok(Self {
            n_samples,
            n_features,
            labels_offset: x.total_len,
        })
    }

    /// Largest possible size of the labels' `.npy` bytes (8-byte dtype,
    /// header up to [`Self::PROBE_LEN`]).
    pub fn labels_max_len(&self) -> usize {
        Self::PROBE_LEN.saturating_add(self.n_samples.saturating_mul(8))
    }

    /// Parses and checks the labels (`y.npy`, exactly, nothing after it).
    pub fn labels(&self, y_bytes: &[u8]) -> Result<Array1<f64>, DatasetError> {
        let y = npy::decode_labels(y_bytes).map_err(|source| DatasetError::Npy {
            what: "labels",
            source,
        })?;
        let ndim = y.ndim();
        let y = y
            .into_dimensionality::<ndarray::Ix1>()
            .map_err(|_| DatasetError::LabelsNot1d(ndim))?;
        check_labels(&y, self.n_samples)?;
        Ok(y)
    }
}

/// Features `x` (n_samples x n_features) and 0/1 labels `y`, checked on construction.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    x: Array2<f64>,
    y: Array1<f64>,
}

impl Dataset {
    /// Validates shapes, finiteness and binary labels with both classes present.
    pub fn new(x: Array2<f64>, y: Array1<f64>) -> Result<Self, DatasetError> {
        let (rows, cols) = x.dim();
        if rows == 0 || cols == 0 {
            return Err(DatasetError::Empty { rows, cols });
        }
        if let Some(((row, col), &value)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(DatasetError::NonFinite { row, col, value });
        }
        check_labels(&y, rows)?;
        Ok(Self { x, y })
    }

    /// Loads `X` (2-d float64) and `y` (1-d integer, bool or float) from `.npy` bytes.
    pub fn from_npy(x_bytes: &[u8], y_bytes: &[u8]) -> Result<Self, DatasetError> {
        let x = npy::decode_f64(x_bytes).map_err(|source| DatasetError::Npy {
            what: "features",
            source,
        })?;
        let y = npy::decode_labels(y_bytes).map_err(|source| DatasetError::Npy {
            what: "labels",
            source,
        })?;
        let (x, y) = matrix_and_labels(x, y)?;
        Self::new(x, y)
    }

    /// The user's own `.npy` files: features of any numeric dtype numpy
    /// writes (converted to float64) and labels of any two distinct values
    /// (the smaller becomes class 0, the larger class 1, as scikit-learn's
    /// `LabelEncoder` orders them). Returns what was converted, for the report.
    pub fn from_user_npy(
        x_bytes: &[u8],
        y_bytes: &[u8],
    ) -> Result<(Self, Vec<String>), DatasetError> {
        let mut notes = Vec::new();
        let (x, x_dtype) = npy::decode_numeric(x_bytes).map_err(|source| DatasetError::Npy {
            what: "features",
            source,
        })?;
        if x_dtype != "float64" {
            notes.push(format!("features converted from {x_dtype} to float64"));
        }
        let (y, y_dtype) = npy::decode_numeric(y_bytes).map_err(|source| DatasetError::Npy {
            what: "labels",
            source,
        })?;
        let (x, mut y) = matrix_and_labels(x, y)?;
        match two_label_values(&y)? {
            Ok((low, high)) if (low, high) != (0.0, 1.0) => {
                y.mapv_inplace(|v| if v == high { 1.0 } else { 0.0 });
                notes.push(format!(
                    "labels ({y_dtype}) {low} and {high} mapped to 0 and 1"
                ));
            }
            Ok(_) => {}
            Err(class) => return Err(DatasetError::SingleClass { n: y.len(), class }),
        }
        Ok((Self::new(x, y)?, notes))
    }

    /// The wire form used between the functions: `X.npy` immediately followed
    /// by `y.npy` (numpy reads it with two `np.load` calls on one file).
    pub fn to_bytes(&self) -> Vec<u8> {
        npy::encode_f64_2d_then_i64_1d(&self.x, &self.labels_i64())
    }

    /// Parses [`Dataset::to_bytes`] output, validating everything.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DatasetError> {
        let (x, y) = npy::split_first(bytes).map_err(|source| DatasetError::Npy {
            what: "features",
            source,
        })?;
        if y.is_empty() {
            return Err(DatasetError::Npy {
                what: "labels",
                source: NpyError::Data("the labels array after the features is missing".into()),
            });
        }
        Self::from_npy(x, y)
    }

    /// The feature matrix, rows by features.
    pub fn x(&self) -> &Array2<f64> {
        &self.x
    }

    /// The 0/1 labels, one per row.
    pub fn y(&self) -> &Array1<f64> {
        &self.y
    }

    /// Rows.
    pub fn n_samples(&self) -> usize {
        self.x.nrows()
    }

    /// Columns of the feature matrix.
    pub fn n_features(&self) -> usize {
        self.x.ncols()
    }

    /// `X` as float64 `.npy` bytes.
    pub fn x_npy(&self) -> Vec<u8> {
        npy::encode_f64_2d(&self.x)
    }

    /// `y` as int64 `.npy` bytes (scikit-learn's label dtype).
    pub fn y_npy(&self) -> Vec<u8> {
        npy::encode_i64_1d(&self.labels_i64())
    }

    fn labels_i64(&self) -> Array1<i64> {
        self.y.mapv(|v| v as i64)
    }

    /// Size of the feature matrix in bytes (the reference for memory goals).
    pub fn x_nbytes(&self) -> usize {
        self.x.len() * std::mem::size_of::<f64>()
    }

    /// Rows `idx` of the dataset, as owned arrays.
    pub fn rows(&self, idx: &[usize]) -> (Array2<f64>, Array1<f64>) {
        (self.x.select(Axis(0), idx), self.y.select(Axis(0), idx))
    }
}
