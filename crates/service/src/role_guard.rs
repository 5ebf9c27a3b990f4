//! Answers a call to a service this process does not serve with
//! `UNIMPLEMENTED` naming the role and what it does serve. Every function
//! runs the same binary, so calling SayHello on a trainer is an easy mistake;
//! tonic's own answer is `UNIMPLEMENTED` with an empty message.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use stacking_core::params::excerpt;
use tonic::body::Body;
use tower::{Layer, Service};

/// Services every role serves besides its own.
pub const COMMON_SERVICES: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// The layer: `role` serves `service` plus [`COMMON_SERVICES`].
#[derive(Debug, Clone, Copy)]
pub struct RoleGuardLayer {
    /// The role this server plays.
    pub role: &'static str,
    /// The gRPC service it serves.
    pub service: &'static str,
}

impl<S> Layer<S> for RoleGuardLayer {
    type Service = RoleGuard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RoleGuard {
            inner,
            guard: *self,
        }
    }
}

/// The service that answers another role's calls with `UNIMPLEMENTED`.
#[derive(Debug, Clone)]
pub struct RoleGuard<S> {
    inner: S,
    guard: RoleGuardLayer,
}

impl RoleGuardLayer {
    /// `None` when the path's service is served here; else the refusal.
    pub fn refuse(&self, path: &str) -> Option<tonic::Status> {
        let service = path.trim_start_matches('/').split('/').next().unwrap_or("");
        if service == self.service || COMMON_SERVICES.contains(&service) {
            return None;
        }
        Some(tonic::Status::unimplemented(format!(
            "this process is the {} function: it serves {} (plus health and reflection), not {}",
            self.role,
            self.service,
            excerpt(service, 80)
        )))
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> Service<http::Request<Body>> for RoleGuard<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        match self.guard.refuse(req.uri().path()) {
            Some(status) => Box::pin(async move { Ok(status.into_http()) }),
            None => Box::pin(self.inner.call(req)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_foreign_services_are_refused_and_the_message_names_the_role() {
        let guard = RoleGuardLayer {
            role: "trainer",
            service: "stacking.Trainer",
        };
        assert!(guard.refuse("/stacking.Trainer/Train").is_none());
        assert!(guard.refuse("/grpc.health.v1.Health/Check").is_none());
        let status = guard.refuse("/helloworld.Greeter/SayHello").unwrap();
        assert_eq!(status.code(), tonic::Code::Unimplemented);
        assert_eq!(
            status.message(),
            "this process is the trainer function: it serves stacking.Trainer (plus health and reflection), not helloworld.Greeter"
        );
        let long = format!("/{}/X", "a".repeat(10_000));
        assert!(guard.refuse(&long).unwrap().message().len() < 300);
    }
}
