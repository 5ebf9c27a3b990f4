//! Thin tonic adapters: unwrap the request, call the step, map the error.

use tonic::{Request, Response, Status};

use crate::context::Context;
use crate::error::StepError;
use crate::pb::stacking::metatrainer_server::Metatrainer;
use crate::pb::stacking::reducer_server::Reducer;
use crate::pb::stacking::trainer_server::Trainer;
use crate::pb::stacking::{
    MetaTrainReply, MetaTrainRequest, ReduceReply, ReduceRequest, TrainReply, TrainRequest,
};
use crate::steps;

fn reply<T>(rpc: &str, result: Result<T, StepError>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(|e| {
        tracing::warn!(rpc, code = ?e.code(), error = %e, "request failed");
        Status::from(e)
    })
}

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
