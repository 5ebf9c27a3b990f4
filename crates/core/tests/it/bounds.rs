//! Bounds on what one request can make the core do: every parameter that
//! scales work or memory is refused past its documented limit, a set stop
//! flag ends any fit, and decoders refuse inputs that would blow up.

use std::sync::mpsc;
use std::time::Duration;

use ndarray::{Array1, Array2};
use stacking_core::dataset::{make_classification, GeneratorParams};
use stacking_core::models::FitError;
use stacking_core::serial;
use stacking_core::stack::{train_level0_until, StackError};
use stacking_core::{ConfigError, ModelSpec, Stop, StopReason};

fn parse(json: &str) -> Result<ModelSpec, ConfigError> {
    ModelSpec::from_json_bytes(json.as_bytes())
}

fn out_of_range(json: &str) -> &'static str {
    match parse(json) {
        Err(ConfigError::OutOfRange { param, .. }) => param,
        other => panic!("{json}: expected OutOfRange, got {other:?}"),
    }
}

#[test]
fn every_parameter_that_scales_work_or_memory_has_an_upper_bound() {
    let cases = [
        (
            r#"{"model":"RandomForestRegressor","params":{"n_estimators":1000000000000000}}"#,
            "n_estimators",
        ),
        (
            r#"{"model":"RandomForestRegressor","params":{"n_estimators":10001}}"#,
            "n_estimators",
        ),
        (
            r#"{"model":"RandomForestRegressor","params":{"max_depth":100000}}"#,
            "max_depth",
        ),
        (
            r#"{"model":"RandomForestRegressor","params":{"min_samples_leaf":1e18}}"#,
            "min_samples_leaf",
        ),
        (
            r#"{"model":"RandomForestRegressor","params":{"max_features":1e18}}"#,
            "max_features",
        ),
        (
            r#"{"model":"LinearSVR","params":{"max_iter":1e12}}"#,
            "max_iter",
        ),
        (r#"{"model":"LinearSVR","params":{"tol":1e-300}}"#, "tol"),
        (
            r#"{"model":"Lasso","params":{"max_iter":1000001}}"#,
            "max_iter",
        ),
        (r#"{"model":"Lasso","params":{"tol":0}}"#, "tol"),
        (
            r#"{"model":"LogisticRegression","params":{"max_iter":1e9}}"#,
            "max_iter",
        ),
        (
            r#"{"model":"LogisticRegression","params":{"tol":1e-16}}"#,
            "tol",
        ),
        (
            r#"{"model":"KNeighborsRegressor","params":{"n_neighbors":100001}}"#,
            "n_neighbors",
        ),
        (
            r#"{"model":"ElasticNet","params":{"max_iter":1000001}}"#,
            "max_iter",
        ),
        (r#"{"model":"ElasticNet","params":{"tol":1e-16}}"#, "tol"),
        (
            r#"{"model":"DecisionTreeRegressor","params":{"max_depth":10001}}"#,
            "max_depth",
        ),
        (
            r#"{"model":"DecisionTreeRegressor","params":{"min_samples_split":1e18}}"#,
            "min_samples_split",
        ),
        (
            r#"{"model":"DecisionTreeRegressor","params":{"max_features":0}}"#,
            "max_features",
        ),
    ];
    for (json, param) in cases {
        assert_eq!(out_of_range(json), param, "{json}");
        let message = parse(json).unwrap_err().to_string();
        assert!(
            message.contains(param) && message.contains("out of range"),
            "{message}"
        );
    }
    // The limits themselves are accepted.
    for json in [
        r#"{"model":"RandomForestRegressor","params":{"n_estimators":10000,"max_depth":10000}}"#,
        r#"{"model":"LinearSVR","params":{"max_iter":1000000,"tol":1e-15}}"#,
        r#"{"model":"KNeighborsRegressor","params":{"n_neighbors":100000}}"#,
        r#"{"model":"ElasticNet","params":{"max_iter":1000000,"tol":1e-15}}"#,
        r#"{"model":"DecisionTreeRegressor","params":{"max_depth":10000}}"#,
    ] {
        assert!(parse(json).is_ok(), "{json}");
    }
}

/// Values a model cannot take at all, whatever their size: each refused
/// with the parameter named.
#[test]
fn values_outside_a_parameters_domain_are_refused_by_name() {
    let cases = [
        (r#"{"model":"Ridge","params":{"alpha":-1}}"#, "alpha"),
        (
            r#"{"model":"ElasticNet","params":{"l1_ratio":1.5}}"#,
            "l1_ratio",
        ),
        (
            r#"{"model":"ElasticNet","params":{"l1_ratio":-0.1}}"#,
            "l1_ratio",
        ),
        (r#"{"model":"ElasticNet","params":{"alpha":-0.5}}"#, "alpha"),
        (
            r#"{"model":"DecisionTreeRegressor","params":{"min_samples_leaf":0}}"#,
            "min_samples_leaf",
        ),
        (
            r#"{"model":"DecisionTreeRegressor","params":{"random_state":-1}}"#,
            "random_state",
        ),
    ];
    for (json, param) in cases {
        assert_eq!(out_of_range(json), param, "{json}");
    }
}

#[test]
fn error_messages_never_echo_more_than_an_excerpt_of_the_input() {
    let long_name = "M".repeat(50 << 20);
    let json = format!(r#"{{"model":"{long_name}"}}"#);
    let message = parse(&json).unwrap_err().to_string();
    assert!(message.len() < 300, "{} bytes", message.len());
    let long_param = format!(
        r#"{{"model":"Lasso","params":{{"{}":1}}}}"#,
        "p".repeat(10_000)
    );
    assert!(parse(&long_param).unwrap_err().to_string().len() < 400);
    let long_value = format!(
        r#"{{"model":"Lasso","params":{{"alpha":"{}"}}}}"#,
        "v".repeat(10_000)
    );
    assert!(parse(&long_value).unwrap_err().to_string().len() < 300);
}

fn dataset(rows: usize, cols: usize) -> (Array2<f64>, Array1<f64>) {
    let ds = make_classification(&GeneratorParams {
        n_samples: rows,
        n_features: cols,
        ..GeneratorParams::default()
    })
    .expect("dataset");
    (ds.x().clone(), ds.y().clone())
}

/// Runs a level-0 fit on another thread, sets its stop flag after `after`,
/// and returns its result (or fails if it does not end within a minute).
fn stopped_after(json: &str, after: Duration) -> Result<(), StackError> {
    let spec = parse(json).expect("spec");
    let (x, y) = dataset(300, 256);
    let stop = Stop::never();
    let flag = stop.clone();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let out = train_level0_until(&spec, x.view(), y.view(), 2, &stop).map(|_| ());
        let _ = tx.send(out);
    });
    std::thread::sleep(after);
    flag.request(StopReason::Cancelled);
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the fit did not stop within a minute of its stop flag")
}

#[test]
fn a_stop_flag_ends_every_long_fit() {
    // Each of these runs for minutes unstopped.
    for json in [
        r#"{"model":"LinearSVR","params":{"max_iter":1000000,"tol":1e-15,"C":1000}}"#,
        r#"{"model":"Lasso","params":{"alpha":1e-9,"max_iter":1000000,"tol":1e-15}}"#,
        r#"{"model":"ElasticNet","params":{"alpha":1e-9,"l1_ratio":0.5,"max_iter":1000000,"tol":1e-15}}"#,
        r#"{"model":"RandomForestRegressor","params":{"n_estimators":10000}}"#,
    ] {
        let out = stopped_after(json, Duration::from_millis(200));
        assert!(
            matches!(
                out,
                Err(StackError::Fit(FitError::Stopped(StopReason::Cancelled)))
            ),
            "{json}: {out:?}"
        );
    }
}

#[test]
fn a_flag_set_before_the_fit_stops_it_at_once() {
    let (x, y) = dataset(60, 8);
    for json in [
        r#"{"model":"KNeighborsRegressor"}"#,
        r#"{"model":"LinearRegression"}"#,
        r#"{"model":"Ridge"}"#,
        r#"{"model":"DecisionTreeRegressor"}"#,
    ] {
        let stop = Stop::never();
        stop.request(StopReason::BudgetExceeded);
        let out = train_level0_until(&parse(json).unwrap(), x.view(), y.view(), 1, &stop);
        assert!(
            matches!(
                out,
                Err(StackError::Fit(FitError::Stopped(
                    StopReason::BudgetExceeded
                )))
            ),
            "{json}: {out:?}"
        );
    }
}

#[test]
fn a_forest_that_would_outgrow_its_node_cap_is_refused() {
    // 10,000 unlimited trees on 300 distinct targets need about 4 million nodes.
    let (x, _) = dataset(300, 2);
    let y = Array1::from_iter((0..300).map(f64::from));
    let spec = parse(r#"{"model":"RandomForestRegressor","params":{"n_estimators":10000}}"#)
        .expect("spec");
    let out = spec.fit(x.view(), y.view());
    assert!(
        matches!(out, Err(FitError::TooLarge { .. })),
        "{:?}",
        out.map(|_| ())
    );
}

#[test]
fn a_stored_forest_must_hold_as_many_trees_as_its_parameters_say() {
    let (x, y) = dataset(60, 4);
    let small =
        parse(r#"{"model":"RandomForestRegressor","params":{"n_estimators":3}}"#).expect("spec");
    let mut model = small.fit(x.view(), y.view()).expect("fit");
    assert!(serial::decode_model(&serial::encode_model(&model).expect("encode")).is_ok());
    model.spec = parse(r#"{"model":"RandomForestRegressor","params":{"n_estimators":10000}}"#)
        .expect("spec");
    let e = serial::decode_model(&serial::encode_model(&model).expect("encode")).unwrap_err();
    assert!(e.to_string().contains("3 trees"), "{e}");
    // A single tree's spec over a forest of three is refused.
    model.spec = parse(r#"{"model":"DecisionTreeRegressor"}"#).expect("spec");
    let e = serial::decode_model(&serial::encode_model(&model).expect("encode")).unwrap_err();
    assert!(e.to_string().contains("3 trees"), "{e}");
    // A linear spec over a forest's state is refused too.
    for linear in ["Lasso", "Ridge", "ElasticNet"] {
        model.spec = parse(&format!(r#"{{"model":"{linear}"}}"#)).expect("spec");
        let e = serial::decode_model(&serial::encode_model(&model).expect("encode")).unwrap_err();
        assert!(e.to_string().contains("another kind"), "{linear}: {e}");
    }
}

#[test]
fn a_model_list_with_a_huge_order_array_is_refused_without_blowing_up() {
    let (x, y) = dataset(60, 4);
    let model = parse(r#"{"model":"Lasso"}"#)
        .unwrap()
        .fit(x.view(), y.view())
        .expect("fit");
    let bytes = serial::encode_models(&[model]).expect("encode");
    let mut doc: serde_json::Value = rmp_serde::from_slice(&bytes).expect("msgpack");
    // body.order: 2 million zeros, one byte each in MessagePack, 16 MB as indices.
    doc["body"]["order"] = serde_json::Value::Array(vec![0.into(); 2_000_000]);
    let crafted = rmp_serde::to_vec_named(&doc).expect("encode");
    assert!(crafted.len() < 2_100_000);
    let e = serial::decode_models(&crafted).unwrap_err();
    assert!(e.to_string().contains("4x the input"), "{e}");
}
