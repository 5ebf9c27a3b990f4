//! Properties of the dataset generator over several seeds.

use stacking_core::dataset::{informative_columns, make_classification, GeneratorParams};
use stacking_core::metrics::roc_auc;

fn params(seed: u32, flip_y: f64) -> GeneratorParams {
    GeneratorParams {
        n_samples: 2000,
        n_features: 40,
        weights: vec![0.9, 0.1],
        flip_y,
        seed,
    }
}

fn positive_fraction(seed: u32, flip_y: f64) -> f64 {
    let ds = make_classification(&params(seed, flip_y)).unwrap();
    ds.y().sum() / ds.n_samples() as f64
}

#[test]
fn class_balance_follows_weights_without_flips() {
    // Cluster sizes are int(n * w / 2) per cluster, so the balance is exact.
    for seed in 0..5 {
        assert_eq!(positive_fraction(seed, 0.0), 0.1, "seed {seed}");
    }
}

#[test]
fn flip_rate_matches_flip_y() {
    // A flipped label is redrawn uniformly, so positives become
    // (1 - f) * 0.1 + f * 0.5 = 0.14 for f = 0.1 in expectation.
    let mean: f64 = (0..10).map(|s| positive_fraction(s, 0.1)).sum::<f64>() / 10.0;
    assert!((mean - 0.14).abs() < 0.01, "positive fraction {mean}");
    let mean: f64 = (0..10).map(|s| positive_fraction(s, 0.4)).sum::<f64>() / 10.0;
    assert!((mean - 0.26).abs() < 0.015, "positive fraction {mean}");
}

#[test]
fn exactly_two_columns_are_informative() {
    for seed in 0..5 {
        let p = params(seed, 0.0);
        let ds = make_classification(&p).unwrap();
        let informative = informative_columns(&p).unwrap();
        assert_eq!(informative.len(), 2, "seed {seed}");
        let y = ds.y().to_vec();
        // Noise columns carry no signal; the two informative ones together do.
        for j in 0..p.n_features {
            let col = ds.x().column(j).to_vec();
            let auc = roc_auc(&y, &col).unwrap();
            if !informative.contains(&j) {
                assert!(
                    (auc - 0.5).abs() < 0.08,
                    "seed {seed}: noise column {j} has AUC {auc}"
                );
            }
        }
        let best = informative
            .iter()
            .map(|&j| (roc_auc(&y, &ds.x().column(j).to_vec()).unwrap() - 0.5).abs())
            .fold(0.0, f64::max);
        assert!(
            best > 0.1,
            "seed {seed}: informative columns separate nothing ({best})"
        );
    }
}

#[test]
fn same_seed_same_data_other_seed_other_data() {
    let a = make_classification(&params(3, 0.1)).unwrap();
    let b = make_classification(&params(3, 0.1)).unwrap();
    let c = make_classification(&params(4, 0.1)).unwrap();
    assert_eq!(a, b);
    assert_ne!(a.x(), c.x());
}

#[test]
fn bad_generator_parameters_are_named() {
    let p = GeneratorParams {
        n_features: 1,
        ..Default::default()
    };
    assert!(make_classification(&p)
        .unwrap_err()
        .to_string()
        .contains("n_features"));
    let p = GeneratorParams {
        weights: vec![1.5],
        ..Default::default()
    };
    assert!(make_classification(&p)
        .unwrap_err()
        .to_string()
        .contains("weights"));
    let p = GeneratorParams {
        flip_y: 2.0,
        ..Default::default()
    };
    assert!(make_classification(&p)
        .unwrap_err()
        .to_string()
        .contains("flip_y"));
}
