//! # keyfold-keystore — a signer node's secrets at rest and in flight
//!
//! Keyfold splits every private key into threshold shares held by separate signer nodes. The
//! promise — *no single compromised component can sign* — holds only if two things that sit
//! next to every signer cannot be turned against it:
//!
//! 1. **Its database is untrusted.** Whoever reads a signer's database, its backups, or
//!    administers the database server must learn nothing, and whatever they write must be
//!    detected. Every secret therefore crosses **one encryption barrier** ([`seal`] / [`open`],
//!    module [`record`]): XChaCha20-Poly1305 under the node's key-encryption key ([`Kek`]), which
//!    lives outside the database, with associated data ([`Aad`]) binding each record to its
//!    purpose, key, signer and version so that rows cannot be moved, swapped or rolled back one
//!    by one.
//! 2. **The coordinator is untrusted.** Signers exchange protocol messages only through the API's
//!    coordinator. Point-to-point messages are HPKE-encrypted to the recipient and signed by the
//!    sender ([`Envelope`]); broadcasts are signed ([`SignedMessage`]); both are bound to a
//!    context (session, protocol, round, sender, recipient) so the coordinator can neither read,
//!    forge, alter, misroute nor replay them into another session — and a cheating signer can be
//!    blamed with evidence a third party can check ([`Envelope::verify_sender`]). See module
//!    [`message`].
//!
//! Secrets leave this crate only as [`SecretBytes`] (zeroized on drop, `Debug` = `<redacted>`, no
//! `Display`, no serde); [`Kek`] and [`NodeIdentity`] behave the same way.
//!
//! Errors ([`Error`]) never contain secret bytes and say who is to blame: the storage
//! ([`Error::Tampered`]), our configuration ([`Error::WrongKek`]), the sender
//! ([`Error::Undecryptable`], and [`Error::BadSignature`] at the coordinator's ingress) or the
//! relay ([`Error::WrongRecipient`], [`Error::BadSignature`] at a recipient).
//!
//! No cryptographic primitive is implemented here: XChaCha20-Poly1305 (`chacha20poly1305`),
//! HKDF-SHA256 (`hkdf`, `sha2`), Ed25519 (`ed25519-dalek`), X25519 (`x25519-dalek`) and HPKE
//! (`hpke`) come from audited or widely reviewed crates; this crate is formats, bindings and
//! checks.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![warn(missing_docs, missing_debug_implementations)]

mod encoding;
mod error;
pub mod identity;
pub mod kek;
pub mod message;
pub mod record;
mod secret;

pub use error::{Error, Result};
pub use identity::{NodeIdentity, NodePublic};
pub use kek::{Kek, KekId};
pub use message::{Envelope, MessageContext, SignedMessage, verify_broadcast};
pub use record::{Aad, Purpose, open, reseal, seal, sealed_kek_id};
pub use secret::SecretBytes;
