//! Serving one role: the role's service plus the standard health service and
//! server reflection (v1 and v1alpha), message-size limits, and graceful
//! shutdown when `shutdown` resolves (SIGTERM/ctrl-c in the binary).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::Server;

use crate::driver::Driver;
use crate::pb::helloworld::greeter_server::GreeterServer;
use crate::pb::stacking::metatrainer_server::MetatrainerServer;
use crate::pb::stacking::reducer_server::ReducerServer;
use crate::pb::stacking::trainer_server::TrainerServer;
use crate::pb::FILE_DESCRIPTOR_SET;
use crate::role_guard::{RoleGuardLayer, COMMON_SERVICES};
use crate::rpc::{CONNECTION_WINDOW, STREAM_WINDOW};
use crate::services::{DriverService, MetatrainerService, ReducerService, TrainerService};
use crate::Context;

/// Which function a process serves.
#[derive(Debug, Clone)]
pub enum Role {
    /// The driver (`helloworld.Greeter`).
    Driver(Arc<Driver>),
    /// A trainer (`stacking.Trainer`).
    Trainer(Context),
    /// The reducer (`stacking.Reducer`).
    Reducer(Context),
    /// The metatrainer (`stacking.Metatrainer`).
    Metatrainer(Context),
}

impl Role {
    /// HTTP/2 streams one connection may have open at once. A worker takes
    /// the requests it admits plus as many waiting with their payload read
    /// (twice [`Context::request_slots`]); a caller's further requests wait
    /// on its side, unsent and (in tonic) not yet encoded. Without this, 16
    /// concurrent INLINE Train calls held 16 datasets in the trainer and 16
    /// encoded requests in the driver at once. The driver, the entry point
    /// that load generators call, is not limited.
    pub fn max_streams_per_connection(&self) -> Option<u32> {
        match self {
            Role::Driver(_) => None,
            Role::Trainer(ctx) | Role::Reducer(ctx) | Role::Metatrainer(ctx) => {
                Some(u32::try_from(ctx.request_slots().saturating_mul(2)).unwrap_or(u32::MAX))
            }
        }
    }

    /// The function's shared state.
    pub fn context(&self) -> &Context {
        match self {
            Role::Driver(driver) => driver.context(),
            Role::Trainer(ctx) | Role::Reducer(ctx) | Role::Metatrainer(ctx) => ctx,
        }
    }

    /// The one service of the role, fully qualified.
    pub fn service(&self) -> &'static str {
        match self {
            Role::Driver(_) => "helloworld.Greeter",
            Role::Trainer(_) => "stacking.Trainer",
            Role::Reducer(_) => "stacking.Reducer",
            Role::Metatrainer(_) => "stacking.Metatrainer",
        }
    }

    /// The role's name: driver, trainer, reducer, metatrainer.
    pub fn name(&self) -> &'static str {
        match self {
            Role::Driver(_) => "driver",
            Role::Trainer(_) => "trainer",
            Role::Reducer(_) => "reducer",
            Role::Metatrainer(_) => "metatrainer",
        }
    }
}

/// Why a server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The reflection service could not be built.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The transport failed (bind, accept).
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// How often a server pings an idle client connection, and how long the
/// ping may go unanswered: a client that vanished without closing its
/// connection is noticed, its requests dropped and their work stopped.
const SERVER_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const SERVER_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// After the drain timeout, how long stopped work has to answer its callers.
const STOPPED_WORK_GRACE: Duration = Duration::from_secs(2);

