//! All four functions in one process, each a real gRPC server on its own
//! loopback port, sharing one store: what `stacking run` and the end-to-end
//! tests start.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use stacking_core::{Dataset, StackConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::driver::{Driver, DriverConfig, ReportOptions};
use crate::error::StepError;
use crate::pb::helloworld::greeter_client::GreeterClient;
use crate::pb::helloworld::{HelloReply, HelloRequest};
use crate::route::Route;
use crate::server::{serve, Role, ServeError};
use crate::settings::{Limits, RunPlan};
use crate::trace::{Sink, Tracer, ZipkinSpan};
use crate::Context;

/// How to start a local stack.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Inline, or through the store all four functions share.
    pub route: Route,
    /// What the driver runs: the same settings type as the distributed driver's.
    pub plan: RunPlan,
    /// The level-0 models and the meta model.
    pub stack: StackConfig,
    /// The dataset the driver runs on.
    pub dataset: Dataset,
    /// Requests each function computes at once.
    pub max_jobs: usize,
    /// Threads one request may use.
    pub threads_per_job: usize,
    /// Record every function's spans here (for a timeline), if set.
    pub spans: Option<Arc<std::sync::Mutex<Vec<ZipkinSpan>>>>,
    /// Send every function's spans to this Zipkin collector, if set.
    pub zipkin: Option<String>,
    /// The driver's dataset provenance, progress events and results.
    pub report: ReportOptions,
    /// Every function's bounds (`COMPUTE_BUDGET_S`, `MEMORY_BUDGET_MB`,
    /// `INVOCATION_TIMEOUT_S`, ...), as the distributed functions read them.
    pub limits: Limits,
}

/// A running local stack. Stop it with [`LocalStack::stop`].
pub struct LocalStack {
    /// The driver's address.
    pub driver: SocketAddr,
    /// The trainer's address.
    pub trainer: SocketAddr,
    /// The reducer's address.
    pub reducer: SocketAddr,
    /// The metatrainer's address.
    pub metatrainer: SocketAddr,
    stop: watch::Sender<bool>,
    tracers: Vec<Arc<Tracer>>,
    tasks: Vec<JoinHandle<Result<(), ServeError>>>,
    client: GreeterClient<Channel>,
}

/// Why a local stack could not start.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// No loopback port.
    #[error("binding a loopback port: {0}")]
    Bind(#[from] std::io::Error),
    /// A function refused its configuration.
    #[error("{0}")]
    Setup(#[from] StepError),
    /// The driver did not accept a connection.
    #[error("connecting to the driver: {0}")]
    Connect(#[from] tonic::transport::Error),
}

async fn loopback() -> std::io::Result<(TcpListener, SocketAddr)> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let a = l.local_addr()?;
    Ok((l, a))
}

impl LocalStack {
    /// Starts all four functions and connects to the driver.
    pub async fn start(opts: LocalOptions) -> Result<Self, LocalError> {
        let (stop, stopped) = watch::channel(false);
        let sink = || match (&opts.spans, &opts.zipkin) {
            (Some(store), None) => Some(Sink::Memory(store.clone())),
            (None, Some(url)) => Some(Sink::Zipkin(url.clone())),
            (Some(store), Some(url)) => Some(Sink::Both(url.clone(), store.clone())),
            (None, None) => None,
        };
        let tracers: Vec<Arc<Tracer>> = ["trainer", "reducer", "metatrainer", "driver"]
            .iter()
            .filter_map(|role| sink().map(|s| Tracer::start(role, s)))
            .collect();
        let ctx = |i: usize| {
            Context::new(opts.route.clone(), opts.max_jobs, opts.threads_per_job)
                .with_limits(opts.limits)
                .with_tracer(tracers.get(i).cloned())
        };
        let (tl, trainer) = loopback().await?;
        let (rl, reducer) = loopback().await?;
        let (ml, metatrainer) = loopback().await?;
        let (dl, driver) = loopback().await?;
        let n = opts.dataset.n_samples();
        let driver_state = Driver::new(
            DriverConfig {
                trainer_addr: trainer.to_string(),
                reducer_addr: reducer.to_string(),
                metatrainer_addr: metatrainer.to_string(),
                plan: opts.plan.clone(),
                stack: opts.stack.clone(),
                report: opts.report.clone(),
            },
            ctx(3),
            Bytes::from(opts.dataset.to_bytes()),
            n,
        )?;
        let roles = [
            (tl, Role::Trainer(ctx(0))),
            (rl, Role::Reducer(ctx(1))),
            (ml, Role::Metatrainer(ctx(2))),
            (dl, Role::Driver(Arc::new(driver_state))),
        ];
        let tasks = roles
            .into_iter()
            .map(|(listener, role)| {
                let mut stopped = stopped.clone();
                let limit = opts.plan.max_message_bytes;
                tokio::spawn(async move {
                    serve(listener, role, limit, async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    })
                    .await
                })
            })
            .collect();
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{driver}"))
            .map_err(|e| StepError::Internal(e.to_string()))?
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true)
            .initial_stream_window_size(Some(crate::rpc::STREAM_WINDOW))
            .initial_connection_window_size(Some(crate::rpc::CONNECTION_WINDOW))
            .connect()
            .await?;
        let client = GreeterClient::new(channel)
            .max_decoding_message_size(opts.plan.max_message_bytes)
            .max_encoding_message_size(opts.plan.max_message_bytes);
        Ok(Self {
            driver,
            trainer,
            reducer,
            metatrainer,
            stop,
            tracers,
            tasks,
            client,
        })
    }

    /// One `helloworld.Greeter/SayHello` call to the driver, over gRPC.
    pub async fn say_hello(&self) -> Result<HelloReply, tonic::Status> {
        let mut client = self.client.clone();
        Ok(client
            .say_hello(HelloRequest {
                name: "stacking run".into(),
            })
            .await?
            .into_inner())
    }

    /// Delivers every span recorded so far to `LocalOptions::spans`.
    pub async fn flush_spans(&self) {
        for t in &self.tracers {
            t.flush().await;
        }
    }

    /// Graceful shutdown of all four servers.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        drop(self.client);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
