//! Shared helpers: the scikit-learn reference fixtures.

use std::path::PathBuf;

use ndarray::{Array1, Array2, ArrayD};
use serde_json::Value;
use stacking_core::npy;

/// The scikit-learn reference data the repository carries
/// (`tests/fixtures/sklearn-reference`, made by its `regenerate.sh`).
pub fn fixture_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sklearn-reference");
    assert!(
        dir.join("reference.json").exists(),
        "scikit-learn fixtures missing at {}",
        dir.display()
    );
    dir
}

pub fn bytes(name: &str) -> Vec<u8> {
    let path = fixture_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn array(name: &str) -> ArrayD<f64> {
    npy::decode_labels(&bytes(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub fn vector(name: &str) -> Array1<f64> {
    array(name).into_dimensionality().unwrap()
}

pub fn matrix(name: &str) -> Array2<f64> {
    array(name).into_dimensionality().unwrap()
}

pub fn reference() -> Value {
    serde_json::from_slice(&bytes("reference.json")).unwrap()
}

pub fn max_abs_diff(a: &Array1<f64>, b: &Array1<f64>) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

pub fn dataset() -> (Array2<f64>, Array1<f64>) {
    (matrix("X.npy"), vector("y.npy"))
}

/// A full model over `level0`: the default meta model fitted on their
/// in-sample predictions of `x`.
pub fn stack_on(
    x: ndarray::ArrayView2<f64>,
    y: ndarray::ArrayView1<f64>,
    level0: Vec<std::sync::Arc<stacking_core::models::FittedModel>>,
) -> stacking_core::FullModel {
    let preds: Vec<_> = level0.iter().map(|m| m.predict(x).unwrap()).collect();
    let meta = stacking_core::stack::meta_features(&preds).unwrap();
    let meta_model = stacking_core::config::default_meta()
        .fit(meta.view(), y)
        .unwrap();
    stacking_core::FullModel::new(level0, meta_model).unwrap()
}
