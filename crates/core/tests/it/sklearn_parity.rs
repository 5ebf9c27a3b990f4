//! Parity with scikit-learn 1.9.1 on the reference fixtures (see the fixture README).

use crate::common;

use common::*;
use ndarray::Array1;
use stacking_core::config::{default_level0, default_meta, ModelSpec};
use stacking_core::cv::{kfold, stratified_kfold};
use stacking_core::dataset::{make_classification, GeneratorParams};
use stacking_core::metrics::roc_auc;
use stacking_core::models::random_forest::RandomForestParams;
use stacking_core::models::FittedState;
use stacking_core::stack::{cross_val_predict, meta_features, train_level0, train_level1};

fn spec(json: &str) -> ModelSpec {
    ModelSpec::from_json_bytes(json.as_bytes()).unwrap()
}

fn level0_spec(name: &str) -> ModelSpec {
    let reference = reference();
    let params = &reference["level0"][name]["params"];
    ModelSpec::from_value(&serde_json::json!({"model": name, "params": params})).unwrap()
}

fn oof_of(name: &str) -> (Array1<f64>, Array1<f64>) {
    let (x, y) = dataset();
    let folds = kfold(x.nrows(), 5).unwrap();
    let ours = cross_val_predict(&level0_spec(name), x.view(), y.view(), &folds).unwrap();
    (ours, vector(&format!("oof_{name}.npy")))
}

#[test]
fn generator_reproduces_sklearn_make_classification() {
    let ds = make_classification(&GeneratorParams::default()).unwrap();
    let (x, y) = dataset();
    assert_eq!(ds.x().dim(), x.dim());
    let diff = ds
        .x()
        .iter()
        .zip(x.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(diff <= 1e-12, "max |X - X_sklearn| = {diff}");
    assert_eq!(ds.y(), &y);
}

#[test]
fn folds_match_sklearn() {
    let reference = reference();
    let (_, y) = dataset();
    let expect = |key: &str| -> Vec<Vec<usize>> {
        serde_json::from_value(reference["folds"][key].clone()).unwrap()
    };
    let kf: Vec<Vec<usize>> = kfold(300, 5).unwrap().into_iter().map(|f| f.test).collect();
    assert_eq!(kf, expect("level0_KFold5"));
    let skf: Vec<Vec<usize>> = stratified_kfold(y.as_slice().unwrap(), 5)
        .unwrap()
        .into_iter()
        .map(|f| f.test)
        .collect();
    assert_eq!(skf, expect("level1_StratifiedKFold5"));
}

/// Each level-0 model's out-of-fold and in-sample predictions against
/// scikit-learn's, and the largest difference allowed. Every model of the
/// fixtures needs its row: the test fails for one without.
const BOUNDS: [(&str, f64); 8] = [
    ("Lasso", 1e-8),
    ("KNeighborsRegressor", 1e-8),
    ("LinearRegression", 1e-6),
    ("LinearSVR", 1e-5),
    // The same bootstrap draws, splitter and feature order: the same trees
    // (checked node by node below).
    ("RandomForestRegressor", 1e-12),
    ("Ridge", 1e-10),
    ("ElasticNet", 1e-8),
    ("DecisionTreeRegressor", 1e-12),
];

/// The level-0 models of the fixtures, with their bounds.
fn fixture_models() -> Vec<(String, f64)> {
    let reference = reference();
    reference["level0"]
        .as_object()
        .unwrap()
        .keys()
        .map(|name| {
            let bound = BOUNDS
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("{name} is in the fixtures but has no row in BOUNDS"))
                .1;
            (name.clone(), bound)
        })
        .collect()
}

#[test]
fn oof_predictions_match() {
    let failures: Vec<String> = fixture_models()
        .into_iter()
        .filter_map(|(name, bound)| {
            let (ours, theirs) = oof_of(&name);
            let d = max_abs_diff(&ours, &theirs);
            eprintln!("{name}: OOF max |Δ| vs scikit-learn: {d:e}");
            (d > bound).then(|| format!("{name} max |Δ| = {d} > {bound}"))
        })
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
}

