//! The crate's one error type.
//!
//! Every public function here is fed either by a caller's request (addresses, messages, typed
//! data, unsigned transactions: **bad input**, an HTTP 400 with the message shown to the caller)
//! or by our own signer cluster (r, s, recid: a failure there is **internal**, a 500 whose cause is
//! logged and never shown). [`Error::is_bad_input`] tells the server's error mapper which is which.

/// Errors of `keyfold-chains`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request is malformed or inconsistent; the message says what is wrong and is safe to
    /// return to the caller.
    #[error("{0}")]
    InvalidInput(String),

    /// The request is well-formed but asks for something Keyfold does not do (yet): a network
    /// family that is reserved but not implemented, a blob or EIP-7702 transaction.
    #[error("{0}")]
    Unsupported(String),

    /// A signature from the signer cluster does not recover to the key's address (or is not a
    /// canonical low-s secp256k1 signature). Never return such a signature: it means a signer
    /// misbehaved or a bug; log it and fail the request.
    #[error("signature check failed: {0}")]
    SignatureMismatch(String),

    /// Anything else that is our fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// `true` when the caller's request is at fault (answer 400 with [`ToString::to_string`]);
    /// `false` when we are (answer 500 and log).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Error::InvalidInput(_) | Error::Unsupported(_))
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidInput(message.into())
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Library error texts can quote whole input values; keep what we echo back short.
pub(crate) fn clip(text: impl std::fmt::Display) -> String {
    const MAX: usize = 240;
    let text = text.to_string();
    if text.len() <= MAX {
        return text;
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
