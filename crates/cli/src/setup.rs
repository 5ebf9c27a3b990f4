//! Turning arguments and environment into the service objects.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use bytes::Bytes;
use stacking_core::dataset::{make_classification, make_classification_bytes, GeneratorParams};
use stacking_core::{Dataset, StackConfig};
use stacking_service::driver::{
    DatasetUnavailable, Driver, DriverConfig, LoadedDataset, PendingDataset, ReportOptions,
};
use stacking_service::{CommonSettings, Context, DriverSettings, Route, RunPlan, Transfer};
use stacking_storage::redis::{self, RedisConfig};
use stacking_storage::s3::{self, S3Config};
use stacking_storage::BlobStore;

use crate::args::{DataArgs, DriverArgs};
use crate::settings;

/// CPU threads one request may use for its fold fits.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The store a distributed function uses: S3 for TRANSFER_TYPE=S3, Redis
/// for TRANSFER_TYPE=ELASTICACHE, none for INLINE.
pub fn store_for(settings: &CommonSettings) -> Result<Option<Arc<dyn BlobStore>>> {
    Ok(match settings.transfer {
        Transfer::Inline => None,
        transfer => Some(open_store(transfer)?),
    })
}

/// The store `transfer` names, configured from the environment (S3 for INLINE too).
pub fn open_store(transfer: Transfer) -> Result<Arc<dyn BlobStore>> {
    Ok(match transfer {
        Transfer::ElastiCache => Arc::new(open_redis()?),
        Transfer::S3 | Transfer::Inline => Arc::new(open_s3()?),
    })
}

/// The S3 bucket the environment names.
pub fn open_s3() -> Result<stacking_storage::ObjectStoreBackend> {
    Ok(s3::open(&S3Config::from_lookup(settings::env)?)?)
}

/// The Redis server the environment names.
pub fn open_redis() -> Result<redis::RedisStore> {
    Ok(redis::open(&RedisConfig::from_lookup(settings::env)?)?)
}

/// Every function's settings from the environment.
pub fn common_settings() -> Result<CommonSettings> {
    Ok(CommonSettings::from_lookup(settings::env)?)
}

/// The driver's own settings from the environment.
pub fn driver_settings() -> Result<DriverSettings> {
    Ok(DriverSettings::from_lookup(settings::env)?)
}

/// Stops start-up when the store does not answer or its bucket is missing.
pub async fn probe_store(ctx: &Context) -> Result<()> {
    if let Some(store) = ctx.store() {
        store
            .probe()
            .await
            .with_context(|| format!("checking {} at start-up", store.describe()))?;
    }
    Ok(())
}

pub fn context_from_env(settings: &CommonSettings) -> Result<Context> {
    Ok(Context::new(
        Route::new(settings.transfer, store_for(settings)?)?,
        settings.max_server_threads,
        cpus(),
    )
    .with_limits(settings.limits))
}

/// A dataset and what the report says about where it came from.
pub struct LoadedData {
    pub dataset: Dataset,
    pub report: ReportOptions,
}

/// The dataset: the user's `.npy` files (any numeric dtype, any two label
/// values, converted and noted), or the generator.
pub fn load_dataset(data: &DataArgs) -> Result<LoadedData> {
    match (&data.features, &data.labels) {
        (Some(x), Some(y)) => {
            let xb = read_npy_file(x, "--features")?;
            let yb = read_npy_file(y, "--labels")?;
            let (dataset, notes) = Dataset::from_user_npy(&xb, &yb)
                .with_context(|| format!("loading {} and {}", x.display(), y.display()))?;
            Ok(LoadedData {
                dataset,
                report: ReportOptions {
                    dataset_source: format!("{} and {}", x.display(), y.display()),
                    dataset_notes: notes,
                    ..ReportOptions::default()
                },
            })
        }
        _ => {
            let params = generator_params(data);
            Ok(LoadedData {
                dataset: make_classification(&params)?,
                report: generated_report(&params),
            })
        }
    }
}

/// The largest `--models` file read: a stack of thousands of models is a
/// few hundred KiB of JSON.
const MAX_MODELS_FILE: u64 = 16 << 20;