#[test]
fn in_sample_predictions_match() {
    let (x, y) = dataset();
    for (name, tol) in fixture_models() {
        let model = level0_spec(&name).fit(x.view(), y.view()).unwrap();
        let d = max_abs_diff(
            &model.predict(x.view()).unwrap(),
            &vector(&format!("insample_{name}.npy")),
        );
        assert!(d <= tol, "{name} in-sample max |Δ| = {d}");
    }
}

#[test]
fn random_forest_bootstrap_draws_match_sklearn() {
    let counts = array("rf_bootstrap_counts.npy");
    let params = match level0_spec("RandomForestRegressor") {
        ModelSpec::RandomForestRegressor(p) => p,
        other => panic!("{other:?}"),
    };
    let folds = kfold(300, 5).unwrap();
    let seeds = params.tree_seeds();
    for (f, fold) in folds.iter().enumerate() {
        for (k, &seed) in seeds.iter().enumerate() {
            let local = RandomForestParams::bootstrap_counts(seed, fold.train.len());
            for (pos, &row) in fold.train.iter().enumerate() {
                assert_eq!(
                    local[pos],
                    counts[[f, k, row]],
                    "fold {f} tree {k} row {row}"
                );
            }
        }
    }
    for (k, &seed) in seeds.iter().enumerate() {
        let full = RandomForestParams::bootstrap_counts(seed, 300);
        for row in 0..300 {
            assert_eq!(
                full[row],
                counts[[5, k, row]],
                "full fit tree {k} row {row}"
            );
        }
    }
}

#[test]
fn random_forest_trees_match_sklearn_given_its_bootstrap() {
    let (x, y) = dataset();
    let counts = array("rf_bootstrap_counts.npy");
    let params = match level0_spec("RandomForestRegressor") {
        ModelSpec::RandomForestRegressor(p) => p,
        other => panic!("{other:?}"),
    };
    let weights: Vec<Vec<f64>> = (0..2)
        .map(|k| (0..300).map(|i| counts[[5, k, i]]).collect())
        .collect();
    let forest = params.fit_weighted(x.view(), y.view(), &weights).unwrap();
    let reference = reference();
    let trees = reference["level0"]["RandomForestRegressor"]["full_fit"]["trees"]
        .as_array()
        .unwrap();
    for (k, (ours, theirs)) in forest.trees.iter().zip(trees).enumerate() {
        let get_i =
            |key: &str| -> Vec<i64> { serde_json::from_value(theirs[key].clone()).unwrap() };
        let get_f =
            |key: &str| -> Vec<f64> { serde_json::from_value(theirs[key].clone()).unwrap() };
        assert_eq!(ours.children_left, get_i("children_left"), "tree {k}");
        assert_eq!(ours.children_right, get_i("children_right"), "tree {k}");
        let n_samples: Vec<u64> = get_i("n_node_samples").iter().map(|&v| v as u64).collect();
        assert_eq!(ours.n_node_samples, n_samples, "tree {k}");
        for (a, b) in ours.value.iter().zip(get_f("value")) {
            assert!((a - b).abs() < 1e-12, "tree {k} value {a} vs {b}");
        }
        // Same RNG streams: the same features win, ties included.
        assert_eq!(ours.feature, get_i("feature"), "tree {k}");
        for (a, b) in ours.threshold.iter().zip(get_f("threshold")) {
            assert!((a - b).abs() < 1e-12, "tree {k} threshold {a} vs {b}");
        }
    }
}

#[test]
fn random_forest_oof_matches_sklearn_and_its_seed_spread() {
    let (ours, theirs) = oof_of("RandomForestRegressor");
    let (_, y) = dataset();
    let auc = roc_auc(y.as_slice().unwrap(), ours.as_slice().unwrap()).unwrap();
    assert!((0.70..=0.83).contains(&auc), "RF OOF AUC {auc}");
    let d = max_abs_diff(&ours, &theirs);
    eprintln!("OOF max |Δ| vs scikit-learn: {d:e}");
    assert!(d <= 1e-12, "RF max |Δ| = {d}");
}

