//! `stacking invoke`: an open-loop load generator compatible with vSwarm's
//! invoker. Requests go out on a fixed schedule at `-rps` whether or not
//! earlier ones finished, round robin over the endpoints of `endpoints.json`
//! (`[{"hostname": ...}]`), each a `helloworld.Greeter/SayHello`.
//!
//! vSwarm's conventions hold, so its analysis scripts work unchanged: the
//! latencies of completed calls (microseconds, one per line) go to
//! `rps<RPS>_lat.csv`, `<RPS>` being the observed rate with two decimals,
//! unless `-latf` names the file; the log carries "Issued / completed
//! requests", "Real / target RPS" and "The measured latencies are saved in".

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Deserialize;
use stacking_service::pb::helloworld::greeter_client::GreeterClient;
use stacking_service::pb::helloworld::HelloRequest;
use stacking_service::rpc::{with_deadline, CALLER_GRACE};
use stacking_service::trace::{Kind, Sink, Span, Tracer};
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};

#[derive(Debug, Args, Clone)]
pub struct InvokeArgs {
    #[arg(long = "endpointsFile")]
    pub endpoints_file: PathBuf,
    #[arg(long = "port")]
    pub port: u16,
    #[arg(long = "rps")]
    pub rps: f64,
    #[arg(long = "time")]
    pub time: f64,
    #[arg(long = "latf")]
    pub latf: Option<PathBuf>,
    #[arg(long = "dbg")]
    pub dbg: bool,
    #[arg(long = "grpcTimeout")]
    pub grpc_timeout: f64,
    #[arg(long = "trace", num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub trace: bool,
    #[arg(long = "zipkin")]
    pub zipkin: String,
    #[arg(long = "profile", num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub profile: bool,
    #[arg(long = "durf")]
    pub durf: PathBuf,
    #[arg(long = "warmup")]
    pub warmup: usize,
    #[arg(long = "max-inflight")]
    pub max_inflight: usize,
    #[arg(long = "histogram")]
    pub histogram: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
struct EndpointEntry {
    hostname: String,
}

/// The outcome of one request.
struct Outcome {
    latency: Duration,
    code: Option<tonic::Code>,
    /// The driver's own time for the run, from its report (with `-profile`).
    driver_us: Option<u64>,
}

/// What a run measured.
#[derive(Debug)]
pub struct Summary {
    pub issued: usize,
    pub completed: usize,
    pub skipped: usize,
    /// The target rate.
    pub target_rps: f64,
    /// From the first request's due time to the end of the schedule or the
    /// last answer, whichever is later.
    pub elapsed: Duration,
    pub latencies_us: Vec<u64>,
    pub errors: BTreeMap<String, usize>,
    /// Where the latencies were written.
    pub latency_file: PathBuf,
    /// Where `-profile` wrote the driver-side durations.
    pub duration_file: Option<PathBuf>,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Completed requests per second of the measurement window. The window is at
/// least the schedule's own length (`issued` slots of `1/target` s), so the
/// rate never exceeds the target, however fast the answers came.
pub fn real_rps(completed: usize, scheduled: usize, target_rps: f64, elapsed: Duration) -> f64 {
    let schedule = scheduled as f64 / target_rps;
    let window = elapsed.as_secs_f64().max(schedule);
    if window > 0.0 {
        completed as f64 / window
    } else {
        0.0
    }
}

impl Summary {
    pub fn real_rps(&self) -> f64 {
        real_rps(
            self.completed,
            self.issued + self.skipped,
            self.target_rps,
            self.elapsed,
        )
    }