/// The longest `.npy` header read before its data (numpy writes a few
/// hundred bytes).
const MAX_NPY_HEADER: u64 = 1 << 20;

/// Refuses anything but a regular file, before opening it: a FIFO blocks an
/// open until a writer comes, and a device (`/dev/zero`) never ends.
fn regular_file(path: &Path, flag: &str) -> Result<std::fs::File> {
    let meta = std::fs::metadata(path).with_context(|| format!("{flag} {}", path.display()))?;
    if !meta.is_file() {
        bail!(
            "{flag} {}: not a regular file (a directory, FIFO or device cannot be read as data)",
            path.display()
        );
    }
    std::fs::File::open(path).with_context(|| format!("{flag} {}", path.display()))
}

/// A regular file of at most `limit` bytes, whole.
fn read_bounded(path: &Path, flag: &str, limit: u64) -> Result<Vec<u8>> {
    use std::io::Read as _;
    let file = regular_file(path, flag)?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {flag} {}", path.display()))?;
    if bytes.len() as u64 > limit {
        bail!(
            "{flag} {}: larger than the {} MiB this flag reads",
            path.display(),
            limit >> 20
        );
    }
    Ok(bytes)
}

/// A `.npy` file, read no further than its header declares (one byte more,
/// to tell trailing data): a header that promises little cannot make the
/// reader take a large file whole.
fn read_npy_file(path: &Path, flag: &str) -> Result<Vec<u8>> {
    use std::io::Read as _;
    let mut file = regular_file(path, flag)?;
    let mut bytes = Vec::new();
    (&mut file)
        .take(MAX_NPY_HEADER)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {flag} {}", path.display()))?;
    let extent =
        stacking_core::npy::extent(&bytes).with_context(|| format!("{flag} {}", path.display()))?;
    let wanted = extent.total_len as u64 + 1;
    if (bytes.len() as u64) < wanted {
        let more = wanted - bytes.len() as u64;
        bytes.try_reserve_exact(more as usize).map_err(|_| {
            anyhow::anyhow!(
                "{flag} {}: its header declares {} bytes, more than this machine can hold",
                path.display(),
                extent.total_len
            )
        })?;
        file.take(more)
            .read_to_end(&mut bytes)
            .with_context(|| format!("reading {flag} {}", path.display()))?;
    }
    if bytes.len() > extent.total_len {
        bail!(
            "{flag} {}: more bytes follow the array than its header declares",
            path.display()
        );
    }
    Ok(bytes)
}

fn generated_report(params: &GeneratorParams) -> ReportOptions {
    ReportOptions {
        dataset_source: "make_classification".into(),
        seed: Some(params.seed),
        ..ReportOptions::default()
    }
}

pub fn load_stack(data: &DataArgs) -> Result<StackConfig> {
    match &data.models {
        Some(path) => {
            let bytes = read_bounded(path, "--models", MAX_MODELS_FILE)?;
            Ok(StackConfig::from_json_bytes(&bytes)
                .with_context(|| format!("in {}", path.display()))?)
        }
        None => Ok(StackConfig::default()),
    }
}

/// `TrainersNum` from the environment overrides `-trainersNum`, as in the original.
pub fn trainers_num(flag: usize, driver: &DriverSettings) -> Result<usize> {
    let n = driver.trainers_num.unwrap_or(flag);
    if n == 0 {
        bail!("-trainersNum must be at least 1");
    }
    Ok(n)
}

