//! The domain's error enum and the store's.
//!
//! Variants say *what kind* of failure happened so that exactly one place (the server's
//! error module) can turn them into HTTP statuses. Messages are for the caller: they never
//! carry secrets or internal causes — those go in [`StoreError::Internal`] / `Internal`, which
//! the server logs and answers with a generic message.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DomainError {
    /// The request is malformed or violates a rule (HTTP 400).
    #[error("{0}")]
    InvalidInput(String),
    /// No valid identity, or the proof offered does not hold (HTTP 401).
    #[error("{0}")]
    Unauthenticated(String),
    /// The identity is known but may not do this (HTTP 403).
    #[error("{0}")]
    PermissionDenied(String),
    /// The thing does not exist in the caller's organization (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// It clashes with existing state: a duplicate, a used token (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// A dependency is down or not ready; retrying later may work (HTTP 503).
    #[error("{0}")]
    Unavailable(String),
    /// A bug or a broken invariant. The message is logged, never returned.
    #[error("internal error: {0}")]
    Internal(String),
}

impl DomainError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::InvalidInput(msg.into())
    }
    pub fn unauthenticated(msg: impl Into<String>) -> Self {
        Self::Unauthenticated(msg.into())
    }
    pub fn denied(msg: impl Into<String>) -> Self {
        Self::PermissionDenied(msg.into())
    }
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::NotFound(msg.into())
    }
    pub fn conflict(msg: impl Into<String>) -> Self {
        Self::Conflict(msg.into())
    }
    /// A user action token presented again after a request spent it.
    pub fn action_already_used() -> Self {
        Self::unauthenticated("the user action was already used")
    }
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::Internal(msg.into())
    }
}

/// What a store adapter can report. Unique-constraint names are stable strings
/// (`"users.username"`, …) so the domain can tell which rule a conflict broke.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    #[error("conflict on {0}")]
    Conflict(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("store error: {0}")]
    Internal(String),
}

impl From<StoreError> for DomainError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => DomainError::Conflict(format!("already exists ({what})")),
            // The adapter logged the cause; callers learn only that they may retry.
            StoreError::Unavailable(_) => {
                DomainError::Unavailable("the database is unavailable; retry later".into())
            }
            StoreError::Internal(m) => DomainError::Internal(m),
        }
    }
}

pub type Result<T, E = DomainError> = std::result::Result<T, E>;
