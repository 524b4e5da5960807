//! The error body every failing request returns: `{"error":{"message":…}}`.
//!
//! The SDK parses every error body as JSON and reads `error.message`, so even failures that
//! never reach a handler (unknown route, oversized body, malformed JSON) must use this shape.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Human-readable explanation. Never contains secrets or internal causes.
    pub message: String,
}

impl ErrorBody {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                message: message.into(),
            },
        }
    }
}
