//! The one place where errors become HTTP responses.
//!
//! Every failure — a domain rule, a failed proof, malformed JSON, an oversized body, an
//! unknown route — leaves as `{"error":{"message":…}}` with the status the Dfns SDK expects.
//! Internal causes are logged here and answered with a generic message: nothing about the
//! database, a stack or a secret ever reaches a client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyfold_domain::DomainError;
use keyfold_types::ErrorBody;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    BadRequest(String),
    #[error("no route for this path")]
    RouteNotFound,
    #[error("this method is not allowed on this path")]
    MethodNotAllowed,
    #[error("{0}")]
    NotImplemented(String),
}

impl ApiError {
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::BadRequest(msg.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Domain(d) => match d {
                DomainError::InvalidInput(_) => StatusCode::BAD_REQUEST,
                DomainError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
                DomainError::PermissionDenied(_) => StatusCode::FORBIDDEN,
                DomainError::NotFound(_) => StatusCode::NOT_FOUND,
                DomainError::Conflict(_) => StatusCode::CONFLICT,
                DomainError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                DomainError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::RouteNotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            ApiError::Domain(DomainError::Internal(cause)) => {
                tracing::error!(%cause, "internal error");
                "internal error; the incident was logged".to_string()
            }
            other => other.to_string(),
        };
        if status.is_client_error() {
            tracing::debug!(%status, %message, "request refused");
        }
        let mut resp = (status, axum::Json(ErrorBody::new(message))).into_response();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body was never read: the connection cannot be reused, and
            // clients that pool connections must be told so.
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
