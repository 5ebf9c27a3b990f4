//! Step errors and their gRPC status codes. Every message names the problem;
//! the service answers the next request as usual.

use stacking_core::models::RoleError;
use stacking_core::serial::{DecodeError, EncodeError};
use stacking_core::{ConfigError, DatasetError, StackError, StopReason};
use stacking_storage::StorageError;
use thiserror::Error;
use tonic::{Code, Status};

/// The longest status message sent, in characters.
pub const MAX_STATUS_MESSAGE: usize = 1024;

#[derive(Debug, Error)]
pub enum StepError {
    #[error("{0}")]
    BadRequest(String),
    #[error("model_config: {0}")]
    Config(#[from] ConfigError),
    #[error("model_config: {0}")]
    Role(#[from] RoleError),
    #[error("{what}: {source}")]
    Dataset {
        what: &'static str,
        #[source]
        source: DatasetError,
    },
    #[error("{what}: {source}")]
    Decode {
        what: String,
        #[source]
        source: DecodeError,
    },
    #[error("{0}")]
    Stack(#[from] StackError),
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error("{context}: {status}")]
    Downstream { context: String, status: Status },
    #[error("internal error: {0}")]
    Internal(String),
    #[error("internal error: {0}")]
    Encode(#[from] EncodeError),
    #[error("stopped: {0}")]
    Stopped(StopReason),
    /// A message or payload over a configured size limit.
    #[error("{0}")]
    TooLarge(String),
}

impl StepError {
    pub fn bad(msg: impl Into<String>) -> Self {
        StepError::BadRequest(msg.into())
    }

    pub fn code(&self) -> Code {
        match self {
            StepError::BadRequest(_)
            | StepError::Config(_)
            | StepError::Role(_)
            | StepError::Dataset { .. }
            | StepError::Decode { .. }
            | StepError::Stack(_) => Code::InvalidArgument,
            StepError::Storage(e) => match e {
                StorageError::NotFound { .. } => Code::NotFound,
                StorageError::InvalidKey { .. } | StorageError::RangeNotSatisfiable { .. } => {
                    Code::InvalidArgument
                }
                StorageError::Unavailable { .. } => Code::Unavailable,
                StorageError::PermissionDenied { .. } => Code::PermissionDenied,
                StorageError::Config(_) => Code::FailedPrecondition,
                StorageError::TooLarge { .. } => Code::OutOfRange,
            },
            StepError::Downstream { status, .. } => status.code(),
            StepError::Internal(_) | StepError::Encode(_) => Code::Internal,
            StepError::TooLarge(_) => Code::OutOfRange,
            StepError::Stopped(StopReason::Cancelled) => Code::Cancelled,
            StepError::Stopped(StopReason::BudgetExceeded) => Code::DeadlineExceeded,
            StepError::Stopped(StopReason::ShuttingDown) => Code::Unavailable,
        }
    }
}

impl From<StepError> for Status {
    fn from(e: StepError) -> Self {
        let code = e.code();
        let message = match &e {
            StepError::Downstream { context, status } => format!("{context}: {}", status.message()),
            StepError::Stopped(StopReason::BudgetExceeded) => {
                format!("{e} (COMPUTE_BUDGET_S sets it)")
            }
            other => other.to_string(),
        };
        // A message travels in the grpc-message trailer: keep it far below
        // what clients accept in headers, whatever an error repeated.
        Status::new(
            code,
            stacking_core::params::excerpt(&message, MAX_STATUS_MESSAGE),
        )
    }
}
