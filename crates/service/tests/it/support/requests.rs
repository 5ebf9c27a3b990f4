//! Request builders for the tests: each names only what a test varies, and
//! leaves every other field empty, as a caller that omits it would.

use bytes::Bytes;
use stacking_service::pb::stacking::{
    MetaTrainRequest, ModelPredTuple, ReduceRequest, TrainRequest,
};

/// The Lasso config the bad-input tests train with.
pub fn lasso() -> Bytes {
    Bytes::from_static(br#"{"model": "Lasso", "params": {"alpha": 0.1}}"#)
}

/// `Train` for trainer 0 of a fixed run, with the dataset inline.
pub fn train_inline(dataset: Bytes, config: Bytes) -> TrainRequest {
    TrainRequest {
        dataset,
        dataset_key: String::new(),
        model_config: config,
        trainer_id: "0".into(),
        run_id: "run-098f6bcd4621d373cade4e832627b4f6".into(),
    }
}

/// `Train` for trainer `trainer` of `run`, fitting Lasso on the stored dataset `key`.
pub fn train_stored(run: &str, key: &str, trainer: usize) -> TrainRequest {
    TrainRequest {
        dataset_key: key.into(),
        run_id: run.into(),
        trainer_id: trainer.to_string(),
        ..train_inline(Bytes::new(), lasso())
    }
}

/// `Reduce` of `run` over stored `(model_key, pred_key)` pairs.
pub fn reduce_stored(run: &str, pairs: &[(&str, &str)]) -> ReduceRequest {
    ReduceRequest {
        model_pred_tuples: pairs
            .iter()
            .map(|(model, pred)| ModelPredTuple {
                model_key: model.to_string(),
                pred_key: pred.to_string(),
                ..Default::default()
            })
            .collect(),
        run_id: run.into(),
    }
}

/// `Metatrain` of `run` on a stored dataset, models and meta features (the default meta model).
pub fn metatrain_stored(
    run: &str,
    dataset_key: &str,
    models_key: &str,
    meta_features_key: &str,
) -> MetaTrainRequest {
    MetaTrainRequest {
        dataset_key: dataset_key.into(),
        models_key: models_key.into(),
        meta_features_key: meta_features_key.into(),
        run_id: run.into(),
        ..Default::default()
    }
}
