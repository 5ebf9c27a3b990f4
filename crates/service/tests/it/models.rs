//! Every registered level-0 model trains through the `Trainer` service, by
//! its scikit-learn name and defaults, with no test to edit when a model is
//! added: the list is the registry's.

use crate::support;

use stacking_core::config::MODEL_NAMES;
use stacking_core::models::Role as ModelRole;
use stacking_core::serial;
use stacking_core::ModelSpec;
use stacking_service::pb::stacking::trainer_client::TrainerClient;
use stacking_service::server::Role;
use stacking_service::{Context, Route};
use support::requests::train_inline;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_registered_regressor_trains_through_the_service() {
    let ctx = Context::new(Route::Inline, 1, 2);
    let addr = serve_on_loopback(Role::Trainer(ctx)).await;
    let mut trainer = TrainerClient::new(channel(addr).await);
    let dataset = dataset_bytes(120, 16);
    let mut trained = Vec::new();
    for name in MODEL_NAMES {
        let config = format!(r#"{{"model": "{name}"}}"#);
        let spec = ModelSpec::from_json_bytes(config.as_bytes()).unwrap();
        if spec.model().role() != ModelRole::Regressor {
            continue;
        }
        let reply = trainer
            .train(train_inline(dataset.clone(), config.into()))
            .await
            .unwrap_or_else(|s| panic!("{name}: {s:?}"))
            .into_inner();
        assert_eq!(reply.model_name, *name);
        let model = serial::decode_model(&reply.model).unwrap();
        assert_eq!(model.spec, spec, "{name}");
        let oof = stacking_core::npy::decode_f64_1d(&reply.predictions).unwrap();
        assert_eq!(oof.len(), 120, "{name}");
        assert!(oof.iter().all(|p| p.is_finite()), "{name}");
        trained.push(*name);
    }
    // The three added with the model trait among them.
    for name in ["Ridge", "ElasticNet", "DecisionTreeRegressor"] {
        assert!(trained.contains(&name), "{name} not trained: {trained:?}");
    }
}