    pub fn print(&self) {
        // vSwarm's three lines, worded as its invoker logs them.
        println!(
            "Issued / completed requests: {}, {}",
            self.issued, self.completed
        );
        println!(
            "Real / target RPS: {:.2} / {}",
            self.real_rps(),
            self.target_rps
        );
        println!(
            "The measured latencies are saved in {}",
            self.latency_file.display()
        );
        if let Some(f) = &self.duration_file {
            println!("The driver-side durations are saved in {}", f.display());
        }
        println!(
            "skipped (in-flight cap) {} in {:.2} s",
            self.skipped,
            self.elapsed.as_secs_f64()
        );
        let s = &self.latencies_us;
        if !s.is_empty() {
            println!(
                "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
                percentile(s, 50.0) as f64 / 1e3,
                percentile(s, 90.0) as f64 / 1e3,
                percentile(s, 99.0) as f64 / 1e3,
                s[s.len() - 1] as f64 / 1e3
            );
        }
        if self.errors.is_empty() {
            println!("errors: none");
        } else {
            let list: Vec<String> = self
                .errors
                .iter()
                .map(|(c, n)| format!("{c}: {n}"))
                .collect();
            println!("errors by gRPC status: {}", list.join(", "));
        }
    }
}

fn channels(args: &InvokeArgs) -> Result<Vec<(String, Channel)>> {
    let text = std::fs::read_to_string(&args.endpoints_file)
        .with_context(|| format!("reading {}", args.endpoints_file.display()))?;
    let entries: Vec<EndpointEntry> = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: expected [{{\"hostname\": ...}}, ...]",
            args.endpoints_file.display()
        )
    })?;
    if entries.is_empty() {
        bail!("{} lists no endpoints", args.endpoints_file.display());
    }
    entries
        .into_iter()
        .map(|e| {
            let addr = format!("{}:{}", e.hostname, args.port);
            let ch = Endpoint::from_shared(format!("http://{addr}"))?
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_secs_f64(args.grpc_timeout) + CALLER_GRACE)
                .tcp_nodelay(true)
                .connect_lazy();
            Ok((addr, ch))
        })
        .collect()
}

/// The driver's own total from a reply's run report, in microseconds.
fn driver_time_us(report_json: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(report_json).ok()?;
    let ms = v.get("stages_ms")?.get("total")?.as_f64()?;
    Some((ms * 1000.0).round() as u64)
}

async fn call(
    ch: Channel,
    tracer: Option<&Arc<Tracer>>,
    addr: &str,
    deadline: Duration,
) -> Outcome {
    let mut span = Span::start(tracer, "invoke SayHello", Some(Kind::Client), None);
    span.tag("peer.address", addr);
    // The deadline travels with the call, so the driver stops when the
    // invoker stops waiting.
    let mut request = with_deadline(
        HelloRequest {
            name: "invoker".into(),
        },
        deadline,
    );
    span.inject(request.metadata_mut());
    let t = Instant::now();
    let result = GreeterClient::new(ch)
        .max_decoding_message_size(256 << 20)
        .say_hello(request)
        .await;
    let latency = t.elapsed();
    match result {
        Ok(reply) => Outcome {
            latency,
            code: None,
            driver_us: driver_time_us(&reply.get_ref().report_json),
        },
        Err(status) => {
            span.tag("error", format!("{:?}", status.code()));
            Outcome {
                latency,
                code: Some(status.code()),
                driver_us: None,
            }
        }
    }
}

fn write_column(path: &PathBuf, values: &[u64]) -> Result<()> {
    let text: String = values.iter().map(|v| format!("{v}\n")).collect();
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

pub async fn invoke(args: InvokeArgs) -> Result<Summary> {
    if !(args.rps > 0.0 && args.rps.is_finite()) {
        bail!("-rps must be a positive number, got {}", args.rps);
    }
    if !(args.time > 0.0 && args.time.is_finite()) {
        bail!(
            "-time must be a positive number of seconds, got {}",
            args.time
        );
    }
    if !(args.grpc_timeout > 0.0 && args.grpc_timeout.is_finite()) {
        bail!(
            "-grpcTimeout must be a positive number of seconds, got {}",
            args.grpc_timeout
        );
    }
    let deadline = Duration::from_secs_f64(args.grpc_timeout);
    let endpoints = channels(&args)?;
    let tracer = args
        .trace
        .then(|| Tracer::start("invoker", Sink::Zipkin(args.zipkin.clone())));
    for i in 0..args.warmup {
        let (addr, ch) = &endpoints[i % endpoints.len()];
        call(ch.clone(), None, addr, deadline).await;
    }
    let interval = Duration::from_secs_f64(1.0 / args.rps);
    let total = (args.time * args.rps).round().max(1.0) as usize;
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} issued, {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if args.dbg {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let inflight = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel::<Outcome>();
    let start = Instant::now();
    let mut skipped = 0;
    let mut issued = 0;
    for k in 0..total {
        // Open loop: the k-th request is due at k * interval, whatever happened before.
        tokio::time::sleep_until((start + interval.mul_f64(k as f64)).into()).await;
        if inflight.load(Ordering::Relaxed) >= args.max_inflight {
            skipped += 1;
            continue;
        }
        let (addr, ch) = &endpoints[k % endpoints.len()];
        let (ch, tx, in_flight, addr, dbg, tracer) = (
            ch.clone(),
            tx.clone(),
            inflight.clone(),
            addr.clone(),
            args.dbg,
            tracer.clone(),
        );
        inflight.fetch_add(1, Ordering::Relaxed);
        issued += 1;
        tokio::spawn(async move {
            let outcome = call(ch, tracer.as_ref(), &addr, deadline).await;
            if dbg {
                let status = outcome.code.map_or("OK".to_string(), |c| format!("{c:?}"));
                println!(
                    "request {k} to {addr}: {status} in {:.3} ms",
                    outcome.latency.as_secs_f64() * 1e3
                );
            }
            in_flight.fetch_sub(1, Ordering::Relaxed);
            let _ = tx.send(outcome);
        });
        bar.set_position(k as u64 + 1);
        bar.set_message(format!("{} in flight", inflight.load(Ordering::Relaxed)));
    }
    drop(tx);
    let mut latencies = Vec::new();
    let mut durations = Vec::new();
    let mut errors = BTreeMap::new();
    while let Some(o) = rx.recv().await {
        match o.code {
            None => {
                latencies.push(o.latency.as_micros() as u64);
                durations.extend(o.driver_us);
            }
            Some(code) => *errors.entry(format!("{code:?}")).or_insert(0) += 1,
        }
    }
    bar.finish_and_clear();
    let elapsed = start.elapsed();
    if let Some(t) = &tracer {
        t.flush().await;
    }
    let rate = real_rps(latencies.len(), total, args.rps, elapsed);
    let latency_file = args
        .latf
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("rps{rate:.2}_lat.csv")));
    write_column(&latency_file, &latencies)?;
    let duration_file = if args.profile {
        write_column(&args.durf, &durations)?;
        Some(args.durf.clone())
    } else {
        None
    };
    latencies.sort_unstable();
    if let Some(path) = &args.histogram {
        crate::histogram::write_svg(path, &latencies)?;
    }
    Ok(Summary {
        issued,
        completed: latencies.len(),
        skipped,
        target_rps: args.rps,
        elapsed,
        latencies_us: latencies,
        errors,
        latency_file,
        duration_file,
    })
}

#[cfg(test)]
mod tests {
    use super::{percentile, real_rps};
    use std::time::Duration;

    #[test]
    fn the_real_rate_never_exceeds_the_target() {
        // -rps 1 -time 3: three requests due at 0, 1 and 2 s, all answered by 2.3 s.
        let r = real_rps(3, 3, 1.0, Duration::from_millis(2300));
        assert!(r <= 1.0, "{r}");
        assert!((r - 1.0).abs() < 1e-12, "{r}");
        // Slow answers stretch the window.
        assert!((real_rps(3, 3, 1.0, Duration::from_secs(6)) - 0.5).abs() < 1e-12);
        // One request at a low rate.
        assert!(real_rps(1, 1, 0.1, Duration::from_millis(50)) <= 0.1);
        assert_eq!(real_rps(0, 5, 10.0, Duration::from_millis(10)), 0.0);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[7], 90.0), 7);
    }
}
