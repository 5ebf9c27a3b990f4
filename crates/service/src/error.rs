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

/// Why a step failed; [`StepError::code`] is its gRPC status code.
#[derive(Debug, Error)]
pub enum StepError {
    /// The request is malformed (what is wrong).
    #[error("{0}")]
    BadRequest(String),
    /// A model configuration that does not parse or check.
    #[error("model_config: {0}")]
    Config(#[from] ConfigError),
    /// A model given a role it cannot play.
    #[error("model_config: {0}")]
    Role(#[from] RoleError),
    /// A dataset that does not decode or check.
    #[error("{what}: {source}")]
    Dataset {
        /// Which payload.
        what: &'static str,
        /// What is wrong with it.
        #[source]
        source: DatasetError,
    },
    /// A model that does not decode or check.
    #[error("{what}: {source}")]
    Decode {
        /// Which payload.
        what: String,
        /// What is wrong with it.
        #[source]
        source: DecodeError,
    },
    /// The ML core refused or failed.
    #[error("{0}")]
    Stack(#[from] StackError),
    /// The store failed.
    #[error("{0}")]
    Storage(#[from] StorageError),
    /// A call to another function failed.
    #[error("{context}: {status}")]
    Downstream {
        /// Which call.
        context: String,
        /// What it answered.
        status: Status,
    },
    /// A bug or a broken invariant (what happened).
    #[error("internal error: {0}")]
    Internal(String),
    /// A model could not be encoded.
    #[error("internal error: {0}")]
    Encode(#[from] EncodeError),
    /// The work was stopped.
    #[error("stopped: {0}")]
    Stopped(StopReason),
    /// A message or payload over a configured size limit.
    #[error("{0}")]
    TooLarge(String),
    /// The work would need more memory than the function's budget allows
    /// (`MEMORY_BUDGET_MB`); refused before it starts.
    #[error("{0}")]
    OverBudget(String),
    /// The deployment cannot serve this call as it stands, whatever the
    /// request: the driver's dataset could not be made, or the caller and
    /// this function use different transfers.
    #[error("{0}")]
    Precondition(String),
}

impl StepError {
    /// A [`StepError::BadRequest`].
    pub fn bad(msg: impl Into<String>) -> Self {
        StepError::BadRequest(msg.into())
    }

    /// The gRPC status code this error is answered with.
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
                StorageError::Full { .. } => Code::ResourceExhausted,
            },
            StepError::Downstream { status, .. } => status.code(),
            StepError::Internal(_) | StepError::Encode(_) => Code::Internal,
            StepError::TooLarge(_) => Code::OutOfRange,
            StepError::Precondition(_) => Code::FailedPrecondition,
            StepError::OverBudget(_) => Code::ResourceExhausted,
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
        // A message travels in the grpc-message trailer, and is logged:
        // keep it far below what clients accept in headers, whatever an
        // error repeated, and free of control characters.
        Status::new(
            code,
            stacking_core::params::printable(&message, MAX_STATUS_MESSAGE),
        )
    }
}
