//! # keyfold-mpc — threshold signing for Keyfold
//!
//! Keyfold's promise is that a private key never exists in one place: each key is split into
//! threshold shares held by separate signer nodes. This crate holds the protocols that make that
//! work, behind **one interface** so the signer node and the coordinator do not care which scheme
//! a key uses:
//!
//! | scheme | library | protocols |
//! |---|---|---|
//! | ECDSA secp256k1 | `cggmp24` 0.7.0-alpha.3 (CGGMP24, audited predecessor `cggmp21`) | aux info, DKG, signing, presignatures |
//! | EdDSA Ed25519 | `frost-ed25519` 3 (Zcash Foundation) | DKG, signing |
//! | Schnorr BIP-340 / Taproot | `frost-secp256k1-tr` 3 | DKG, signing, BIP-341 key-path tweak |
//!
//! Every protocol run is a [`Session`]: message in, messages out, no sockets and no async runtime
//! (see [`session`] for why). Messages are versioned, session-bound byte strings the coordinator
//! relays unchanged. Errors name the culprit ([`Error`]) so the coordinator can exclude a cheating
//! signer and retry with another set.
//!
//! Secrets (key shares, aux info, presignatures, primes) print `<redacted>`, have no `Display`,
//! and leave the process only through `to_bytes()`, which returns zeroizing, versioned bytes for
//! the keystore to seal.
//!
//! We never implement cryptography here: this crate is plumbing around audited libraries (message
//! routing, serialization, blame mapping, the echo check FROST's DKG asks its caller for).

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![warn(missing_docs, missing_debug_implementations)]

mod cggmp;
pub mod ecdsa;
mod error;
pub mod frost;
mod secret;
pub mod session;
#[cfg(any(test, feature = "test-util"))]
pub mod sim;
pub mod threaded;

pub use error::{Error, Result};
pub use secret::FORMAT_VERSION;
pub use session::{
    Outgoing, PartyIndex, ProtocolKind, Recipient, Session, SessionExt, SessionId, Step,
    WIRE_VERSION,
};

use zeroize::Zeroizing;

/// Which signature scheme a key uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Threshold ECDSA on secp256k1 (CGGMP24).
    EcdsaSecp256k1,
    /// Threshold EdDSA on Ed25519 (FROST).
    Ed25519,
    /// Threshold Schnorr on secp256k1, BIP-340 / Taproot (FROST).
    SchnorrSecp256k1,
}

/// A key share of any scheme. Secret.
#[derive(Clone)]
pub enum KeyShare {
    /// CGGMP24 share.
    Ecdsa(ecdsa::EcdsaKeyShare),
    /// FROST Ed25519 share.
    Ed25519(frost::Ed25519KeyShare),
    /// FROST secp256k1 Taproot share.
    Taproot(frost::TaprootKeyShare),
}
secret::redacted_debug!(KeyShare);

impl KeyShare {
    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        match self {
            KeyShare::Ecdsa(_) => Scheme::EcdsaSecp256k1,
            KeyShare::Ed25519(_) => Scheme::Ed25519,
            KeyShare::Taproot(_) => Scheme::SchnorrSecp256k1,
        }
    }

    /// This party's key-generation index.
    pub fn party(&self) -> PartyIndex {
        match self {
            KeyShare::Ecdsa(s) => s.party(),
            KeyShare::Ed25519(s) => s.party(),
            KeyShare::Taproot(s) => s.party(),
        }
    }

    /// Threshold `t`.
    pub fn threshold(&self) -> u16 {
        match self {
            KeyShare::Ecdsa(s) => s.threshold(),
            KeyShare::Ed25519(s) => s.threshold(),
            KeyShare::Taproot(s) => s.threshold(),
        }
    }

    /// Number of parties `n`.
    pub fn n(&self) -> u16 {
        match self {
            KeyShare::Ecdsa(s) => s.n(),
            KeyShare::Ed25519(s) => s.n(),
            KeyShare::Taproot(s) => s.n(),
        }
    }

    /// The group public key: secp256k1 keys SEC1 compressed (33 bytes), Ed25519 32 bytes.
    pub fn public_key(&self) -> Result<Vec<u8>> {
        match self {
            KeyShare::Ecdsa(s) => Ok(s.public_key_compressed().to_vec()),
            KeyShare::Ed25519(s) => s.verifying_key_bytes(),
            KeyShare::Taproot(s) => s.verifying_key_bytes(),
        }
    }

    /// Versioned bytes for sealing at rest (the kind byte tells the scheme).
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>> {
        match self {
            KeyShare::Ecdsa(s) => s.to_bytes(),
            KeyShare::Ed25519(s) => s.to_bytes(),
            KeyShare::Taproot(s) => s.to_bytes(),
        }
    }

    /// Reads any share written by `to_bytes`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        use secret::BlobKind;
        match secret::peek_kind(bytes) {
            Some(k) if k == BlobKind::EcdsaKeyShare as u8 => {
                Ok(KeyShare::Ecdsa(ecdsa::EcdsaKeyShare::from_bytes(bytes)?))
            }
            Some(k) if k == BlobKind::Ed25519KeyShare as u8 => Ok(KeyShare::Ed25519(
                frost::Ed25519KeyShare::from_bytes(bytes)?,
            )),
            Some(k) if k == BlobKind::TaprootKeyShare as u8 => Ok(KeyShare::Taproot(
                frost::TaprootKeyShare::from_bytes(bytes)?,
            )),
            _ => Err(Error::input("not a key share blob of a supported version")),
        }
    }
}

/// What any session can produce, for callers that keep sessions as `dyn Session`.
#[derive(Debug)]
pub enum SessionOutput {
    /// CGGMP24 aux info.
    EcdsaAuxInfo(ecdsa::EcdsaAuxInfo),
    /// CGGMP24 keygen output (needs aux info to sign).
    EcdsaIncompleteShare(ecdsa::EcdsaIncompleteShare),
    /// An ECDSA signature.
    EcdsaSignature(ecdsa::EcdsaSignature),
    /// An ECDSA presignature.
    EcdsaPresignature(ecdsa::EcdsaPresignature),
    /// A FROST key share.
    KeyShare(KeyShare),
    /// A Schnorr (Ed25519 or BIP-340) signature.
    SchnorrSignature(frost::SchnorrSignature),
}

macro_rules! into_output {
    ($($t:ty => $v:expr),+ $(,)?) => {$(
        impl From<$t> for SessionOutput {
            fn from(x: $t) -> Self {
                $v(x)
            }
        }
    )+};
}
into_output! {
    ecdsa::EcdsaAuxInfo => SessionOutput::EcdsaAuxInfo,
    ecdsa::EcdsaIncompleteShare => SessionOutput::EcdsaIncompleteShare,
    ecdsa::EcdsaSignature => SessionOutput::EcdsaSignature,
    ecdsa::EcdsaPresignature => SessionOutput::EcdsaPresignature,
    frost::SchnorrSignature => SessionOutput::SchnorrSignature,
    frost::Ed25519KeyShare => |s| SessionOutput::KeyShare(KeyShare::Ed25519(s)),
    frost::TaprootKeyShare => |s| SessionOutput::KeyShare(KeyShare::Taproot(s)),
}

/// A session of any protocol with a uniform output, e.g. for a signer's session table.
pub type DynSession = Box<dyn Session<Output = SessionOutput>>;

/// Erases a session's type: `boxed(ecdsa::sign(..)?)`.
pub fn boxed<S>(session: S) -> DynSession
where
    S: Session + 'static,
    S::Output: Into<SessionOutput>,
{
    Box::new(session.map_output(Into::into))
}
