//! Serving one function as a long-running process.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use stacking_service::server::{serve, Role};
use stacking_service::trace::{Sink, Tracer};
use stacking_service::CommonSettings;
use tokio::net::TcpListener;

use crate::args::ServeArgs;

/// Resolves on SIGTERM (Kubernetes' stop signal) or ctrl-c.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: draining in-flight requests");
}

/// The role's tracer when `ENABLE_TRACING=true`: spans go to `-zipkin`.
pub fn tracer(role: &str, args: &ServeArgs, settings: &CommonSettings) -> Option<Arc<Tracer>> {
    settings
        .tracing
        .then(|| Tracer::start(role, Sink::Zipkin(args.zipkin.clone())))
}

pub async fn serve_role(
    role: Role,
    args: &ServeArgs,
    settings: &CommonSettings,
    tracer: Option<Arc<Tracer>>,
) -> Result<()> {
    let addr: SocketAddr = format!("{}:{}", args.host, args.sp)
        .parse()
        .with_context(|| format!("bad listen address {}:{}", args.host, args.sp))?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(role = role.name(), %addr, transfer = settings.transfer.as_str(), "serving");
    serve(
        listener,
        role,
        settings.max_message_bytes,
        shutdown_signal(),
    )
    .await?;
    if let Some(t) = tracer {
        // Spans of the last requests go out before the process exits.
        t.flush().await;
    }
    Ok(())
}

pub fn driver_role(driver: stacking_service::driver::Driver) -> Role {
    Role::Driver(Arc::new(driver))
}
