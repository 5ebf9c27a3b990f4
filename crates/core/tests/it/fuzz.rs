//! Random-bytes and mutation fuzzing of every decoder that reads untrusted
//! input: `.npy` arrays, datasets, the model format, and model and stack
//! configurations. A panic fails the test; every outcome must be `Ok` or a
//! typed error. Stable Rust, no extra tools: a seeded generator, a bounded
//! number of cases per run (`FUZZ_CASES`, default 20000 per target), so a
//! failure reproduces with the same seed (`FUZZ_SEED`).
//!
//! The longer run (see the README): `FUZZ_CASES=1000000 cargo test --release
//! -p stacking-core --test fuzz`.

use ndarray::{Array1, Array2};
use stacking_core::dataset::{make_classification, Dataset, GeneratorParams, WireLayout};
use stacking_core::{config, npy, serial, ModelSpec, StackConfig};

/// SplitMix64: small, seedable, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn cases() -> usize {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

fn seed() -> u64 {
    std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED)
}

/// A valid input changed in one of the ways that find decoder bugs:
/// flipped bytes, a cut, a splice of random bytes, a duplicated run,
/// or boundary values written over a 1-, 2-, 4- or 8-byte field.
fn mutate(rng: &mut Rng, valid: &[u8]) -> Vec<u8> {
    let mut out = valid.to_vec();
    let at = rng.below(out.len() + 1);
    match rng.below(6) {
        0 => {
            for _ in 0..=rng.below(8) {
                let i = rng.below(out.len());
                if let Some(b) = out.get_mut(i) {
                    *b ^= 1 << rng.below(8);
                }
            }
        }
        1 => out.truncate(at),
        2 => {
            let n = rng.below(64);
            let noise = rng.bytes(n);
            out.splice(at..at, noise);
        }
        3 => {
            let end = (at + rng.below(256)).min(out.len());
            let run = out[at..end].to_vec();
            out.splice(at..at, run);
        }
        4 => {
            let width = [1, 2, 4, 8][rng.below(4)];
            let value: u64 = [0, 1, u64::MAX, 0x7F, 0x80, 0xFFFF, 0xFFFF_FFFF][rng.below(7)];
            for (k, byte) in value.to_le_bytes().iter().take(width).enumerate() {
                if let Some(b) = out.get_mut(at + k) {
                    *b = *byte;
                }
            }
        }
        _ => {
            let n = rng.below(512);
            out = rng.bytes(n);
        }
    }
    out
}

fn small_dataset() -> Dataset {
    make_classification(&GeneratorParams {
        n_samples: 40,
        n_features: 6,
        ..GeneratorParams::default()
    })
    .expect("dataset")
}

#[test]
fn npy_and_dataset_decoders_never_panic() {
    let ds = small_dataset();
    let wire = ds.to_bytes();
    let x = npy::encode_f64_2d(ds.x());
    let y = npy::encode_f64_1d(ds.y());
    let mut rng = Rng(seed());
    for _ in 0..cases() {
        let bytes = mutate(&mut rng, &wire);
        let _ = Dataset::from_bytes(&bytes);
        let _ = WireLayout::from_prefix(&bytes);
        let _ = npy::extent(&bytes);
        let xb = mutate(&mut rng, &x);
        let yb = mutate(&mut rng, &y);
        let _ = npy::decode_f64_2d(&xb);
        let _ = npy::decode_f64_1d(&yb);
        let _ = npy::decode_labels(&yb);
        let _ = Dataset::from_npy(&xb, &yb);
    }
}

#[test]
fn model_decoders_never_panic() {
    let ds = small_dataset();
    let models: Vec<_> = config::default_level0()
        .iter()
        .map(|spec| spec.fit(ds.x().view(), ds.y().view()).expect("fit"))
        .collect();
    let one = serial::encode_model(&models[2]).expect("encode");
    let list = serial::encode_models(&models).expect("encode");
    let meta = Array2::from_shape_fn((ds.n_samples(), models.len()), |(i, j)| {
        models[j].predict(ds.x().view()).expect("predict")[i]
    });
    let meta_model = config::default_meta()
        .fit(meta.view(), ds.y().view())
        .expect("meta fit");
    let full = serial::encode_full(
        &stacking_core::FullModel::new(
            models.iter().cloned().map(std::sync::Arc::new).collect(),
            meta_model,
        )
        .expect("full"),
    )
    .expect("encode");
    let mut rng = Rng(seed() ^ 1);
    for _ in 0..cases() {
        let _ = serial::decode_model(&mutate(&mut rng, &one));
        let _ = serial::decode_models(&mutate(&mut rng, &list));
        if let Ok(m) = serial::decode_full(&mutate(&mut rng, &full)) {
            // Whatever decodes predicts without panicking.
            let _ = m.predict_proba(ds.x().view());
        }
    }
}

#[test]
fn config_parsers_never_panic() {
    let specs: Vec<Vec<u8>> = config::default_level0_json()
        .into_iter()
        .chain([
            config::default_meta_json(),
            serde_json::json!({"model": "LinearRegression", "params": {"fit_intercept": false}}),
            serde_json::json!({"model": "RandomForestRegressor", "params": {"max_features": 0.5, "max_depth": 3}}),
        ])
        .map(|v| v.to_string().into_bytes())
        .collect();
    let stack = br#"{"models": [{"model": "Lasso", "params": {"alpha": 0.1}}], "meta_model": {"model": "LogisticRegression"}}"#;
    let (x, y) = (
        Array2::from_shape_fn((12, 3), |(i, j)| ((i * 7 + j * 3) % 5) as f64),
        Array1::from_iter((0..12).map(|i| (i % 2) as f64)),
    );
    let mut rng = Rng(seed() ^ 2);
    for _ in 0..cases() {
        let valid = &specs[rng.below(specs.len())];
        if let Ok(spec) = ModelSpec::from_json_bytes(&mutate(&mut rng, valid)) {
            // A spec that parses round-trips, and fits small data or says why.
            assert_eq!(
                ModelSpec::from_value(&spec.to_json()).ok(),
                Some(spec.clone())
            );
            if !matches!(spec, ModelSpec::RandomForestRegressor(_)) {
                let _ = spec.fit(x.view(), y.view());
            }
        }
        let _ = StackConfig::from_json_bytes(&mutate(&mut rng, stack));
    }
}
