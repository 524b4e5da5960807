//! Versioned byte encoding of secret material, for sealing at rest by the keystore.
//!
//! WHY a separate path: secret types in this crate have no `Serialize` of their own and print
//! `<redacted>`; the only way out is `to_bytes()`, which returns [`Zeroizing`] bytes that the
//! keystore encrypts at once. Every blob starts with a format version and a kind tag, so a share
//! written today can still be read (or refused clearly) by a later version, and a presignature can
//! never be loaded as a key share.
//!
//! Layout: `[FORMAT_VERSION, kind, CBOR(library type)...]`. The CBOR is written into a buffer of
//! exactly the right size (measured first), so no reallocation leaves partial copies of the
//! secret in freed memory. The libraries' own intermediate serde values cannot be wiped; that is
//! the "where possible" in the design.

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Version of the secret blob format.
pub const FORMAT_VERSION: u8 = 1;

/// What a secret blob holds (second byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum BlobKind {
    EcdsaKeyShare = 1,
    EcdsaIncompleteShare = 2,
    EcdsaAuxInfo = 3,
    EcdsaPresignature = 4,
    Ed25519KeyShare = 5,
    TaprootKeyShare = 6,
    PaillierPrimes = 7,
    EcdsaPresignaturePublic = 8,
    EcdsaPartialSignature = 9,
    Ed25519Nonces = 10,
    TaprootNonces = 11,
}

struct Counter(usize);
impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Encodes `value` as a versioned blob into zeroizing memory.
pub(crate) fn encode<T: serde::Serialize>(kind: BlobKind, value: &T) -> Result<Zeroizing<Vec<u8>>> {
    let mut counter = Counter(0);
    ciborium::into_writer(value, &mut counter)
        .map_err(|e| Error::internal(format!("encode {kind:?}: {e}")))?;
    let mut out = Zeroizing::new(Vec::with_capacity(counter.0 + 2));
    out.push(FORMAT_VERSION);
    out.push(kind as u8);
    ciborium::into_writer(value, &mut *out)
        .map_err(|e| Error::internal(format!("encode {kind:?}: {e}")))?;
    Ok(out)
}

/// Decodes a versioned blob of the expected kind.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(kind: BlobKind, bytes: &[u8]) -> Result<T> {
    match bytes {
        [v, k, body @ ..] => {
            if *v != FORMAT_VERSION {
                return Err(Error::input(format!(
                    "unsupported format version {v} for {kind:?} (this build reads {FORMAT_VERSION})"
                )));
            }
            if *k != kind as u8 {
                return Err(Error::input(format!(
                    "blob holds kind {k}, expected {kind:?} ({})",
                    kind as u8
                )));
            }
            ciborium::from_reader(body).map_err(|e| Error::input(format!("decode {kind:?}: {e}")))
        }
        _ => Err(Error::input(format!("{kind:?} blob too short"))),
    }
}

/// Reads the kind byte of a blob without decoding it.
pub(crate) fn peek_kind(bytes: &[u8]) -> Option<u8> {
    match bytes {
        [FORMAT_VERSION, k, ..] => Some(*k),
        _ => None,
    }
}

/// Implements `Debug` as `<redacted>` for a secret wrapper type.
macro_rules! redacted_debug {
    ($($t:ty),+ $(,)?) => {$(
        impl ::std::fmt::Debug for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(concat!(stringify!($t), "(<redacted>)"))
            }
        }
    )+};
}
pub(crate) use redacted_debug;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn round_trip_and_refusals() -> Result<()> {
        let blob = encode(BlobKind::PaillierPrimes, &vec![1u32, 2, 3])?;
        assert_eq!(blob[0], FORMAT_VERSION);
        assert_eq!(blob[1], BlobKind::PaillierPrimes as u8);
        assert_eq!(blob.len(), blob.capacity());
        let back: Vec<u32> = decode(BlobKind::PaillierPrimes, &blob)?;
        assert_eq!(back, vec![1, 2, 3]);
        assert!(decode::<Vec<u32>>(BlobKind::EcdsaKeyShare, &blob).is_err());
        let mut v2 = blob.to_vec();
        v2[0] = 2;
        assert!(decode::<Vec<u32>>(BlobKind::PaillierPrimes, &v2).is_err());
        Ok(())
    }
}
