//! Authentication for Keyfold: who is calling, and did their credential approve this exact
//! request?
//!
//! * [`credential`] verifies what a credential signed — a login or action assertion, or the
//!   proof of possession of a new key — for every key kind the Dfns key signer produces
//!   (ECDSA P-256 and secp256k1 over SHA-256, Ed25519, RSA PKCS#1 v1.5 SHA-256).
//! * [`jwt`] issues and verifies access tokens (EdDSA JWTs under a persisted, rotatable key
//!   set whose private halves are sealed by [`sealer`]).
//! * [`service::AuthService`] runs the flows: login, logout, per-request authentication,
//!   user action challenges and the single-use tokens they are traded for, registration.
//!
//! Errors are [`keyfold_domain::DomainError`]s: authentication failures are
//! `Unauthenticated`, bad input `InvalidInput`, and the server maps them in one place.

pub mod apps;
pub mod bootstrap;
pub mod credential;
pub mod credentials;
pub mod delegated;
pub mod jwt;
pub mod pats;
pub mod payload;
pub mod registration;
pub mod sealer;
pub mod service;
pub mod service_accounts;
pub mod totp;
pub mod webauthn;

pub use service::{AuthService, AuthSettings};
