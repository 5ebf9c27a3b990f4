//! Command-line arguments. The original's Go/Python-style flags keep working:
//! `-tAddr host:port`, `-sp=50051` and `--tAddr=...` are all accepted.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use stacking_service::Transfer;

/// Rewrites single-dash long flags (`-tAddr`, `-sp=1`) to clap's `--tAddr`.
/// The flags after `check-config ROLE` are left as typed: `check-config`
/// parses them itself, and reports them as typed.
pub fn normalise_go_flags(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut in_check_config = false;
    let mut passthrough = false;
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            if passthrough {
                return a;
            }
            if a == "check-config" {
                in_check_config = true;
            } else if in_check_config && !a.starts_with('-') {
                passthrough = true;
                return a;
            }
            let single_dash_long = i > 0
                && a.starts_with('-')
                && !a.starts_with("--")
                && a.len() > 2
                && a[1..2].chars().all(|c| c.is_ascii_alphabetic());
            if single_dash_long {
                format!("-{a}")
            } else {
                a
            }
        })
        .collect()
}

#[derive(Debug, Parser)]
#[command(
    name = "stacking",
    version,
    about = "The stacking-training serverless benchmark: a two-layer ensemble trained by four gRPC functions",
    after_help = "Environment (as in the original benchmark):\n  \
TRANSFER_TYPE        INLINE (default) or S3; XDT is refused\n  \
BUCKET_NAME          S3 bucket (default vhive-stacking)\n  \
AWS_ACCESS_KEY, AWS_SECRET_KEY, AWS_REGION   S3 credentials and region\n  \
AWS_ENDPOINT_URL     S3-compatible server, e.g. http://127.0.0.1:9000\n  \
AWS_UNSIGNED_PAYLOAD auto (default: sign S3 payloads only over http to another host), true, false\n  \
TrainersNum          number of trainers (driver; overrides -trainersNum)\n  \
CONCURRENT_TRAINING  true: call all trainers at once (driver)\n  \
ENABLE_TRACING       true/false\n  \
MAX_SERVER_THREADS   requests computed at once per function (default: CPU count)\n  \
GRPC_MAX_MESSAGE_MB  largest gRPC message (default 256)\n  \
KEEP_OBJECTS         true: keep a run's stored objects (driver)\n  \
RUST_LOG             log filter (default info)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The entry point: serves helloworld.Greeter/SayHello and runs the workflow per call.
    Driver(DriverArgs),
    /// Fits one level-0 model per Train call.
    Trainer(ServeArgs),
    /// Gathers models and predictions into the meta features.
    Reducer(ServeArgs),
    /// Fits the meta model and stores the full two-layer model.
    Metatrainer(ServeArgs),
    /// Runs the whole workflow here: four gRPC servers on loopback, an embedded store, one SayHello.
    Run(RunArgs),
    /// Open-loop load: SayHello at a fixed rate, latencies to a CSV (the original invoker's flags).
    Invoke(crate::invoke::InvokeArgs),
    /// One call to a function, its reply and its time (vSwarm's test client: `-addr host:port`).
    Client(crate::client::ClientArgs),
    /// Asks a function's standard gRPC health service; exits 0 when it is SERVING
    /// (for container health checks and readiness probes).
    Health {
        /// host:port of the function.
        #[arg(long = "addr", default_value = "127.0.0.1:50051")]
        addr: String,
        /// Service to ask about ("" = the whole server).
        #[arg(long = "service", default_value = "")]
        service: String,
        /// Seconds to wait for an answer.
        #[arg(long = "timeout", default_value_t = 2.0)]
        timeout: f64,
    },
    /// Deletes the objects of runs whose driver died before cleaning up: every
    /// `run-<id>/` prefix in BUCKET_NAME whose newest object is older than the age
    /// (the Redis server in BUCKET_NAME with TRANSFER_TYPE=ELASTICACHE, where
    /// keys also expire by themselves).
    Gc {
        /// Age after which a run is abandoned: 30s, 15m, 2h, 7d.
        #[arg(long = "older-than")]
        older_than: String,
        /// Only report what would be deleted.
        #[arg(long = "dry-run")]
        dry_run: bool,
    },
    /// Checks a configuration (flags and environment) and exits: 0 if valid.
    CheckConfig {
        /// Skip contacting the object store (credentials are still required).
        #[arg(long = "offline")]
        offline: bool,
        /// The role whose configuration to check.
        role: String,
        /// The role's flags, as they would be passed.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// Flags every served function takes.
#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// Port to serve gRPC on.
    #[arg(long = "sp", default_value_t = 50051)]
    pub sp: u16,
    /// Address to bind.
    #[arg(long = "host", default_value = "0.0.0.0")]
    pub host: String,
    /// Zipkin span collector URL.
    #[arg(
        long = "zipkin",
        default_value = "http://zipkin.istio-system.svc.cluster.local:9411/api/v2/spans"
    )]
    pub zipkin: String,
}

