//! The stored model format: repeated level-0 models are stored once (schema
//! version 2), decode back to shared models, and version-1 bytes still load.

use crate::common;

use std::sync::Arc;

use ndarray::{Array1, Array2};
use serde::Serialize;
use stacking_core::models::FittedModel;
use stacking_core::serial::{self, DecodeError};
use stacking_core::{config, FullModel};

fn xy() -> (Array2<f64>, Array1<f64>) {
    let x = Array2::from_shape_fn((60, 8), |(i, j)| {
        ((i * 7 + j * 3) % 13) as f64 + (i % 2) as f64 * 1.5
    });
    let y = Array1::from_shape_fn(60, |i| (i % 2) as f64);
    (x, y)
}

/// The four default models fitted once each, then repeated as 8 trainers
/// cycling through them would produce them: separately fitted, equal models.
fn eight_trainer_models() -> Vec<Arc<FittedModel>> {
    let (x, y) = xy();
    (0..8)
        .map(|i| {
            let spec = &config::default_level0()[i % 4];
            Arc::new(spec.fit(x.view(), y.view()).unwrap())
        })
        .collect()
}

fn full_model(level0: Vec<Arc<FittedModel>>) -> FullModel {
    let (x, y) = xy();
    common::stack_on(x.view(), y.view(), level0)
}

#[test]
fn equal_models_are_stored_once_and_shared_on_decode() {
    let models = eight_trainer_models();
    let four = serial::encode_models(&models[..4]).expect("encode");
    let eight = serial::encode_models(&models).expect("encode");
    // Eight models where four are repeats cost only the 8 extra indices.
    assert!(
        eight.len() < four.len() + 16,
        "{} vs {}",
        eight.len(),
        four.len()
    );
    let back = serial::decode_models(&eight).unwrap();
    assert_eq!(back, models);
    for i in 0..4 {
        assert!(Arc::ptr_eq(&back[i], &back[i + 4]), "model {i}");
    }
    assert!(!Arc::ptr_eq(&back[0], &back[1]));
}

#[test]
fn full_model_with_repeats_round_trips_and_predicts_identically() {
    let full = full_model(eight_trainer_models());
    let bytes = serial::encode_full(&full).expect("encode");
    let back = serial::decode_full(&bytes).unwrap();
    assert_eq!(back, full);
    assert!(Arc::ptr_eq(&back.level0[3], &back.level0[7]));
    let (x, _) = xy();
    assert_eq!(
        back.predict_proba(x.view()).unwrap(),
        full.predict_proba(x.view()).unwrap()
    );
}

#[derive(Serialize)]
struct Envelope<B> {
    format: &'static str,
    schema_version: u32,
    kind: &'static str,
    body: B,
}

fn envelope<B: Serialize>(schema_version: u32, kind: &'static str, body: B) -> Vec<u8> {
    rmp_serde::to_vec_named(&Envelope {
        format: serial::FORMAT,
        schema_version,
        kind,
        body,
    })
    .unwrap()
}

#[test]
fn version_1_lists_and_full_models_still_decode() {
    let models = eight_trainer_models();
    let plain: Vec<&FittedModel> = models.iter().map(|m| m.as_ref()).collect();
    let list = envelope(1, "level0-list", &plain);
    assert_eq!(serial::decode_models(&list).unwrap(), models);

    let full = full_model(models);
    #[derive(Serialize)]
    struct FullV1<'a> {
        level0: Vec<&'a FittedModel>,
        meta: &'a FittedModel,
    }
    let v1 = envelope(
        1,
        "full",
        FullV1 {
            level0: full.level0.iter().map(|m| m.as_ref()).collect(),
            meta: &full.meta,
        },
    );
    assert_eq!(serial::decode_full(&v1).unwrap(), full);
}

#[test]
fn a_list_referring_to_a_missing_or_unused_model_is_refused() {
    #[derive(Serialize)]
    struct List<'a> {
        unique: Vec<&'a FittedModel>,
        order: Vec<usize>,
    }
    let models = eight_trainer_models();
    let unique: Vec<&FittedModel> = models[..2].iter().map(|m| m.as_ref()).collect();
    let ok = envelope(
        2,
        "level0-list",
        List {
            unique: unique.clone(),
            order: vec![1, 0, 1],
        },
    );
    let back = serial::decode_models(&ok).unwrap();
    assert_eq!(back.len(), 3);
    assert_eq!(back[0], models[1]);

    for (order, needle) in [
        (vec![0, 2], "refers to model 2 of 2"),
        (vec![0, 0], "never uses"),
    ] {
        let bad = envelope(
            2,
            "level0-list",
            List {
                unique: unique.clone(),
                order,
            },
        );
        match serial::decode_models(&bad) {
            Err(DecodeError::Invalid(e)) => assert!(e.to_string().contains(needle), "{e}"),
            other => panic!("expected Invalid({needle}), got {other:?}"),
        }
    }
}

#[test]
fn a_future_schema_version_names_the_versions_this_build_reads() {
    let bytes = envelope(serial::SCHEMA_VERSION + 1, "full", ());
    let e = serial::decode_full(&bytes).unwrap_err();
    assert!(matches!(e, DecodeError::Version { .. }));
    assert!(e.to_string().contains("versions 1 to 2"), "{e}");
}