/// Serves `role` on `listener` until `shutdown` completes, then drains
/// in-flight requests for at most the drain timeout (`DRAIN_TIMEOUT_S`);
/// work still running then is stopped, and this returns.
pub async fn serve(
    listener: TcpListener,
    role: Role,
    max_message_bytes: usize,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    // Reflection lists only what this role serves, as grpcurl users expect.
    let reflection = || {
        COMMON_SERVICES.iter().fold(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .with_service_name(role.service()),
            |b, s| b.with_service_name(*s),
        )
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    // HTTP/2's default 64 KiB flow-control windows make a 2.4 MiB message
    // take dozens of round trips; inline transfer moves several per run.
    let ctx = role.context().clone();
    let limits = *ctx.limits();
    // A request without a deadline of its own still ends: the driver's
    // invocation, or a worker's compute budget, plus time to move its data.
    let request_bound = match &role {
        Role::Driver(_) => limits.invocation_timeout,
        _ => limits.compute_budget,
    } + Duration::from_secs(60);
    let driver = match &role {
        Role::Driver(driver) => Some(Arc::clone(driver)),
        _ => None,
    };
    let admission = crate::admission::MemoryBudgetLayer::new(limits.memory_budget_bytes);
    let guard = RoleGuardLayer {
        role: role.name(),
        service: role.service(),
    };
    let mut builder = Server::builder()
        .timeout(request_bound)
        .http2_keepalive_interval(Some(SERVER_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(SERVER_KEEPALIVE_TIMEOUT))
        .tcp_nodelay(true)
        .initial_stream_window_size(Some(STREAM_WINDOW))
        .initial_connection_window_size(Some(CONNECTION_WINDOW))
        .max_concurrent_streams(role.max_streams_per_connection())
        .layer(crate::connections::ActivityLayer::with_store(
            ctx.store().cloned(),
        ))
        .layer(guard)
        .layer(admission);
    let router = builder
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    let limit = max_message_bytes;
    let router = match role {
        Role::Driver(driver) => {
            // SERVING while the dataset is still being made: a SayHello that
            // arrives first waits for it (about 4 ms for the default
            // dataset), so making it overlaps the time until the first call
            // instead of delaying readiness. Should making it fail, the
            // driver turns NOT_SERVING and every SayHello gets the reason.
            health.set_serving::<GreeterServer<DriverService>>().await;
            if !driver.is_ready_now() {
                let (reporter, waiting) = (health.clone(), driver.clone());
                tokio::spawn(async move {
                    if !waiting.ready().await {
                        reporter
                            .set_not_serving::<GreeterServer<DriverService>>()
                            .await;
                        reporter
                            .set_service_status("", tonic_health::ServingStatus::NotServing)
                            .await;
                    }
                });
            }
            router.add_service(
                GreeterServer::new(DriverService(driver))
                    .max_decoding_message_size(limit)
                    .max_encoding_message_size(limit),
            )
        }
        Role::Trainer(ctx) => {
            health.set_serving::<TrainerServer<TrainerService>>().await;
            router.add_service(
                TrainerServer::new(TrainerService(ctx))
                    .max_decoding_message_size(limit)
                    .max_encoding_message_size(limit),
            )
        }
        Role::Reducer(ctx) => {
            health.set_serving::<ReducerServer<ReducerService>>().await;
            router.add_service(
                ReducerServer::new(ReducerService(ctx))
                    .max_decoding_message_size(limit)
                    .max_encoding_message_size(limit),
            )
        }
        Role::Metatrainer(ctx) => {
            health
                .set_serving::<MetatrainerServer<MetatrainerService>>()
                .await;
            router.add_service(
                MetatrainerServer::new(MetatrainerService(ctx))
                    .max_decoding_message_size(limit)
                    .max_encoding_message_size(limit),
            )
        }
    };
    let (signalled, on_signal) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        let _ = signalled.send(());
    };
    let connections = Arc::new(crate::connections::Registry::default());
    let server = router.serve_with_incoming_shutdown(
        crate::connections::incoming(listener, limits.connections, connections),
        shutdown,
    );
    tokio::pin!(server);
    let drain_bound = async {
        match on_signal.await {
            Ok(()) => tokio::time::sleep(limits.drain_timeout).await,
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        served = &mut server => served?,
        () = drain_bound => {
            tracing::warn!(
                drain_s = limits.drain_timeout.as_secs(),
                "in-flight requests did not finish within DRAIN_TIMEOUT_S; stopping their work"
            );
            ctx.stop_all_work();
            let _ = tokio::time::timeout(STOPPED_WORK_GRACE, &mut server).await;
        }
    }
    if let Some(driver) = driver {
        driver.wait_for_cleanups(limits.drain_timeout).await;
    }
    Ok(())
}
