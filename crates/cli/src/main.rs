//! `stacking`: one binary for every role of the stacking-training benchmark.
//!
//! - `stacking driver | trainer | reducer | metatrainer` serve one function
//!   each (the container image's entrypoint; [`serve`], [`setup`]);
//! - `stacking run` runs all four here with an embedded store ([`run`],
//!   [`run_settings`], a picture in [`timeline`]);
//! - `stacking invoke` is vSwarm's load generator ([`invoke`], [`histogram`]);
//!   `stacking client` its one-shot test client ([`client`]);
//! - `stacking check-config`, `health` and `gc` check and tidy a deployment
//!   ([`gc`]); [`args`] holds every flag.

mod args;
mod client;
mod gc;
mod histogram;
mod invoke;
mod run;
mod run_settings;
mod serve;
mod settings;
mod setup;
mod timeline;

use anyhow::{bail, Context as _, Result};
use stacking_service::server::Role;

use args::{Cli, Command};
use tracing_subscriber::filter::LevelFilter;

/// A served function logs to stdout (its container's log); the commands a
/// user runs (`run`, `invoke`, `client`, ...) log to stderr, so that their
/// stdout (tables, `--json` lines) stays clean. Colour only on a terminal,
/// and never with `NO_COLOR` set.
///
/// `RUST_LOG` is read as levels by target (`debug`, `stacking_service=debug,info`):
/// tracing's `Targets` filter, which needs no regular-expression engine as
/// its `EnvFilter` does; one that does not parse leaves the default.
fn init_logging(default: LevelFilter, to_stdout: bool) {
    use std::io::IsTerminal;
    use tracing_subscriber::{filter::Targets, fmt, layer::SubscriberExt, util::SubscriberInitExt};
    let filter = settings::env("RUST_LOG")
        .and_then(|f| f.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(default));
    let terminal = if to_stdout {
        std::io::stdout().is_terminal()
    } else {
        std::io::stderr().is_terminal()
    };
    let layer = fmt::layer()
        .with_target(false)
        .with_ansi(terminal && !settings::env_is_set("NO_COLOR"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = if to_stdout {
        registry.with(layer).try_init()
    } else {
        registry.with(layer.with_writer(std::io::stderr)).try_init()
    };
}

/// Parses the command line. The original's single-dash flags (`-tAddr`) are
/// rewritten for clap, so clap's errors are rewritten back: `-foo` is
/// reported as the user typed it, not as `--foo`.
fn parse(argv: Vec<String>) -> Result<(Cli, clap::ArgMatches), ParseError> {
    let normalised = args::normalise_go_flags(argv.clone());
    args::parse_from(&normalised).map_err(|error| {
        let mut text = error.render().to_string();
        for (typed, seen) in argv.iter().zip(&normalised) {
            if typed != seen {
                let flag = |a: &str| a.split('=').next().unwrap_or("").to_string();
                text = text.replace(&format!("'{}'", flag(seen)), &format!("'{}'", flag(typed)));
            }
        }
        ParseError { error, text }
    })
}

/// A command-line error as clap renders it, flags spelled as typed.
struct ParseError {
    error: clap::Error,
    text: String,
}

impl ParseError {
    /// The message without clap's leading "error: ".
    fn message(&self) -> &str {
        self.text.trim_start_matches("error: ").trim_end()
    }

    fn exit(&self) -> ! {
        let code = self.error.exit_code();
        if self.error.use_stderr() {
            eprint!("{}", self.text);
        } else {
            print!("{}", self.text);
        }
        std::process::exit(code)
    }
}

/// An error and its causes on one line, each cause shown once: typed errors
/// that include their source in their own message are not repeated.
fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Validates a role's flags and the environment exactly as serving would,
/// and (unless `offline`) that the object store answers and its bucket
/// exists; then prints every setting the role reads and where it came from.
async fn check_config(role: &str, rest: Vec<String>, offline: bool) -> Result<()> {
    let mut argv = vec!["stacking".to_string(), role.to_string()];
    argv.extend(rest);
    let (cli, matches) = parse(argv).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    let settings = setup::common_settings()?;
    let mut effective = settings.describe();
    let mut plan = None;
    let ctx = match cli.command {
        Command::Driver(d) => {
            let driver_settings = setup::driver_settings()?;
            effective.extend(driver_settings.describe());
            let driver = setup::checked_driver(&d, &settings, &driver_settings)?;
            let p = &driver.config().plan;
            plan = Some(format!(
                "{} trainers {}, objects {}",
                p.trainers,
                if p.concurrent {
                    "at once"
                } else {
                    "one after another"
                },
                if p.keep_objects { "kept" } else { "deleted" }
            ));
            driver.context().clone()
        }
        Command::Trainer(_) | Command::Reducer(_) | Command::Metatrainer(_) => {
            setup::context_from_env(&settings)?
        }
        _ => bail!("check-config takes a role: driver, trainer, reducer or metatrainer"),
    };
    if !offline {
        setup::probe_store(&ctx).await?;
    }
    let role_settings = settings::Role::from_name(role)
        .context("check-config takes a role: driver, trainer, reducer or metatrainer")?;
    println!("{role}: configuration OK");
    let flags = matches
        .subcommand_matches(role)
        .map(|m| settings::describe_flags(role_settings, m))
        .unwrap_or_default();
    for (name, value) in settings::describe_environment(role_settings, &effective)
        .into_iter()
        .chain(flags)
    {
        println!("  {name:<38} {value}");
    }
    let store = ctx
        .store()
        .map_or("none (inline transfer)".to_string(), |s| s.describe());
    let checked = match (offline, settings.transfer) {
        (true, _) => "not contacted (--offline)",
        (false, stacking_service::Transfer::ElastiCache) => "answers PING",
        (false, _) => "answers, bucket exists",
    };
    println!(
        "  {:<38} {store}: {}",
        "store",
        if ctx.store().is_some() { checked } else { "-" }
    );
    if let Some(plan) = plan {
        println!("  {:<38} {plan}", "run plan");
    }
    Ok(())
}

async fn serve_worker(role: &'static str, args: &args::ServeArgs) -> Result<()> {
    let settings = setup::common_settings()?;
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
    let channel = tonic::transport::Endpoint::from_shared(stacking_service::rpc::peer_uri(addr))
        .with_context(|| format!("--addr {addr:?} is not host:port or a URL"))?
        .connect_timeout(wait)
        .timeout(wait)
        .connect()
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    let status = HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: service.to_string(),
        })
        .await
        .map_err(|s| {
            anyhow::anyhow!(
                "{addr}: health check failed: {:?}: {}",
                s.code(),
                s.message()
            )
        })?
        .into_inner()
        .status();
    println!("{addr} {service:?}: {}", status.as_str_name());
    if status != ServingStatus::Serving {
        bail!("not serving");
    }
    Ok(())
}