/// Named shapes of the generated dataset (`--size`), as other serverless
/// suites offer test / small / large inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SizeArg {
    /// 100 x 64 (51 KiB): a smoke test.
    Test,
    /// 300 x 256 (0.6 MiB).
    Small,
    /// 300 x 1024 (2.4 MiB): the original benchmark's dataset.
    Default,
    /// 3,000 x 1024 (24.6 MiB).
    Large,
    /// 30,000 x 1024 (245.8 MB): needs S3 or ELASTICACHE transfer, and a
    /// COMPUTE_BUDGET_S above the default 120 (its LinearSVR fits run for minutes).
    Huge,
}

impl SizeArg {
    /// (rows, columns).
    pub fn shape(self) -> (usize, usize) {
        match self {
            SizeArg::Test => (100, 64),
            SizeArg::Small => (300, 256),
            SizeArg::Default => (300, 1024),
            SizeArg::Large => (3_000, 1024),
            SizeArg::Huge => (30_000, 1024),
        }
    }
}

/// Where the dataset comes from and what models to stack.
#[derive(Debug, Args, Clone)]
pub struct DataArgs {
    /// Features as a 2-d .npy file (with --labels) instead of the generated
    /// dataset: any float or integer dtype, converted to float64.
    #[arg(long = "features", requires = "labels")]
    pub features: Option<PathBuf>,
    /// Labels as a 1-d .npy file: any two distinct values (the smaller is class 0).
    #[arg(long = "labels", requires = "features")]
    pub labels: Option<PathBuf>,
    /// Shape of the generated dataset by name; --n-samples / --n-features override it.
    #[arg(long = "size", value_enum, default_value_t = SizeArg::Default)]
    pub size: SizeArg,
    /// Rows of the generated dataset (default: from --size, 300).
    #[arg(long = "n-samples")]
    pub n_samples: Option<usize>,
    /// Columns of the generated dataset (default: from --size, 1024).
    #[arg(long = "n-features")]
    pub n_features: Option<usize>,
    /// Seed of the generated dataset (scikit-learn's random_state).
    #[arg(long = "seed", default_value_t = 42)]
    pub seed: u32,
    /// JSON {"models": [...], "meta_model": {...}} replacing the default models.
    #[arg(long = "models")]
    pub models: Option<PathBuf>,
    /// Keep each run's stored objects instead of deleting them (also
    /// `KEEP_OBJECTS=true`, read with the other settings).
    #[arg(long = "keep-objects")]
    pub keep_objects: bool,
}

impl DataArgs {
    /// Whether runs keep their objects: `--keep-objects` or `KEEP_OBJECTS=true`.
    pub fn keeps_objects(&self, settings: &stacking_service::CommonSettings) -> bool {
        self.keep_objects || settings.keep_objects.unwrap_or(false)
    }
}

#[derive(Debug, Args, Clone)]
pub struct DriverArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Trainer address.
    #[arg(long = "tAddr", default_value = "trainer.default.svc.cluster.local:80")]
    pub t_addr: String,
    /// Reducer address.
    #[arg(long = "rAddr", default_value = "reducer.default.svc.cluster.local:80")]
    pub r_addr: String,
    /// Metatrainer address.
    #[arg(
        long = "mAddr",
        default_value = "metatrainer.default.svc.cluster.local:80"
    )]
    pub m_addr: String,
    /// Number of trainers (the TrainersNum environment variable overrides it).
    #[arg(long = "trainersNum", default_value_t = 4)]
    pub trainers_num: usize,
    /// Accepted for compatibility with the original; no effect.
    #[arg(long = "dockerCompose", num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub docker_compose: Option<bool>,
    #[command(flatten)]
    pub data: DataArgs,
}

