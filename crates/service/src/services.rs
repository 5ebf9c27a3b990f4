//! Thin tonic adapters: unwrap the request, call the step, map the error.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::context::Context;
use crate::driver::Driver;
use crate::error::StepError;
use crate::pb::helloworld::greeter_server::Greeter;
use crate::pb::helloworld::{HelloReply, HelloRequest};
use crate::pb::stacking::metatrainer_server::Metatrainer;
use crate::pb::stacking::reducer_server::Reducer;
use crate::pb::stacking::trainer_server::Trainer;
use crate::pb::stacking::{
    MetaTrainReply, MetaTrainRequest, ReduceReply, ReduceRequest, TrainReply, TrainRequest,
};
use crate::rpc::{parse_grpc_timeout, Deadline};
use crate::steps;

/// The reply, or the error as its status. The log line carries the status's
/// message: escaped and cut, like everything a request can put in a log.
fn reply<T>(rpc: &str, result: Result<T, StepError>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(|e| {
        let status = Status::from(e);
        tracing::warn!(rpc, code = ?status.code(), error = status.message(), "request failed");
        status
    })
}

/// `stacking.Trainer` over a function's context.
#[derive(Debug, Clone)]
pub struct TrainerService(pub Context);

#[tonic::async_trait]
impl Trainer for TrainerService {
    async fn train(&self, request: Request<TrainRequest>) -> Result<Response<TrainReply>, Status> {
        let mut span = self.0.server_span("Train", request.metadata());
        span.tag("trainer_id", &request.get_ref().trainer_id);
        reply(
            "Train",
            steps::train(&self.0, request.into_inner(), &span).await,
        )
    }
}

/// `stacking.Reducer` over a function's context.
#[derive(Debug, Clone)]
pub struct ReducerService(pub Context);

#[tonic::async_trait]
impl Reducer for ReducerService {
    async fn reduce(
        &self,
        request: Request<ReduceRequest>,
    ) -> Result<Response<ReduceReply>, Status> {
        let span = self.0.server_span("Reduce", request.metadata());
        reply(
            "Reduce",
            steps::reduce(&self.0, request.into_inner(), &span).await,
        )
    }
}

/// `stacking.Metatrainer` over a function's context.
#[derive(Debug, Clone)]
pub struct MetatrainerService(pub Context);

#[tonic::async_trait]
impl Metatrainer for MetatrainerService {
    async fn metatrain(
        &self,
        request: Request<MetaTrainRequest>,
    ) -> Result<Response<MetaTrainReply>, Status> {
        let span = self.0.server_span("Metatrain", request.metadata());
        reply(
            "Metatrain",
            steps::metatrain(&self.0, request.into_inner(), &span).await,
        )
    }
}

/// The `Greeter` service around a shared [`Driver`].
#[derive(Debug, Clone)]
pub struct DriverService(pub Arc<Driver>);

/// What a run keeps of its caller's deadline to answer in: a twentieth of
/// it, at most 250 ms.
fn answer_margin(deadline: std::time::Duration) -> std::time::Duration {
    (deadline / 20).min(std::time::Duration::from_millis(250))
}

/// The most characters of `HelloRequest.name` a log line carries.
const LOGGED_NAME: usize = 64;

#[tonic::async_trait]
impl Greeter for DriverService {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let root = self.0.context().server_span("SayHello", request.metadata());
        // The caller's deadline, if shorter than the driver's own budget,
        // less a margin: tonic's own timer answers CANCELLED at the
        // caller's deadline, and the caller should learn DEADLINE_EXCEEDED.
        let mut budget = self.0.context().limits().invocation_timeout;
        if let Some(theirs) = request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
        {
            budget = budget.min(theirs.saturating_sub(answer_margin(theirs)));
        }
        // Logged escaped and cut: a raw name could forge log lines or flood the log.
        let name = stacking_core::params::printable(&request.into_inner().name, LOGGED_NAME);
        match self.0.run_traced(&root, Deadline::after(budget)).await {
            Ok(report) => {
                let message = report.summary();
                tracing::info!(name = %name, %message, "run finished");
                Ok(Response::new(HelloReply {
                    message,
                    report_json: serde_json::to_string(&report).map_err(|e| {
                        Status::internal(format!("the run report does not serialise: {e}"))
                    })?,
                }))
            }
            Err(e) => {
                let status = Status::from(e);
                tracing::warn!(name = %name, code = ?status.code(), error = status.message(), "run failed");
                Err(status)
            }
        }
    }
}
