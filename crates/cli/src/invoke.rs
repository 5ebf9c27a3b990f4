//! `stacking invoke`: an open-loop load generator compatible with the
//! original benchmark's invoker. Requests go out on a fixed schedule at
//! `-rps` whether or not earlier ones finished, round robin over the
//! endpoints of `endpoints.json` (`[{"hostname": ...}]`), each a
//! `helloworld.Greeter/SayHello`. Latencies of completed calls are written
//! to `-latf` (one per line, microseconds).

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
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};

#[derive(Debug, Args, Clone)]
pub struct InvokeArgs {
    /// JSON list of endpoints: [{"hostname": "driver.default.example.com"}, ...]
    #[arg(long = "endpointsFile", default_value = "endpoints.json")]
    pub endpoints_file: PathBuf,
    /// Port of every endpoint.
    #[arg(long = "port", default_value_t = 80)]
    pub port: u16,
    /// Target requests per second.
    #[arg(long = "rps", default_value_t = 1.0)]
    pub rps: f64,
    /// Seconds to issue requests for.
    #[arg(long = "time", default_value_t = 5.0)]
    pub time: f64,
    /// Where to write latencies (microseconds, one per line).
    #[arg(long = "latf", default_value = "lat.csv")]
    pub latf: PathBuf,
    /// Log every request.
    #[arg(long = "dbg")]
    pub dbg: bool,
    /// Seconds before a request is abandoned.
    #[arg(long = "grpcTimeout", default_value_t = 30.0)]
    pub grpc_timeout: f64,
    /// Requests sent (and not recorded) before the measured run.
    #[arg(long = "warmup", default_value_t = 0)]
    pub warmup: usize,
    /// At most this many requests in flight; scheduled requests beyond it are skipped and counted.
    #[arg(long = "max-inflight", default_value_t = 1000)]
    pub max_inflight: usize,
    /// Write a latency histogram (SVG) here.
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
}

/// What a run measured.
#[derive(Debug)]
pub struct Summary {
    pub issued: usize,
    pub completed: usize,
    pub skipped: usize,
    pub elapsed: Duration,
    pub latencies_us: Vec<u64>,
    pub errors: BTreeMap<String, usize>,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Summary {
    pub fn print(&self) {
        let secs = self.elapsed.as_secs_f64();
        println!(
            "issued {} completed {} skipped (in-flight cap) {} in {:.2} s: {:.2} completed/s",
            self.issued,
            self.completed,
            self.skipped,
            secs,
            self.completed as f64 / secs.max(1e-9)
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
                .timeout(Duration::from_secs_f64(args.grpc_timeout))
                .tcp_nodelay(true)
                .connect_lazy();
            Ok((addr, ch))
        })
        .collect()
}

async fn call(ch: Channel) -> Outcome {
    let t = Instant::now();
    let result = GreeterClient::new(ch)
        .max_decoding_message_size(256 << 20)
        .say_hello(HelloRequest {
            name: "invoker".into(),
        })
        .await;
    Outcome {
        latency: t.elapsed(),
        code: result.err().map(|s| s.code()),
    }
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
    let endpoints = channels(&args)?;
    for i in 0..args.warmup {
        let (_, ch) = &endpoints[i % endpoints.len()];
        call(ch.clone()).await;
    }
    let interval = Duration::from_secs_f64(1.0 / args.rps);
    let total = (args.time * args.rps).round().max(1.0) as usize;
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} issued, {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let inflight = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel::<Outcome>();
    let start = Instant::now();
    let mut skipped = 0;
    let mut issued = 0;
    for k in 0..total {
        // Open loop: the k-th request is due at k * interval, whatever happened before.
        tokio::time::sleep_until((start + interval * k as u32).into()).await;
        if inflight.load(Ordering::Relaxed) >= args.max_inflight {
            skipped += 1;
            continue;
        }
        let (addr, ch) = &endpoints[k % endpoints.len()];
        let (ch, tx, in_flight, addr, dbg) = (
            ch.clone(),
            tx.clone(),
            inflight.clone(),
            addr.clone(),
            args.dbg,
        );
        inflight.fetch_add(1, Ordering::Relaxed);
        issued += 1;
        tokio::spawn(async move {
            let outcome = call(ch).await;
            if dbg {
                eprintln!(
                    "request {k} to {addr}: {:?} in {:?}",
                    outcome.code, outcome.latency
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
    let mut errors = BTreeMap::new();
    while let Some(o) = rx.recv().await {
        match o.code {
            None => latencies.push(o.latency.as_micros() as u64),
            Some(code) => *errors.entry(format!("{code:?}")).or_insert(0) += 1,
        }
    }
    bar.finish_and_clear();
    let elapsed = start.elapsed();
    let csv: String = latencies.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&args.latf, csv).with_context(|| format!("writing {}", args.latf.display()))?;
    latencies.sort_unstable();
    if let Some(path) = &args.histogram {
        crate::histogram::write_svg(path, &latencies)?;
    }
    Ok(Summary {
        issued,
        completed: latencies.len(),
        skipped,
        elapsed,
        latencies_us: latencies,
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[7], 90.0), 7);
    }
}
