//! Property tests of every decoder that reads untrusted input: `.npy`
//! arrays, datasets, the model format (and the fitted state it carries), and
//! model and stack configurations. Each input is a valid one changed by
//! `stacking_testkit::mutation`; a panic fails the property, and proptest
//! shrinks it to the smallest change and keeps it in
//! `proptest-regressions/`. Every outcome must be `Ok` or a typed error.
//!
//! The test command runs a seeded sample (20,000 cases a property, about a second). The long
//! run: `PROPTEST_CASES=1000000 cargo test --release -p stacking-core --test it fuzz`
//! (`PROPTEST_RNG_SEED=N` for another sample).

use std::sync::LazyLock;

use ndarray::{Array1, Array2};
use proptest::prelude::*;
use stacking_core::dataset::{make_classification, Dataset, GeneratorParams, WireLayout};
use stacking_core::{config, npy, serial, ModelSpec, StackConfig};
use stacking_testkit::mutation::{self, mutated};

fn small_dataset() -> Dataset {
    make_classification(&GeneratorParams {
        n_samples: 40,
        n_features: 6,
        ..GeneratorParams::default()
    })
    .expect("dataset")
}

/// The valid inputs the properties change.
struct Valid {
    dataset: Dataset,
    wire: Vec<u8>,
    x: Vec<u8>,
    y: Vec<u8>,
    one_model: Vec<u8>,
    models: Vec<u8>,
    full_model: Vec<u8>,
    model_configs: Vec<Vec<u8>>,
    stack_config: Vec<u8>,
}

static VALID: LazyLock<Valid> = LazyLock::new(|| {
    let dataset = small_dataset();
    let models: Vec<_> = config::default_level0()
        .iter()
        .map(|spec| {
            spec.fit(dataset.x().view(), dataset.y().view())
                .expect("fit")
        })
        .collect();
    let meta = Array2::from_shape_fn((dataset.n_samples(), models.len()), |(i, j)| {
        models[j].predict(dataset.x().view()).expect("predict")[i]
    });
    let meta_model = config::default_meta()
        .fit(meta.view(), dataset.y().view())
        .expect("meta fit");
    let full = stacking_core::FullModel::new(
        models.iter().cloned().map(std::sync::Arc::new).collect(),
        meta_model,
    )
    .expect("full");
    let model_configs = config::default_level0_json()
        .into_iter()
        .chain([
            config::default_meta_json(),
            serde_json::json!({"model": "LinearRegression", "params": {"fit_intercept": false}}),
            serde_json::json!({"model": "RandomForestRegressor", "params": {"max_features": 0.5, "max_depth": 3}}),
            serde_json::json!({"model": "ElasticNet", "params": {"alpha": 0.1, "l1_ratio": 0.5}}),
            serde_json::json!({"model": "DecisionTreeRegressor", "params": {"max_depth": 3}}),
        ])
        .map(|v| v.to_string().into_bytes())
        .collect();
    Valid {
        wire: dataset.to_bytes(),
        x: npy::encode_f64_2d(dataset.x()),
        y: npy::encode_f64_1d(dataset.y()),
        one_model: serial::encode_model(&models[2]).expect("encode"),
        models: serial::encode_models(&models).expect("encode"),
        full_model: serial::encode_full(&full).expect("encode"),
        model_configs,
        stack_config: br#"{"models": [{"model": "Lasso", "params": {"alpha": 0.1}}], "meta_model": {"model": "LogisticRegression"}}"#.to_vec(),
        dataset,
    }
});

/// One of the valid model configurations, changed.
fn model_config() -> impl Strategy<Value = Vec<u8>> {
    (0..VALID.model_configs.len()).prop_flat_map(|i| mutated(VALID.model_configs[i].clone()))
}

proptest! {
    #![proptest_config(mutation::config(20_000))]

    #[test]
    fn the_dataset_decoders_never_panic(bytes in mutated(VALID.wire.clone())) {
        let _ = Dataset::from_bytes(&bytes);
        let _ = WireLayout::from_prefix(&bytes);
    }

    #[test]
    fn the_npy_decoders_never_panic(x in mutated(VALID.x.clone()), y in mutated(VALID.y.clone())) {
        let _ = npy::extent(&x);
        let _ = npy::decode_f64_2d(&x);
        let _ = npy::decode_f64_1d(&y);
        let _ = npy::decode_labels(&y);
        let _ = Dataset::from_npy(&x, &y);
    }

    #[test]
    fn the_model_decoders_never_panic(
        one in mutated(VALID.one_model.clone()),
        list in mutated(VALID.models.clone()),
        full in mutated(VALID.full_model.clone()),
    ) {
        let _ = serial::decode_model(&one);
        let _ = serial::decode_models(&list);
        if let Ok(model) = serial::decode_full(&full) {
            // Whatever decodes has a checked state: it predicts without
            // panicking.
            let _ = model.predict_proba(VALID.dataset.x().view());
        }
    }

    #[test]
    fn a_model_config_round_trips_or_is_refused(bytes in model_config()) {
        let (x, y) = (
            Array2::from_shape_fn((12, 3), |(i, j)| ((i * 7 + j * 3) % 5) as f64),
            Array1::from_iter((0..12).map(|i| (i % 2) as f64)),
        );
        if let Ok(spec) = ModelSpec::from_json_bytes(&bytes) {
            // A spec that parses round-trips, and fits small data or says why.
            prop_assert_eq!(ModelSpec::from_value(&spec.to_json()).ok(), Some(spec.clone()));
            if !matches!(spec, ModelSpec::RandomForestRegressor(_)) {
                let _ = spec.fit(x.view(), y.view());
            }
        }
    }

    #[test]
    fn the_stack_config_parser_never_panics(bytes in mutated(VALID.stack_config.clone())) {
        let _ = StackConfig::from_json_bytes(&bytes);
    }
}
