//! One router per resource. Handlers are thin: extract (authenticate, authorize, verify the
//! user action), call a use case, shape the response.

pub mod apps;
pub mod auth;
pub mod credentials;
pub mod keys;
pub mod networks;
pub mod pats;
pub mod permissions;
pub mod service_accounts;
pub mod system;
pub mod transfers;
pub mod users;
pub mod wallets;

use keyfold_types::ErrorBody;
use utoipa::IntoResponses;

/// The error responses any endpoint may give, for the OpenAPI document. The body is always
/// `{"error":{"message":…}}`.
#[derive(Debug, IntoResponses)]
#[allow(dead_code)]
pub enum Errors {
    /// The input is malformed or breaks a rule.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No valid token, or the signed user action does not match this request.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The identity lacks the permission.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// Unknown id (or one of another organization).
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// A duplicate, or a conflicting state.
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// The body is larger than the server accepts.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// A dependency is unavailable; retry after the `Retry-After` seconds.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}