/// Runs the command; `generating` is the driver's dataset, when `main`
/// already started making it.
async fn dispatch(cli: Cli, generating: Option<setup::Generating>) -> Result<()> {
    match cli.command {
        Command::Run(args) => run::run(args).await,
        Command::Invoke(args) => {
            let summary = invoke::invoke(args).await?;
            summary.print();
            if summary.completed == 0 {
                bail!(
                    "every request failed ({} issued, {} skipped): no latency was measured",
                    summary.issued,
                    summary.skipped
                );
            }
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
            let gc_settings = gc::GcSettings::from_lookup(settings::env)?;
            gc::check_age(age, &gc_settings)?;
            // TRANSFER_TYPE=ELASTICACHE: the Redis server in BUCKET_NAME; else S3.
            let store = setup::open_store(gc_settings.transfer)?;
            let done = gc::collect(store.as_ref(), age, dry_run).await?;
            println!(
                "{} {} runs ({} objects) idle for {older_than} or more in {}; kept {} newer runs",
                if dry_run { "would delete" } else { "deleted" },
                done.runs_deleted,
                done.objects_deleted,
                store.describe(),
                done.runs_kept
            );
            Ok(())
        }
        Command::Health {
            addr,
            service,
            timeout,
        } => health(&addr, &service, timeout).await,
        Command::Client(args) => client::call(args).await,
        Command::Driver(d) => {
            let settings = setup::common_settings()?;
            let driver_settings = setup::driver_settings()?;
            let tracer = serve::tracer("driver", &d.serve, &settings);
            let driver = setup::driver_from_args(
                &d,
                &settings,
                &driver_settings,
                tracer.clone(),
                generating,
            )?;
            setup::probe_store(driver.context()).await?;
            serve::serve_role(serve::driver_role(driver), &d.serve, &settings, tracer).await
        }
        Command::Trainer(s) => serve_worker("trainer", &s).await,
        Command::Reducer(s) => serve_worker("reducer", &s).await,
        Command::Metatrainer(s) => serve_worker("metatrainer", &s).await,
    }
}

fn main() -> std::process::ExitCode {
    stacking_service::malloc::tune_for_requests(settings::env_is_set);
    let cli = match parse(std::env::args().collect()) {
        Ok((cli, _)) => cli,
        Err(e) => e.exit(),
    };
    // A driver's dataset takes longer to make than the rest of its start-up:
    // it starts first. Invalid parameters start nothing here; the driver's
    // set-up reports them.
    let generating = match &cli.command {
        Command::Driver(d) => setup::start_generation(&d.data).ok().flatten(),
        _ => None,
    };
    let serving = matches!(
        cli.command,
        Command::Driver(_) | Command::Trainer(_) | Command::Reducer(_) | Command::Metatrainer(_)
    );
    init_logging(
        if serving {
            LevelFilter::INFO
        } else {
            LevelFilter::WARN
        },
        serving,
    );
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
    let result = runtime.block_on(dispatch(cli, generating));
    // Work still on the blocking pool was told to stop; do not wait on it.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("features: {source}")]
    struct Outer {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let inner = std::io::Error::other("unsupported dtype <f2");
        let e = anyhow::Error::new(Outer { source: inner }).context("loading x.npy");
        assert_eq!(
            describe(&e),
            "loading x.npy: features: unsupported dtype <f2"
        );
    }

    #[test]
    fn single_dash_flags_are_reported_as_typed() {
        let argv = ["stacking", "trainer", "-foo", "1"]
            .map(String::from)
            .to_vec();
        let Err(e) = parse(argv) else {
            panic!("-foo parsed")
        };
        assert!(e.message().contains("'-foo'"), "{}", e.message());
        assert!(!e.message().contains("--foo"), "{}", e.message());
        assert!(!e.message().starts_with("error:"), "{}", e.message());
    }
}