#[test]
fn logistic_meta_model_matches() {
    let meta = matrix("meta_features.npy");
    let (_, y) = dataset();
    let out = train_level1(&default_meta(), meta.view(), y.view()).unwrap();
    let d = max_abs_diff(&out.oof_proba, &vector("meta_oof_proba.npy"));
    assert!(d <= 2e-3, "meta OOF proba max |Δ| = {d}");
    assert_eq!(out.oof_pred(), vector("meta_oof_pred.npy"));
    let reference = reference();
    let auc_ref = reference["level1_4_models"]["auc_proba_correct"]
        .as_f64()
        .unwrap();
    assert!(
        (out.auc - auc_ref).abs() <= 1e-3,
        "AUC {} vs {auc_ref}",
        out.auc
    );
    let swapped = reference["level1_4_models"]["auc_as_reported_by_benchmark"]
        .as_f64()
        .unwrap();
    assert!((out.auc_as_reported_by_original.unwrap() - swapped).abs() < 1e-9);
    let insample = out.model.predict(meta.view()).unwrap();
    let d = max_abs_diff(&insample, &vector("meta_insample_proba.npy"));
    assert!(d <= 2e-3, "meta in-sample proba max |Δ| = {d}");
}

#[test]
fn sixteen_trainer_meta_model_matches() {
    let meta4 = matrix("meta_features.npy");
    let (_, y) = dataset();
    let meta16 = ndarray::concatenate(
        ndarray::Axis(1),
        &[meta4.view(), meta4.view(), meta4.view(), meta4.view()],
    )
    .unwrap();
    let out = train_level1(&default_meta(), meta16.view(), y.view()).unwrap();
    let auc_ref = reference()["level1_16_trainers"]["auc_proba_correct"]
        .as_f64()
        .unwrap();
    assert!(
        (out.auc - auc_ref).abs() <= 1e-3,
        "AUC {} vs {auc_ref}",
        out.auc
    );
}

#[test]
fn whole_stack_with_our_level0_scores_like_sklearn() {
    let (x, y) = dataset();
    let reference = reference();
    let outputs: Vec<_> = default_level0()
        .iter()
        .map(|s| train_level0(s, x.view(), y.view()).unwrap())
        .collect();
    for (out, name) in outputs.iter().zip([
        "LinearSVR",
        "Lasso",
        "RandomForestRegressor",
        "KNeighborsRegressor",
    ]) {
        let auc_ref = reference["level0"][name]["oof_auc"].as_f64().unwrap();
        assert!(
            (out.oof_auc - auc_ref).abs() <= 1e-4,
            "{name}: OOF AUC {} vs sklearn {auc_ref}",
            out.oof_auc
        );
    }
    let meta = meta_features(&outputs.iter().map(|o| o.oof.clone()).collect::<Vec<_>>()).unwrap();
    let level1 = train_level1(&default_meta(), meta.view(), y.view()).unwrap();
    assert!(
        (level1.auc - 0.786).abs() <= 0.03,
        "ensemble AUC {}",
        level1.auc
    );
}

#[test]
fn logistic_spec_from_empty_params_is_the_default() {
    assert_eq!(
        spec(r#"{"model": "LogisticRegression", "params": {}}"#),
        default_meta()
    );
    let fitted = default_meta()
        .fit(matrix("meta_features.npy").view(), vector("y.npy").view())
        .unwrap();
    assert!(matches!(fitted.state, FittedState::Linear(_)));
}

#[test]
fn parallel_folds_give_identical_results() {
    let (x, y) = dataset();
    for spec in default_level0() {
        let one = stacking_core::stack::train_level0(&spec, x.view(), y.view()).unwrap();
        let two = stacking_core::stack::train_level0_threads(&spec, x.view(), y.view(), 3).unwrap();
        assert_eq!(one.oof, two.oof, "{}", spec.name());
        assert_eq!(one.model, two.model, "{}", spec.name());
    }
}
