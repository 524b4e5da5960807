//! The crate's one error type.
//!
//! WHY it is shaped like this: a coordinator that runs a threshold protocol must decide what to do
//! when a session fails, and the right reaction depends on *whose* fault it is:
//!
//! * [`Error::InvalidInput`] — the caller (our own node or the coordinator's request) passed bad
//!   parameters or bytes; retrying with the same input fails again.
//! * [`Error::Misbehaving`] — one or more named parties sent something provably wrong (a message
//!   that does not parse, a failing zero-knowledge proof, an invalid signature share, an
//!   inconsistent broadcast). The coordinator should exclude them and restart with another set.
//! * [`Error::Aborted`] — the protocol detected cheating but the library cannot tell who did it.
//! * [`Error::Transport`] — a message that is not for this session (wrong session id, recipient,
//!   protocol or sender). The message is dropped and **the session stays usable**; every other
//!   variant is terminal for the session.
//! * [`Error::Internal`] — a bug or an impossible state on our side.
//!
//! Messages never contain secret material: they are built from library error `Display` strings and
//! our own text.

use crate::session::PartyIndex;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a threshold protocol, classified by culprit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The caller's input is invalid (parameters, share bytes, message to sign...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Named parties misbehaved; indices are the parties' key-generation indices (`0..n`).
    #[error("misbehaving part{} {parties:?}: {reason}", if parties.len() == 1 { "y" } else { "ies" })]
    Misbehaving {
        /// Key-generation indices of the culprits (never empty).
        parties: Vec<PartyIndex>,
        /// What they did.
        reason: String,
    },
    /// The protocol detected cheating but could not attribute it to a party.
    #[error("protocol aborted, culprit unknown: {0}")]
    Aborted(String),
    /// A message that does not belong to this session; it was dropped and the session continues.
    #[error("transport: {0}")]
    Transport(String),
    /// A bug on our side.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub(crate) fn input(msg: impl Into<String>) -> Self {
        Error::InvalidInput(msg.into())
    }

    pub(crate) fn internal(msg: impl Into<String>) -> Self {
        Error::Internal(msg.into())
    }

    pub(crate) fn transport(msg: impl Into<String>) -> Self {
        Error::Transport(msg.into())
    }

    pub(crate) fn party(party: PartyIndex, reason: impl Into<String>) -> Self {
        Error::Misbehaving {
            parties: vec![party],
            reason: reason.into(),
        }
    }

    /// Builds a `Misbehaving` error, or `Aborted` when no culprit is known.
    pub(crate) fn parties(mut parties: Vec<PartyIndex>, reason: impl Into<String>) -> Self {
        parties.sort_unstable();
        parties.dedup();
        if parties.is_empty() {
            Error::Aborted(reason.into())
        } else {
            Error::Misbehaving {
                parties,
                reason: reason.into(),
            }
        }
    }

    /// The parties to blame, if any.
    pub fn culprits(&self) -> &[PartyIndex] {
        match self {
            Error::Misbehaving { parties, .. } => parties,
            _ => &[],
        }
    }

    /// Whether the session that returned this error can still be used (only for `Transport`).
    pub fn is_recoverable(&self) -> bool {
        matches!(self, Error::Transport(_))
    }
}

/// Renders an error and its whole `source()` chain on one line.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}
