//! The user's own `.npy` files: any numeric dtype numpy writes, labels of any
//! two values, and errors that name the row.

use ndarray::{array, Array1, Array2};
use ndarray_npy::WriteNpyExt;
use stacking_core::dataset::{Dataset, DatasetError};

fn npy<A: WriteNpyExt>(a: &A) -> Vec<u8> {
    let mut out = Vec::new();
    a.write_npy(&mut out).unwrap();
    out
}

fn x64() -> Array2<f64> {
    array![[0.5, 1.0], [1.0, 0.25], [2.0, 2.0], [3.0, -1.0]]
}

#[test]
fn float32_and_integer_features_are_converted_and_noted() {
    let y = npy(&array![0i64, 1, 0, 1]);
    let x32: Array2<f32> = x64().mapv(|v| v as f32);
    let (ds, notes) = Dataset::from_user_npy(&npy(&x32), &y).unwrap();
    assert_eq!(ds.x(), &x64());
    assert_eq!(notes, ["features converted from float32 to float64"]);
    let xi: Array2<i16> = array![[1, 2], [3, 4], [5, 6], [7, 8]];
    let (ds, notes) = Dataset::from_user_npy(&npy(&xi), &y).unwrap();
    assert_eq!(ds.x()[[3, 1]], 8.0);
    assert_eq!(notes, ["features converted from int16 to float64"]);
    let xu: Array2<u8> = array![[1, 2], [3, 4], [5, 6], [7, 8]];
    assert!(Dataset::from_user_npy(&npy(&xu), &y).is_ok());
    // float64 and 0/1 labels: nothing to say.
    let (_, notes) = Dataset::from_user_npy(&npy(&x64()), &y).unwrap();
    assert!(notes.is_empty(), "{notes:?}");
}

#[test]
fn any_two_label_values_map_to_zero_and_one_in_sorted_order() {
    let x = npy(&x64());
    let (ds, notes) = Dataset::from_user_npy(&x, &npy(&array![-1i32, 1, 1, -1])).unwrap();
    assert_eq!(ds.y(), &array![0.0, 1.0, 1.0, 0.0]);
    assert_eq!(notes, ["labels (int32) -1 and 1 mapped to 0 and 1"]);
    let (ds, _) = Dataset::from_user_npy(&x, &npy(&array![7.5f64, 2.0, 7.5, 2.0])).unwrap();
    assert_eq!(ds.y(), &array![1.0, 0.0, 1.0, 0.0]);
    let (ds, _) = Dataset::from_user_npy(&x, &npy(&array![true, false, false, true])).unwrap();
    assert_eq!(ds.y(), &array![1.0, 0.0, 0.0, 1.0]);
}

#[test]
fn label_errors_name_the_row() {
    let x = npy(&x64());
    let e = Dataset::from_user_npy(&x, &npy(&array![0i64, 1, 2, 1])).unwrap_err();
    assert!(
        matches!(e, DatasetError::ThirdLabel { index: 2, .. }),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "labels must take exactly two distinct values; row 2 has label 2, a third after 0 and 1"
    );
    let e = Dataset::from_user_npy(&x, &npy(&array![0.0f64, f64::NAN, 1.0, 1.0])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "labels must be finite numbers; row 1 has label NaN"
    );
    let e = Dataset::from_user_npy(&x, &npy(&array![3i64, 3, 3, 3])).unwrap_err();
    assert!(matches!(e, DatasetError::SingleClass { .. }), "{e}");
    // The wire form stays strict: 0/1 only, and says which row.
    let y: Array1<f64> = array![0.0, -1.0, 1.0, 0.0];
    let e = Dataset::new(x64(), y).unwrap_err();
    assert_eq!(e.to_string(), "labels must be 0 or 1; row 1 has label -1");
}

#[test]
fn unsupported_dtypes_are_named_once() {
    let y = npy(&array![0i64, 1, 0, 1]);
    let mut complex = npy(&x64());
    // Same header length: '<f8' -> '<c8' (complex64), which numpy can write and we cannot use.
    let at = complex.windows(4).position(|w| w == b"<f8'").unwrap();
    complex[at + 1] = b'c';
    let e = Dataset::from_user_npy(&complex, &y).unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("features: unsupported dtype <c8"), "{msg}");
    assert!(msg.contains("float32"), "{msg}");
}
