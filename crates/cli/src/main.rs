//! `stacking`: one binary for every role of the stacking-training benchmark.
//!
//! `stacking driver | trainer | reducer | metatrainer` serve one function each
//! (as the container image's entrypoint); `stacking run` runs all four here
//! with an embedded store; `stacking check-config` validates a deployment's
//! flags and environment.

mod args;
mod gc;
mod histogram;
mod invoke;
mod run;
mod serve;
mod setup;
mod timeline;

use anyhow::{bail, Result};
use clap::Parser;
use stacking_service::server::Role;
use stacking_service::CommonSettings;

use args::{Cli, Command};

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}

fn parse(argv: Vec<String>) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(args::normalise_go_flags(argv))
}

/// Validates a role's flags and the environment exactly as serving would,
/// and (unless `offline`) that the object store answers and its bucket exists.
async fn check_config(role: &str, rest: Vec<String>, offline: bool) -> Result<()> {
    let mut argv = vec!["stacking".to_string(), role.to_string()];
    argv.extend(rest);
    let cli = parse(argv).map_err(|e| anyhow::anyhow!("{e}"))?;
    let settings = CommonSettings::from_env()?;
    let ctx = match cli.command {
        Command::Driver(d) => setup::driver_from_args(&d, &settings, None)?
            .context()
            .clone(),
        Command::Trainer(_) | Command::Reducer(_) | Command::Metatrainer(_) => {
            setup::context_from_env(&settings)?
        }
        _ => bail!("check-config takes a role: driver, trainer, reducer or metatrainer"),
    };
    if !offline {
        setup::probe_store(&ctx).await?;
    }
    println!(
        "{role}: configuration OK (TRANSFER_TYPE={})",
        settings.transfer.as_str()
    );
    Ok(())
}

async fn serve_worker(role: &'static str, args: &args::ServeArgs) -> Result<()> {
    let settings = CommonSettings::from_env()?;
    let tracer = serve::tracer(role, args, &settings);
    let ctx = setup::context_from_env(&settings)?.with_tracer(tracer.clone());
    setup::probe_store(&ctx).await?;
    let role = match role {
        "trainer" => Role::Trainer(ctx),
        "reducer" => Role::Reducer(ctx),
        _ => Role::Metatrainer(ctx),
    };
    serve::serve_role(role, args, &settings, tracer).await
}

/// One health check against `addr`.
async fn health(addr: &str, service: &str, timeout: f64) -> Result<()> {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let wait = std::time::Duration::from_secs_f64(timeout.max(0.01));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(wait)
        .timeout(wait)
        .connect()
        .await?;
    let status = HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: service.to_string(),
        })
        .await?
        .into_inner()
        .status();
    println!("{addr} {service:?}: {}", status.as_str_name());
    if status != ServingStatus::Serving {
        bail!("not serving");
    }
    Ok(())
}

async fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run(args) => run::run(args).await,
        Command::Invoke(args) => {
            invoke::invoke(args).await?.print();
            Ok(())
        }
        Command::CheckConfig {
            role,
            args,
            offline,
        } => check_config(&role, args, offline).await,
        Command::Gc {
            older_than,
            dry_run,
        } => {
            let age = gc::parse_age(&older_than)?;
            let cfg = stacking_storage::s3::S3Config::from_env()?;
            let store = stacking_storage::s3::open(&cfg)?;
            let done = gc::collect(&store, age, dry_run).await?;
            println!(
                "{} {} runs ({} objects) idle for {older_than} or more in {}; kept {} newer runs",
                if dry_run { "would delete" } else { "deleted" },
                done.runs_deleted,
                done.objects_deleted,
                stacking_storage::BlobStore::describe(&store),
                done.runs_kept
            );
            Ok(())
        }
        Command::Health {
            addr,
            service,
            timeout,
        } => health(&addr, &service, timeout).await,
        Command::Driver(d) => {
            let settings = CommonSettings::from_env()?;
            let tracer = serve::tracer("driver", &d.serve, &settings);
            let driver = setup::driver_from_args(&d, &settings, tracer.clone())?;
            setup::probe_store(driver.context()).await?;
            serve::serve_role(serve::driver_role(driver), &d.serve, &settings, tracer).await
        }
        Command::Trainer(s) => serve_worker("trainer", &s).await,
        Command::Reducer(s) => serve_worker("reducer", &s).await,
        Command::Metatrainer(s) => serve_worker("metatrainer", &s).await,
    }
}

fn main() -> std::process::ExitCode {
    stacking_service::malloc::tune_for_requests();
    let cli = match parse(std::env::args().collect()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    init_logging(if matches!(cli.command, Command::Run(_)) {
        "warn"
    } else {
        "info"
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(dispatch(cli));
    // Work still on the blocking pool was told to stop; do not wait on it.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
