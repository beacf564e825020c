//! `ApiError`: the one place that picks HTTP status codes and error bodies.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::jobs::{InvalidJobId, JobId};
use crate::runner::{CancelError, SubmitError};
use crate::store::{ExecutionId, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("job {0} does not exist")]
    JobNotFound(String),
    #[error("execution {exec} of job {job} does not exist")]
    ExecutionNotFound { job: JobId, exec: ExecutionId },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("no such path: {0}")]
    PathNotFound(String),
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("servitor is shutting down")]
    Unavailable,
    #[error("internal error: {0}")]
    Internal(String),
}

#[derive(Serialize)]
struct ErrorBody {
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::JobNotFound(_)
            | ApiError::ExecutionNotFound { .. }
            | ApiError::PathNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        (
            status,
            Json(ErrorBody {
                message: self.to_string(),
            }),
        )
            .into_response()
    }
}

impl From<InvalidJobId> for ApiError {
    fn from(err: InvalidJobId) -> Self {
        // An id that cannot be a job is simply not a job: 404, like any unknown id.
        ApiError::JobNotFound(format!("{:?}", err.0))
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound { job, exec } => ApiError::ExecutionNotFound { job, exec },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(err: SubmitError) -> Self {
        match err {
            SubmitError::BrokenSpec(message) => ApiError::BadRequest(message),
            SubmitError::Input(err) => ApiError::BadRequest(err.to_string()),
            SubmitError::ShuttingDown => ApiError::Unavailable,
            SubmitError::Store(err) => err.into(),
        }
    }
}

impl From<CancelError> for ApiError {
    fn from(err: CancelError) -> Self {
        match err {
            CancelError::Finished { .. } => ApiError::Conflict(err.to_string()),
            CancelError::Store(err) => err.into(),
        }
    }
}
