//! Turning arguments and environment into the service objects.

use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use bytes::Bytes;
use stacking_core::dataset::{make_classification, GeneratorParams};
use stacking_core::{Dataset, StackConfig};
use stacking_service::driver::{Driver, DriverConfig, LoadedDataset};
use stacking_service::settings::{parse_bool, parse_positive, DEFAULT_CALL_TIMEOUT};
use stacking_service::{CommonSettings, Context, Transfer};
use stacking_storage::s3::{self, S3Config};
use stacking_storage::BlobStore;

use crate::args::{DataArgs, DriverArgs};

/// CPU threads one request may use for its fold fits.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The object store a distributed function uses: S3 when TRANSFER_TYPE=S3.
pub fn store_for(settings: &CommonSettings) -> Result<Option<Arc<dyn BlobStore>>> {
    Ok(match settings.transfer {
        Transfer::S3 => Some(Arc::new(s3::open(&S3Config::from_env()?)?) as Arc<dyn BlobStore>),
        Transfer::Inline => None,
    })
}

/// Stops start-up when the store does not answer or its bucket is missing.
pub async fn probe_store(ctx: &Context) -> Result<()> {
    if let Some(store) = &ctx.store {
        store
            .probe()
            .await
            .with_context(|| format!("checking {} at start-up", store.describe()))?;
    }
    Ok(())
}

pub fn context_from_env(settings: &CommonSettings) -> Result<Context> {
    Ok(Context::new(
        store_for(settings)?,
        settings.transfer,
        settings.max_server_threads,
        cpus(),
    )
    .with_limits(settings.limits))
}

/// The dataset: the user's `.npy` files, or the generator.
pub fn load_dataset(data: &DataArgs) -> Result<Dataset> {
    match (&data.features, &data.labels) {
        (Some(x), Some(y)) => {
            let xb =
                std::fs::read(x).with_context(|| format!("reading --features {}", x.display()))?;
            let yb =
                std::fs::read(y).with_context(|| format!("reading --labels {}", y.display()))?;
            Dataset::from_npy(&xb, &yb)
                .with_context(|| format!("loading {} and {}", x.display(), y.display()))
        }
        _ => Ok(make_classification(&generator_params(data))?),
    }
}

pub fn load_stack(data: &DataArgs) -> Result<StackConfig> {
    match &data.models {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading --models {}", path.display()))?;
            Ok(StackConfig::from_json_bytes(&bytes)
                .with_context(|| format!("in {}", path.display()))?)
        }
        None => Ok(StackConfig::default()),
    }
}

/// `TrainersNum` from the environment overrides `-trainersNum`, as in the original.
pub fn trainers_num(flag: usize) -> Result<usize> {
    let n = match std::env::var("TrainersNum") {
        Ok(v) => parse_positive("TrainersNum", &v)?,
        Err(_) => flag,
    };
    if n == 0 {
        bail!("-trainersNum must be at least 1");
    }
    Ok(n)
}

pub fn concurrent_training() -> Result<bool> {
    Ok(match std::env::var("CONCURRENT_TRAINING") {
        Ok(v) => parse_bool("CONCURRENT_TRAINING", &v)?,
        Err(_) => false,
    })
}

/// The driver of a distributed deployment, from its flags and environment.
/// A generated dataset is made on another thread while the server starts;
/// the driver reports healthy once it is ready.
pub fn driver_from_args(
    args: &DriverArgs,
    settings: &CommonSettings,
    tracer: Option<std::sync::Arc<stacking_service::trace::Tracer>>,
) -> Result<Driver> {
    let cfg = DriverConfig {
        trainer_addr: args.t_addr.clone(),
        reducer_addr: args.r_addr.clone(),
        metatrainer_addr: args.m_addr.clone(),
        trainers: trainers_num(args.trainers_num)?,
        concurrent: concurrent_training()?,
        keep_objects: args.data.keep_objects,
        stack: load_stack(&args.data)?,
        call_timeout: DEFAULT_CALL_TIMEOUT,
        max_message_bytes: settings.max_message_bytes,
    };
    let ctx = context_from_env(settings)?.with_tracer(tracer);
    if args.data.features.is_some() {
        let dataset = load_dataset(&args.data)?;
        let n = dataset.n_samples();
        return Ok(Driver::new(cfg, ctx, Bytes::from(dataset.to_bytes()), n)?);
    }
    let params = generator_params(&args.data);
    params.validate()?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let made = make_classification(&params)
            .map(|d| LoadedDataset {
                n_samples: d.n_samples(),
                bytes: Bytes::from(d.to_bytes()),
            })
            .map_err(|e| e.to_string());
        // The generator's scratch is free now; give it back before SERVING.
        stacking_service::malloc::release_free_memory();
        let _ = tx.send(made);
    });
    Ok(Driver::new_pending(cfg, ctx, rx)?)
}

fn generator_params(data: &DataArgs) -> GeneratorParams {
    GeneratorParams {
        n_samples: data.n_samples,
        n_features: data.n_features,
        seed: data.seed,
        ..GeneratorParams::default()
    }
}
