//! Every typed error of the core, triggered by bad input.

use crate::common;

use std::sync::Arc;

use ndarray::{array, Array1, Array2};
use stacking_core::dataset::{Dataset, DatasetError, WireLayout};
use stacking_core::models::{FitError, RoleError};
use stacking_core::npy::{self, NpyError};
use stacking_core::serial::{self, DecodeError};
use stacking_core::stack::{meta_features, train_level1, StackError};
use stacking_core::{config, FullModel, ModelSpec};

fn xy() -> (Array2<f64>, Array1<f64>) {
    (
        array![[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]],
        array![0.0, 1.0, 0.0],
    )
}

#[test]
fn dataset_wrong_dtype() {
    let x = npy::encode_i64_1d(&array![1, 2, 3]);
    let y = npy::encode_i64_1d(&array![0, 1, 0]);
    let e = Dataset::from_npy(&x, &y).unwrap_err();
    assert!(
        matches!(
            e,
            DatasetError::Npy {
                what: "features",
                source: NpyError::WrongDtype { .. }
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("<i8"));
}

#[test]
fn dataset_wrong_shape() {
    let x = npy::encode_f64_1d(&array![1.0, 2.0, 3.0]);
    let y = npy::encode_i64_1d(&array![0, 1, 0]);
    assert!(matches!(
        Dataset::from_npy(&x, &y),
        Err(DatasetError::FeaturesNot2d(1))
    ));
    let (x, _) = xy();
    let y2 = npy::encode_f64_2d(&array![[0.0], [1.0], [0.0]]);
    assert!(matches!(
        Dataset::from_npy(&npy::encode_f64_2d(&x), &y2),
        Err(DatasetError::LabelsNot1d(2))
    ));
}

#[test]
fn dataset_length_mismatch() {
    let (x, _) = xy();
    let e = Dataset::new(x, array![0.0, 1.0]).unwrap_err();
    assert!(matches!(
        e,
        DatasetError::LengthMismatch { rows: 3, labels: 2 }
    ));
}

#[test]
fn dataset_non_binary_labels() {
    let (x, _) = xy();
    let e = Dataset::new(x, array![0.0, 2.0, 1.0]).unwrap_err();
    assert!(
        matches!(e, DatasetError::NonBinaryLabel { index: 1, .. }),
        "{e}"
    );
}

#[test]
fn dataset_single_class() {
    let (x, _) = xy();
    assert!(matches!(
        Dataset::new(x, array![1.0, 1.0, 1.0]),
        Err(DatasetError::SingleClass { .. })
    ));
}

#[test]
fn dataset_nan_and_inf() {
    let (mut x, y) = xy();
    x[[1, 1]] = f64::NAN;
    let e = Dataset::new(x.clone(), y.clone()).unwrap_err();
    assert!(
        matches!(e, DatasetError::NonFinite { row: 1, col: 1, .. }),
        "{e}"
    );
    x[[1, 1]] = f64::INFINITY;
    assert!(matches!(
        Dataset::new(x, y),
        Err(DatasetError::NonFinite { .. })
    ));
}

#[test]
fn dataset_empty_and_truncated_bytes() {
    let y = npy::encode_i64_1d(&array![0, 1, 0]);
    assert!(matches!(
        Dataset::from_npy(b"", &y),
        Err(DatasetError::Npy {
            source: NpyError::Empty,
            ..
        })
    ));
    let x = npy::encode_f64_2d(&xy().0);
    let e = Dataset::from_npy(&x[..x.len() - 3], &y).unwrap_err();
    assert!(
        matches!(
            e,
            DatasetError::Npy {
                source: NpyError::Truncated { .. },
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn dataset_round_trips_through_npy() {
    let (x, y) = xy();
    let ds = Dataset::new(x, y).unwrap();
    assert_eq!(Dataset::from_npy(&ds.x_npy(), &ds.y_npy()).unwrap(), ds);
}

#[test]
fn labels_alone_from_the_wire_form() {
    let (x, y) = xy();
    let ds = Dataset::new(x, y).unwrap();
    let wire = ds.to_bytes();
    let layout = WireLayout::from_prefix(&wire[..WireLayout::PROBE_LEN.min(wire.len())]).unwrap();
    assert_eq!(
        (layout.n_samples, layout.n_features),
        (ds.n_samples(), ds.n_features())
    );
    assert_eq!(layout.labels_offset, ds.x_npy().len());
    assert!(layout.labels_max_len() >= wire.len() - layout.labels_offset);
    assert_eq!(
        &layout.labels(&wire[layout.labels_offset..]).unwrap(),
        ds.y()
    );

    // Cut inside the header, features that are not 2-d float64, labels that
    // do not match the features' row count: each named.
    assert!(matches!(
        WireLayout::from_prefix(&wire[..20]),
        Err(DatasetError::Npy {
            what: "features",
            ..
        })
    ));
    let one_d = npy::encode_f64_1d(&Array1::zeros(4));
    assert!(matches!(
        WireLayout::from_prefix(&one_d),
        Err(DatasetError::FeaturesNot2d(1))
    ));
    let ints = npy::encode_i64_1d(&Array1::zeros(4));
    assert!(matches!(
        WireLayout::from_prefix(&ints),
        Err(DatasetError::Npy {
            source: NpyError::WrongDtype { .. },
            ..
        })
    ));
    let short = npy::encode_i64_1d(&array![0, 1]);
    assert!(matches!(
        layout.labels(&short),
        Err(DatasetError::LengthMismatch { labels: 2, .. })
    ));
    let mut trailing = wire[layout.labels_offset..].to_vec();
    trailing.push(0);
    assert!(layout.labels(&trailing).is_err());

    // A header claiming an absurd shape is refused without allocating.
    let mut huge = wire[..layout.labels_offset].to_vec();
    let text = String::from_utf8_lossy(&huge)
        .replace(&format!("({}, ", ds.n_samples()), "(99999999999999999999, ");
    huge = text.into_bytes();
    assert!(WireLayout::from_prefix(&huge).is_err());
}

#[test]
fn fit_errors() {
    let (x, y) = xy();
    let knn = ModelSpec::from_json_bytes(
        br#"{"model": "KNeighborsRegressor", "params": {"n_neighbors": 5}}"#,
    )
    .unwrap();
    assert!(matches!(
        knn.fit(x.view(), y.view()),
        Err(FitError::TooFewNeighbours { k: 5, n: 3 })
    ));
    let lasso = ModelSpec::from_json_bytes(br#"{"model": "Lasso"}"#).unwrap();
    assert!(matches!(
        lasso.fit(x.view(), array![0.0, 1.0].view()),
        Err(FitError::LengthMismatch { .. })
    ));
    let empty = Array2::<f64>::zeros((0, 2));
    assert!(matches!(
        lasso.fit(empty.view(), Array1::zeros(0).view()),
        Err(FitError::Empty { .. })
    ));
    let logistic = config::default_meta();
    assert!(matches!(
        logistic.fit(x.view(), array![1.0, 1.0, 1.0].view()),
        Err(FitError::OneClass)
    ));
}

/// What the added models cannot do is refused by name, with the reason;
/// what scikit-learn accepts and only steers copying or logging is accepted.
#[test]
fn the_added_models_refuse_what_they_do_not_implement() {
    use stacking_core::ConfigError;
    let refused = [
        (
            r#"{"model": "Ridge", "params": {"solver": "sag"}}"#,
            "solver",
        ),
        (
            r#"{"model": "Ridge", "params": {"positive": true}}"#,
            "positive",
        ),
        (
            r#"{"model": "ElasticNet", "params": {"selection": "random"}}"#,
            "selection",
        ),
        (
            r#"{"model": "ElasticNet", "params": {"precompute": true}}"#,
            "precompute",
        ),
        (
            r#"{"model": "DecisionTreeRegressor", "params": {"splitter": "random"}}"#,
            "splitter",
        ),
        (
            r#"{"model": "DecisionTreeRegressor", "params": {"criterion": "absolute_error"}}"#,
            "criterion",
        ),
    ];
    for (json, param) in refused {
        match ModelSpec::from_json_bytes(json.as_bytes()) {
            Err(e @ ConfigError::OutOfRange { .. }) => {
                assert!(e.to_string().contains(param), "{json}: {e}")
            }
            other => panic!("{json}: {other:?}"),
        }
    }
    for (json, param) in [
        (r#"{"model": "Ridge", "params": {"alpha": "1"}}"#, "alpha"),
        (
            r#"{"model": "ElasticNet", "params": {"l1_ratio": "half"}}"#,
            "l1_ratio",
        ),
        (
            r#"{"model": "DecisionTreeRegressor", "params": {"max_depth": 2.5}}"#,
            "max_depth",
        ),
    ] {
        match ModelSpec::from_json_bytes(json.as_bytes()) {
            Err(ConfigError::WrongType { param: p, .. }) => assert_eq!(p, param, "{json}"),
            other => panic!("{json}: {other:?}"),
        }
    }
    for json in [
        r#"{"model": "Ridge", "params": {"ccp_alpha": 0.1}}"#,
        r#"{"model": "DecisionTreeRegressor", "params": {"max_leaf_nodes": 8}}"#,
    ] {
        assert!(
            matches!(
                ModelSpec::from_json_bytes(json.as_bytes()),
                Err(ConfigError::UnknownParam { .. })
            ),
            "{json}"
        );
    }
    for json in [
        r#"{"model": "Ridge", "params": {"solver": "cholesky", "copy_X": true, "tol": 1e-3, "max_iter": null}}"#,
        r#"{"model": "ElasticNet", "params": {"copy_X": false, "random_state": 3}}"#,
        r#"{"model": "DecisionTreeRegressor", "params": {"splitter": "best", "max_depth": null}}"#,
    ] {
        assert!(
            ModelSpec::from_json_bytes(json.as_bytes()).is_ok(),
            "{json}"
        );
    }
    // Fitting on bad data fails as every model does.
    let (x, y) = xy();
    for name in ["Ridge", "ElasticNet", "DecisionTreeRegressor"] {
        let spec =
            ModelSpec::from_json_bytes(format!(r#"{{"model": "{name}"}}"#).as_bytes()).unwrap();
        assert!(matches!(
            spec.fit(x.view(), array![0.0, 1.0].view()),
            Err(FitError::LengthMismatch { .. })
        ));
        assert!(matches!(
            spec.fit(Array2::<f64>::zeros((0, 2)).view(), Array1::zeros(0).view()),
            Err(FitError::Empty { .. })
        ));
        let model = spec.fit(x.view(), y.view()).unwrap();
        assert!(model.predict(array![[1.0]].view()).is_err(), "{name}");
    }
}

#[test]
fn predict_with_wrong_feature_count() {
    let (x, y) = xy();
    let model = ModelSpec::from_json_bytes(br#"{"model": "LinearRegression"}"#)
        .unwrap()
        .fit(x.view(), y.view())
        .unwrap();
    let e = model.predict(array![[1.0, 2.0, 3.0]].view()).unwrap_err();
    assert!(e.to_string().contains("fitted on 2 features"), "{e}");
}

#[test]
fn stack_errors() {
    assert!(matches!(meta_features(&[]), Err(StackError::NoPredictions)));
    assert!(matches!(
        meta_features(&[array![1.0, 2.0], array![1.0]]),
        Err(StackError::PredictionLength { index: 1, .. })
    ));
    let lasso = ModelSpec::from_json_bytes(br#"{"model": "Lasso"}"#).unwrap();
    let (x, y) = xy();
    assert!(matches!(
        train_level1(&lasso, x.view(), y.view()),
        Err(StackError::Role(RoleError::MetaNotClassifier("Lasso")))
    ));
    assert!(matches!(
        train_level1(&config::default_meta(), x.view(), array![0.0, 1.0].view()),
        Err(StackError::MetaRows { .. })
    ));
}

fn small_full_model() -> FullModel {
    let x = Array2::from_shape_fn((40, 3), |(i, j)| {
        ((i * 7 + j * 3) % 11) as f64 + (i % 2) as f64 * 2.0
    });
    let y = Array1::from_shape_fn(40, |i| (i % 2) as f64);
    let level0 = config::default_level0()
        .iter()
        .map(|s| Arc::new(s.fit(x.view(), y.view()).unwrap()))
        .collect();
    common::stack_on(x.view(), y.view(), level0)
}

#[test]
fn full_model_round_trips_and_predicts_identically() {
    let full = small_full_model();
    let bytes = serial::encode_full(&full).expect("encode");
    let back = serial::decode_full(&bytes).unwrap();
    assert_eq!(back, full);
    let x = Array2::from_shape_fn((5, 3), |(i, j)| (i + j) as f64);
    assert_eq!(
        back.predict_proba(x.view()).unwrap(),
        full.predict_proba(x.view()).unwrap()
    );
}

#[test]
fn decoding_garbage_truncated_or_foreign_bytes_is_an_error() {
    assert!(matches!(serial::decode_full(b""), Err(DecodeError::Empty)));
    assert!(matches!(
        serial::decode_full(b"\x80\x03cos\nsystem\n"),
        Err(DecodeError::Malformed(_))
    ));
    let bytes = serial::encode_full(&small_full_model()).expect("encode");
    for cut in [1, 10, bytes.len() / 2, bytes.len() - 1] {
        assert!(serial::decode_full(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    // A level-0 model is not a full model.
    let one = serial::encode_model(&small_full_model().level0[0]).expect("encode");
    assert!(matches!(
        serial::decode_full(&one),
        Err(DecodeError::Kind { .. })
    ));
    // Every single-byte corruption decodes to an error or a valid model, never a panic.
    for i in (0..bytes.len()).step_by(7) {
        let mut b = bytes.clone();
        b[i] ^= 0xA5;
        if let Ok(m) = serial::decode_full(&b) {
            let _ = m.predict_proba(Array2::<f64>::zeros((2, 3)).view());
        }
    }
}

#[test]
fn inconsistent_models_are_refused_on_decode() {
    let mut full = small_full_model();
    if let stacking_core::models::FittedState::Forest(f) =
        &mut Arc::make_mut(&mut full.level0[2]).state
    {
        f.trees[0].children_left[0] = 0; // a cycle
    } else {
        panic!("model 2 should be the forest");
    }
    let e = serial::decode_full(&serial::encode_full(&full).expect("encode")).unwrap_err();
    assert!(matches!(e, DecodeError::Invalid(_)), "{e}");
    let mut full = small_full_model();
    full.level0.pop();
    let e = serial::decode_full(&serial::encode_full(&full).expect("encode")).unwrap_err();
    assert!(matches!(e, DecodeError::Invalid(_)), "{e}");
}

#[test]
fn schema_version_is_checked() {
    #[derive(serde::Serialize)]
    struct Env<'a> {
        format: &'a str,
        schema_version: u32,
        kind: &'a str,
        body: (),
    }
    let future = rmp_serde::to_vec_named(&Env {
        format: serial::FORMAT,
        schema_version: 99,
        kind: "full",
        body: (),
    })
    .unwrap();
    assert!(matches!(
        serial::decode_full(&future),
        Err(DecodeError::Version { found: 99 })
    ));
}

#[test]
fn dataset_wire_bytes_round_trip_and_reject_damage() {
    let (x, y) = xy();
    let ds = Dataset::new(x, y).unwrap();
    let bytes = ds.to_bytes();
    assert_eq!(Dataset::from_bytes(&bytes).unwrap(), ds);
    // X alone: the labels are missing
    assert!(Dataset::from_bytes(&ds.x_npy())
        .unwrap_err()
        .to_string()
        .contains("labels"));
    // cut inside y
    assert!(Dataset::from_bytes(&bytes[..bytes.len() - 5]).is_err());
    // trailing junk after y
    let mut junk = bytes.clone();
    junk.extend_from_slice(b"junk");
    assert!(Dataset::from_bytes(&junk).is_err());
}
