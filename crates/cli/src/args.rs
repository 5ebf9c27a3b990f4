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

/// The binary's commands. Only names and types are declared here: every
/// flag's help and default come from the settings registry
/// ([`crate::settings::command`]), which also lists each command's
/// environment.
#[derive(Debug, Parser)]
#[command(
    name = "stacking",
    version,
    about = "The stacking-training serverless benchmark: a two-layer ensemble trained by four gRPC functions"
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
        #[arg(long = "addr")]
        addr: String,
        #[arg(long = "service")]
        service: String,
        #[arg(long = "timeout")]
        timeout: f64,
    },
    /// Deletes the objects of runs whose driver died before cleaning up: every
    /// `run-<id>/` prefix in BUCKET_NAME whose newest object is older than the age
    /// (the Redis server in BUCKET_NAME with TRANSFER_TYPE=ELASTICACHE, where
    /// keys also expire by themselves).
    Gc {
        #[arg(long = "older-than")]
        older_than: String,
        #[arg(long = "dry-run")]
        dry_run: bool,
    },
    /// Checks a configuration (flags and environment) and exits: 0 if valid.
    CheckConfig {
        #[arg(long = "offline")]
        offline: bool,
        role: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// Flags every served function takes.
#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    #[arg(long = "sp")]
    pub sp: u16,
    #[arg(long = "host")]
    pub host: String,
    #[arg(long = "zipkin")]
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
    #[arg(long = "features", requires = "labels")]
    pub features: Option<PathBuf>,
    #[arg(long = "labels", requires = "features")]
    pub labels: Option<PathBuf>,
    #[arg(long = "size", value_enum)]
    pub size: SizeArg,
    #[arg(long = "n-samples")]
    pub n_samples: Option<usize>,
    #[arg(long = "n-features")]
    pub n_features: Option<usize>,
    #[arg(long = "seed")]
    pub seed: u32,
    #[arg(long = "models")]
    pub models: Option<PathBuf>,
    #[arg(long = "keep-objects")]
    pub keep_objects: bool,
}

impl DataArgs {
    /// Whether runs keep their objects: `--keep-objects` or `KEEP_OBJECTS=true`.
    pub fn keeps_objects(&self, driver: &stacking_service::DriverSettings) -> bool {
        self.keep_objects || driver.keep_objects.unwrap_or(false)
    }
}

#[derive(Debug, Args, Clone)]
pub struct DriverArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    #[arg(long = "tAddr")]
    pub t_addr: String,
    #[arg(long = "rAddr")]
    pub r_addr: String,
    #[arg(long = "mAddr")]
    pub m_addr: String,
    #[arg(long = "trainersNum")]
    pub trainers_num: usize,
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
    #[arg(long = "trainers")]
    pub trainers: Option<usize>,
    #[arg(long = "concurrent", num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub concurrent: Option<bool>,
    #[arg(long = "transfer", value_parser = parse_transfer)]
    pub transfer: Option<Transfer>,
    #[arg(long = "store", value_enum)]
    pub store: Option<StoreArg>,
    #[arg(long = "zipkin")]
    pub zipkin: Option<String>,
    #[arg(long = "output")]
    pub output: Option<PathBuf>,
    #[arg(long = "invocations")]
    pub invocations: usize,
    #[arg(long = "json")]
    pub json: bool,
    #[arg(long = "timeline")]
    pub timeline: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
}

/// Parses `argv` with the registry's help and defaults.
pub fn parse_from(argv: &[String]) -> Result<(Cli, clap::ArgMatches), clap::Error> {
    use clap::FromArgMatches;
    let matches = crate::settings::command().try_get_matches_from(argv)?;
    let cli = Cli::from_arg_matches(&matches)?;
    Ok((cli, matches))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        let v = normalise_go_flags(args.iter().map(|s| s.to_string()));
        parse_from(&v).unwrap().0
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
