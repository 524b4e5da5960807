//! Keyfold's domain: what an organization, a user, a credential, a token, a permission *is*,
//! the rules that govern them, and the use cases that change them.
//!
//! The domain talks to the outside world only through the ports in [`ports`] (the store, the
//! clock), so the same rules run against SQLite, PostgreSQL or an in-memory test double, and
//! behind any transport. Authorization is a type: a use case that changes something takes a
//! [`authz::Granted`] capability, which only [`authz::Principal::authorize`] can mint — a
//! handler that forgot its permission check does not compile.

pub mod authz;
pub mod error;
pub mod ids;
pub mod keys;
pub mod model;
pub mod page;
pub mod permissions;
pub mod ports;
pub mod secrets;
pub mod time;
pub mod transfers;
pub mod users;
pub mod validate;

pub use error::{DomainError, StoreError};