/// `--transfer inline|s3|elasticache`, spelled as TRANSFER_TYPE is (any case).
fn parse_transfer(value: &str) -> Result<Transfer, String> {
    Transfer::parse("--transfer", value).map_err(|e| e.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreArg {
    /// In-process store (no external service).
    Memory,
    /// The S3-API server from AWS_ENDPOINT_URL / BUCKET_NAME / AWS_* credentials.
    S3,
    /// The Redis server in BUCKET_NAME (host:port or redis:// URL; default
    /// 127.0.0.1:6379), as TRANSFER_TYPE=ELASTICACHE uses it.
    Redis,
}

#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Number of trainers [env: TrainersNum; default 4].
    #[arg(long = "trainers")]
    pub trainers: Option<usize>,
    /// Call all trainers at once [env: CONCURRENT_TRAINING; default false].
    #[arg(long = "concurrent", num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub concurrent: Option<bool>,
    /// How data moves between the functions: inline or s3 [env: TRANSFER_TYPE; default s3].
    #[arg(long = "transfer", value_parser = parse_transfer)]
    pub transfer: Option<Transfer>,
    /// The store used with --transfer s3 [default memory] or elasticache [default redis].
    #[arg(long = "store", value_enum)]
    pub store: Option<StoreArg>,
    /// Send every function's spans to this Zipkin collector (also with
    /// ENABLE_TRACING=true, to http://localhost:9411/api/v2/spans).
    #[arg(long = "zipkin")]
    pub zipkin: Option<String>,
    /// Write the first invocation's results here: model_full.msgpack,
    /// meta_predictions.npy, report.json.
    #[arg(long = "output")]
    pub output: Option<PathBuf>,
    /// How many SayHello calls to make, one after another.
    #[arg(long = "invocations", default_value_t = 1)]
    pub invocations: usize,
    /// Print the reports as JSON (one object per line) instead of tables.
    #[arg(long = "json")]
    pub json: bool,
    /// Draw a Gantt picture of the first invocation from its spans: SVG, or
    /// PNG when the name ends in .png.
    #[arg(long = "timeline")]
    pub timeline: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        let v = normalise_go_flags(args.iter().map(|s| s.to_string()));
        Cli::try_parse_from(v).unwrap()
    }

    #[test]
    fn original_flag_spellings() {
        let cli = parse(&[
            "stacking",
            "driver",
            "-tAddr",
            "t:1",
            "-rAddr=r:2",
            "--mAddr=m:3",
            "-sp=6000",
            "-trainersNum",
            "16",
            "-dockerCompose",
        ]);
        match cli.command {
            Command::Driver(d) => {
                assert_eq!(d.t_addr, "t:1");
                assert_eq!(d.r_addr, "r:2");
                assert_eq!(d.m_addr, "m:3");
                assert_eq!(d.serve.sp, 6000);
                assert_eq!(d.trainers_num, 16);
                assert_eq!(d.docker_compose, Some(true));
            }
            other => panic!("{other:?}"),
        }
        let cli = parse(&[
            "stacking",
            "trainer",
            "-sp",
            "7000",
            "-zipkin",
            "http://z:9411/api/v2/spans",
        ]);
        assert!(matches!(
            cli.command,
            Command::Trainer(ServeArgs { sp: 7000, .. })
        ));
    }

    #[test]
    fn check_config_passes_its_role_flags_through_as_typed() {
        assert_eq!(
            normalise_go_flags(
                ["x", "check-config", "-offline", "driver", "-tAddr", "t:1"].map(String::from)
            ),
            vec!["x", "check-config", "--offline", "driver", "-tAddr", "t:1"]
        );
    }

    #[test]
    fn negative_numbers_and_short_flags_are_left_alone() {
        assert_eq!(
            normalise_go_flags(["x", "-h", "-5", "--a"].map(String::from)),
            vec!["x", "-h", "-5", "--a"]
        );
    }
}
