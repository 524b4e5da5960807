//! [`SecretBytes`]: the only shape in which a plaintext leaves this crate.
//!
//! Why a newtype and not `Vec<u8>`: a key share that is logged, serialized into a JSON response
//! or left behind in freed memory is a key share leaked. The type makes each of those a
//! compile-time or drop-time matter:
//!
//! * zeroized when dropped (through [`Zeroizing`]), including on error paths;
//! * `Debug` prints `SecretBytes(<redacted>)`, so `{:?}` in a log line or a panic message is safe;
//! * no `Display`, no `Serialize`, no `Deref`: reading the bytes takes an explicit
//!   [`SecretBytes::expose_secret`], which is easy to find in review.
//!
//! The only way back to storage is [`crate::seal`] (the one encryption barrier).

use zeroize::{Zeroize, Zeroizing};

/// Secret plaintext bytes (a key share, aux info, a presignature, primes, a node key...).
#[derive(Clone, Default)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Takes ownership of `bytes`; they are zeroized when this value is dropped.
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(Zeroizing::new(bytes))
    }

    /// Copies `bytes` (the caller remains responsible for zeroizing its own copy).
    pub fn from_slice(bytes: &[u8]) -> Self {
        SecretBytes(Zeroizing::new(bytes.to_vec()))
    }

    /// The secret bytes. Keep the borrow short; never log or persist them except through
    /// [`crate::seal`].
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// Unwraps into a still-zeroizing buffer (for libraries that take `Zeroizing<Vec<u8>>`).
    pub fn into_zeroizing(self) -> Zeroizing<Vec<u8>> {
        self.0
    }

    /// Length in bytes (not secret for any format this crate handles).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Zeroizing<Vec<u8>>> for SecretBytes {
    fn from(bytes: Zeroizing<Vec<u8>>) -> Self {
        SecretBytes(bytes)
    }
}

impl Zeroize for SecretBytes {
    fn zeroize(&mut self) {
        self.0.zeroize();
    }
}

impl zeroize::ZeroizeOnDrop for SecretBytes {}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SecretBytes").field(&Redacted).finish()
    }
}

/// Prints `<redacted>` (without quotes) inside `Debug` output of secret types.
pub(crate) struct Redacted;

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}
