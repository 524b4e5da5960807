//! The crate's one error type.
//!
//! Two rules shape it:
//!
//! * **No secret ever reaches an error.** Variants carry static reasons, paths, key *ids* and file
//!   modes — never key bytes, plaintext, or a decoder's message (a hex decoder's "invalid character
//!   'x' at position 7" would leak a character of the key).
//! * **The variant says who is to blame**, so the signer (and through it the coordinator) can
//!   exclude the right party instead of failing blindly. For records at rest the suspects are
//!   the database and our own configuration; for messages they are the *sender* and the *relay*
//!   (see each variant).

use std::path::PathBuf;

use crate::kek::KekId;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the keystore.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ----- records at rest -------------------------------------------------------------------
    /// The record was sealed under another key-encryption key than the one we hold.
    ///
    /// Blame: our configuration (the wrong KEK file/variable, or a rotation that has not reached
    /// this record yet — use [`crate::reseal`]). Nothing was decrypted.
    #[error(
        "sealed record was written under key-encryption key {found}, but this node holds {expected}"
    )]
    WrongKek {
        /// The id of the KEK we hold.
        expected: KekId,
        /// The id written in the record.
        found: KekId,
    },

    /// The record failed authentication under the right KEK: a byte was changed, or the record
    /// was moved to another row (another key id, signer id, version or purpose).
    ///
    /// Blame: the storage (the database is untrusted). Never retry with other associated data.
    #[error(
        "sealed record failed authentication: it was modified, or it belongs to another key, signer, version or purpose"
    )]
    Tampered,

    /// Bytes that do not parse: truncated, wrong magic, unknown format version, wrong lengths.
    ///
    /// Blame: whoever handed us the bytes (the storage for records; for messages the relay — an
    /// unsigned parse error cannot be attributed to the sender).
    #[error("malformed input: {0}")]
    Format(&'static str),

    // ----- messages between nodes -------------------------------------------------------------
    /// The message does not carry the claimed sender's valid signature **for this context**: it
    /// was forged, modified, or moved to another session, round, protocol or recipient.
    ///
    /// Blame: whoever delivered it. The coordinator verifies every message at ingress (it holds
    /// all [`crate::NodePublic`] keys), so for the coordinator this means *the sender*
    /// misbehaved; for a recipient it means the sender *or the relay* did — the bytes cannot
    /// prove which.
    #[error("message is not signed by the claimed sender for this context")]
    BadSignature,

    /// The envelope carries the sender's valid signature but does not decrypt for us.
    ///
    /// Blame: **the sender** — its signature makes the ciphertext non-repudiable, and no relay
    /// can produce a validly signed envelope. Report the envelope as evidence.
    #[error("envelope is validly signed by the sender but does not decrypt: the sender misbehaved")]
    Undecryptable,

    /// The envelope is validly signed but addressed to another node.
    ///
    /// Blame: the relay (misrouting, or a replay of another node's message).
    #[error("envelope is addressed to another node")]
    WrongRecipient,

    /// A public key is not usable: not a valid point, or a weak (small-order) key.
    #[error("invalid public key: {0}")]
    InvalidPublicKey(&'static str),

    // ----- local configuration -----------------------------------------------------------------
    /// The key-encryption key's text is not 64 hex digits (32 bytes).
    #[error("invalid key-encryption key: {0}")]
    InvalidKek(&'static str),

    /// The KEK file can be read by group or others; refuse to use a key that may have leaked.
    #[error(
        "key-encryption key file {} is accessible by group or others (mode {mode:04o}); run `chmod 600` on it",
        path.display()
    )]
    KekFilePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// The KEK file cannot be read or written.
    #[error("key-encryption key file {}: {source}", path.display())]
    KekFile {
        /// The file.
        path: PathBuf,
        /// The I/O error (never contains file contents).
        #[source]
        source: std::io::Error,
    },

    /// The KEK environment variable is unset or not unicode.
    #[error("environment variable {var} with the key-encryption key is not set (or not unicode)")]
    KekEnv {
        /// The variable's name.
        var: String,
    },

    /// A plaintext or an associated-data field is larger than the format can carry.
    #[error("input too large: {0}")]
    TooLarge(&'static str),

    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed")]
    Rng,

    /// A cryptographic library failed in a way its inputs cannot explain (a bug, not an attack).
    #[error("internal error: {0}")]
    Internal(&'static str),
}
