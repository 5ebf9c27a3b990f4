//! What `stacking run` runs with: its flags, then the environment variables
//! the distributed functions read (`TRANSFER_TYPE`, `TrainersNum`,
//! `CONCURRENT_TRAINING`, `ENABLE_TRACING`, `GRPC_MAX_MESSAGE_MB`,
//! `MAX_SERVER_THREADS`, ...), then defaults. Flags win. Every value is
//! printed with where it came from, so nothing is silently ignored.

use anyhow::{bail, Result};
use stacking_service::{CommonSettings, DriverSettings, RunPlan, Transfer};

use crate::args::{RunArgs, StoreArg};

/// Where the Zipkin collector is when only `ENABLE_TRACING=true` is given.
pub const DEFAULT_ZIPKIN: &str = "http://localhost:9411/api/v2/spans";

/// One setting as printed: name, value, source.
#[derive(Debug, Clone, PartialEq)]
pub struct Shown {
    pub name: &'static str,
    pub value: String,
    pub source: String,
}

/// The resolved settings of one `stacking run`.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// What the driver runs: trainers, concurrency, object keeping, limits.
    pub plan: RunPlan,
    pub transfer: Transfer,
    /// The object store; `None` with inline transfer.
    pub store: Option<StoreArg>,
    /// Where spans go, if anywhere.
    pub zipkin: Option<String>,
    /// The environment settings every function reads.
    pub common: CommonSettings,
    pub shown: Vec<Shown>,
    /// Flags that have no effect with the others given.
    pub warnings: Vec<String>,
}

fn pick<T: ToString>(
    shown: &mut Vec<Shown>,
    name: &'static str,
    flag: (&'static str, Option<T>),
    env: (&'static str, Option<T>),
    default: T,
) -> T {
    let (value, source) = match (flag.1, env.1) {
        (Some(v), _) => (v, flag.0.to_string()),
        (None, Some(v)) => (v, format!("env {}", env.0)),
        (None, None) => (default, "default".to_string()),
    };
    shown.push(Shown {
        name,
        value: value.to_string(),
        source,
    });
    value
}

impl RunSettings {
    /// Resolves `args` against the environment read through `get`.
    pub fn resolve(args: &RunArgs, get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let transfer_env = get("TRANSFER_TYPE").is_some();
        let driver = DriverSettings::from_lookup(&get)?;
        let common = CommonSettings::from_lookup(&get)?.with_driver(&driver);
        let mut shown = Vec::new();
        let trainers = pick(
            &mut shown,
            "trainers",
            ("--trainers", args.trainers),
            ("TrainersNum", driver.trainers_num),
            4,
        );
        if trainers == 0 {
            bail!("--trainers must be at least 1");
        }
        let concurrent = pick(
            &mut shown,
            "concurrent",
            ("--concurrent", args.concurrent),
            ("CONCURRENT_TRAINING", driver.concurrent_training),
            false,
        );
        let transfer = pick(
            &mut shown,
            "transfer",
            ("--transfer", args.transfer.map(TransferName)),
            (
                "TRANSFER_TYPE",
                transfer_env.then_some(TransferName(common.transfer)),
            ),
            TransferName(Transfer::S3),
        )
        .0;
        let mut warnings = Vec::new();
        let store = match transfer {
            Transfer::Inline => {
                if let Some(s) = args.store {
                    warnings.push(format!(
                        "--store {} has no effect with transfer INLINE: data moves inside the gRPC messages; use --transfer s3 to use a store",
                        store_name(s)
                    ));
                }
                None
            }
            Transfer::S3 | Transfer::ElastiCache => Some(
                pick(
                    &mut shown,
                    "store",
                    ("--store", args.store.map(StoreName)),
                    ("", None),
                    // ELASTICACHE names its store; S3 runs embedded by default.
                    StoreName(if transfer == Transfer::ElastiCache {
                        StoreArg::Redis
                    } else {
                        StoreArg::Memory
                    }),
                )
                .0,
            ),
        };
        let (zipkin, source) = match (&args.zipkin, get("ENABLE_TRACING")) {
            (Some(url), _) => (Some(url.clone()), "--zipkin".to_string()),
            (None, Some(_)) => (
                common.tracing.then(|| DEFAULT_ZIPKIN.to_string()),
                "env ENABLE_TRACING".to_string(),
            ),
            (None, None) => (None, "default".to_string()),
        };
        shown.push(Shown {
            name: "tracing",
            value: zipkin.clone().unwrap_or_else(|| "off".into()),
            source,
        });
        for (name, var, value) in [
            (
                "max message",
                "GRPC_MAX_MESSAGE_MB",
                format!("{} MiB", common.max_message_bytes >> 20),
            ),
            (
                "requests at once",
                "MAX_SERVER_THREADS",
                common.max_server_threads.to_string(),
            ),
        ] {
            shown.push(Shown {
                name,
                value,
                source: if get(var).is_some() {
                    format!("env {var}")
                } else {
                    "default".into()
                },
            });
        }
        let keep_objects = args.data.keeps_objects(&driver);
        let plan = RunPlan {
            concurrent,
            keep_objects,
            ..RunPlan::new(trainers, &common, &driver)?
        };
        Ok(Self {
            plan,
            transfer,
            store,
            zipkin,
            common,
            shown,
            warnings,
        })
    }

    /// One line: `trainers 16 (env TrainersNum), concurrent false (default), ...`.
    pub fn line(&self) -> String {
        let parts: Vec<String> = self
            .shown
            .iter()
            .map(|s| format!("{} {} ({})", s.name, s.value, s.source))
            .collect();
        parts.join(", ")
    }
}

/// Displays a transfer as the environment spells it.
#[derive(Debug, Clone, Copy)]
struct TransferName(Transfer);

impl std::fmt::Display for TransferName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_str())
    }
}

#[derive(Debug, Clone, Copy)]
struct StoreName(StoreArg);

impl std::fmt::Display for StoreName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(store_name(self.0))
    }
}

fn store_name(s: StoreArg) -> &'static str {
    match s {
        StoreArg::Memory => "memory",
        StoreArg::S3 => "s3",
        StoreArg::Redis => "redis",
    }
}