/// The driver of a distributed deployment, from its flags and environment.
/// A generated dataset is made on another thread while the server starts;
/// a SayHello that arrives before it is made waits for it.
pub fn driver_from_args(
    args: &DriverArgs,
    settings: &CommonSettings,
    driver: &DriverSettings,
    tracer: Option<std::sync::Arc<stacking_service::trace::Tracer>>,
    generating: Option<Generating>,
) -> Result<Driver> {
    // Generation starts before anything else is set up (the storage client
    // among it), so that the two overlap on a cold start; `main` starts it
    // earlier still, before the runtime.
    let generating = match generating {
        Some(g) => Some(g),
        None => start_generation(&args.data)?,
    };
    let cfg = driver_config(args, settings, driver)?;
    let ctx = context_from_env(&settings.clone().with_driver(driver))?.with_tracer(tracer);
    match generating {
        Some((report, pending)) => Ok(Driver::new_pending(
            DriverConfig { report, ..cfg },
            ctx,
            pending,
        )?),
        None => {
            let LoadedData { dataset, report } = load_dataset(&args.data)?;
            let n = dataset.n_samples();
            let cfg = DriverConfig { report, ..cfg };
            Ok(Driver::new(cfg, ctx, Bytes::from(dataset.to_bytes()), n)?)
        }
    }
}

/// The driver's configuration from its flags and environment; the dataset
/// is not made or read (its report says nothing yet).
fn driver_config(
    args: &DriverArgs,
    settings: &CommonSettings,
    driver: &DriverSettings,
) -> Result<DriverConfig> {
    Ok(DriverConfig {
        trainer_addr: args.t_addr.clone(),
        reducer_addr: args.r_addr.clone(),
        metatrainer_addr: args.m_addr.clone(),
        plan: RunPlan {
            keep_objects: args.data.keeps_objects(driver),
            ..RunPlan::new(trainers_num(args.trainers_num, driver)?, settings, driver)?
        },
        stack: load_stack(&args.data)?,
        report: ReportOptions::default(),
    })
}

/// The driver `check-config` checks: its flags, environment and peer
/// addresses exactly as serving takes them, but no dataset. The dataset
/// flags are only checked (`check_dataset_args`): a large `--size` would
/// take seconds and gigabytes to make, only to be thrown away.
pub fn checked_driver(
    args: &DriverArgs,
    settings: &CommonSettings,
    driver: &DriverSettings,
) -> Result<Driver> {
    check_dataset_args(&args.data)?;
    // Nothing will ever send a dataset: the checked driver never runs.
    let (_, never_made) = tokio::sync::oneshot::channel();
    Ok(Driver::new_pending(
        driver_config(args, settings, driver)?,
        context_from_env(&settings.clone().with_driver(driver))?,
        never_made,
    )?)
}

/// Checks the dataset flags as serving would, without making the dataset:
/// the generator's parameters, or the user's `.npy` files (read and checked,
/// since only reading them shows whether they load).
fn check_dataset_args(data: &DataArgs) -> Result<()> {
    if data.features.is_some() {
        load_dataset(data).map(drop)
    } else {
        Ok(generator_params(data).validate()?)
    }
}

/// A dataset being generated, and what the report will say of it.
pub type Generating = (ReportOptions, PendingDataset);

/// Starts generating the driver's dataset on its own thread, when it is to
/// be generated (no `--features`); an error for invalid parameters.
pub fn start_generation(data: &DataArgs) -> Result<Option<Generating>> {
    if data.features.is_some() {
        return Ok(None);
    }
    let params = generator_params(data);
    params.validate()?;
    Ok(Some((
        generated_report(&params),
        generate_in_background(params),
    )))
}

/// Generates the dataset on its own thread; the receiver gets it (or why it
/// could not be made).
fn generate_in_background(params: GeneratorParams) -> PendingDataset {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let made = make_classification_bytes(&params)
            .map(|(bytes, n_samples)| LoadedDataset {
                n_samples,
                bytes: Bytes::from(bytes),
            })
            .map_err(DatasetUnavailable::from);
        // The generator's scratch is free now: give it back before the
        // dataset is handed over, so that the trim does not contend for the
        // allocator with a run that was waiting for the dataset.
        stacking_service::malloc::release_free_memory();
        let _ = tx.send(made);
    });
    rx
}

/// The generator's parameters: `--size`, then explicit `--n-samples` / `--n-features`.
pub fn generator_params(data: &DataArgs) -> GeneratorParams {
    let (rows, cols) = data.size.shape();
    GeneratorParams {
        n_samples: data.n_samples.unwrap_or(rows),
        n_features: data.n_features.unwrap_or(cols),
        seed: data.seed,
        ..GeneratorParams::default()
    }
}
