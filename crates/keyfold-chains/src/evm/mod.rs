//! Ethereum and the EVM family: addresses, the digests a Dfns signature request asks us to sign,
//! and the encodings we return.
//!
//! # What a signature request becomes
//!
//! The threshold cluster signs a 32-byte digest and nothing else. This module turns each EVM
//! signature kind of the Dfns API into that digest, and turns the cluster's `(r, s, recid)` back
//! into what the response carries:
//!
//! | `kind` | digest | `signedData` |
//! | --- | --- | --- |
//! | `Hash` | the 32 bytes given ([`parse_hash`]) | — |
//! | `Message`, `Eip191` (EVM wallet) | [`message_digest`]: EIP-191 `personal_sign` | — |
//! | `Eip712` | [`eip712_digest`]: EIP-712 signing hash | — |
//! | `Transaction` | [`UnsignedTransaction::signing_hash`] | [`SignedTransaction::raw`] |
//!
//! `signature.encoded` is [`encode_signature`] (`r‖s‖v`, v = 27 + recid), which is what
//! `@dfns/lib-viem` and every EVM wallet expect from `eth_sign`-style calls. `@dfns/lib-viem`
//! also re-serializes transactions itself from `{r, s, v: recid ? 28 : 27}`, so `recid` must be
//! the y-parity of the low-s signature — [`RecoverableSignature::from_cluster`] computes it.
//!
//! # Why the checks are strict
//!
//! Whatever we hash is what the user's signed action approved and what the policy engine
//! inspected. So every parser here accepts one canonical encoding only: an unsigned transaction
//! must re-encode to exactly the bytes received (no trailing data, no non-zero EIP-155 sentinels,
//! no non-canonical integers), typed data must satisfy the same rules as viem's
//! `validateTypedData` (checksummed addresses, exact `bytesN` sizes, sized integer types), and a
//! signature is returned only after it recovers to the wallet's address ([`verify_signature`]).
//!
//! # Why alloy
//!
//! RLP, EIP-2718/155/1559/2930 and EIP-712 are easy to get subtly wrong. Every encoder and hash
//! here is from the maintained `alloy` crates (pinned in `Cargo.toml`); this module only adds the
//! Dfns-facing shapes, strictness and error messages, and its tests compare the result with viem,
//! an independent implementation (`tests/viem_vectors.rs`).

mod address;
mod eip712;
pub mod fees;
mod message;
mod signature;
mod transaction;
pub mod transfer;

pub use address::{address_from_public_key, checksum, parse_address};
pub use eip712::{eip712_digest, eip712_preimage};
pub use message::{message_digest, message_preimage};
pub use signature::{RecoverableSignature, encode_signature, verify_signature};
pub use transaction::{SignedTransaction, TxType, UnsignedTransaction};

/// 20-byte account address; `Display` prints the EIP-55 checksum form.
pub use alloy_primitives::Address;
/// 32-byte value (digests, r, s, transaction hashes).
pub use alloy_primitives::B256;
/// 256-bit unsigned integer (amounts in wei).
pub use alloy_primitives::U256;

use crate::error::{Error, Result, clip};

/// Decodes a hex string as Dfns sends it (`0x`-prefixed; the prefix is optional here), naming
/// `what` in the error.
pub fn parse_hex(s: &str, what: &str) -> Result<Vec<u8>> {
    alloy_primitives::hex::decode(s)
        .map_err(|e| Error::invalid(format!("{what} is not valid hex ({e}): `{}`", clip(s))))
}

/// Parses the `hash` of a `Hash` signature request: exactly 32 bytes of hex.
pub fn parse_hash(s: &str) -> Result<B256> {
    let bytes = parse_hex(s, "hash")?;
    B256::try_from(bytes.as_slice()).map_err(|_| {
        Error::invalid(format!(
            "hash must be 32 bytes of hex, got {} bytes",
            bytes.len()
        ))
    })
}

/// Lower-case `0x`-prefixed hex, the form of every hex field in a Dfns response.
pub fn to_hex(bytes: impl AsRef<[u8]>) -> String {
    alloy_primitives::hex::encode_prefixed(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn hex_helpers() {
        assert_eq!(parse_hex("0x0aFf", "message").unwrap(), vec![0x0a, 0xff]);
        assert_eq!(parse_hex("0aff", "message").unwrap(), vec![0x0a, 0xff]);
        assert_eq!(parse_hex("0x", "message").unwrap(), Vec::<u8>::new());
        let err = parse_hex("0xabc", "message").unwrap_err();
        assert!(err.is_bad_input());
        assert!(
            err.to_string().starts_with("message is not valid hex"),
            "{err}"
        );
        assert!(parse_hex("0xzz", "message").is_err());
        assert_eq!(to_hex([0xab, 0x01]), "0xab01");
        let h = format!("0x{}", "11".repeat(32));
        assert_eq!(parse_hash(&h).unwrap(), B256::repeat_byte(0x11));
        assert_eq!(
            parse_hash("0x1111").unwrap_err().to_string(),
            "hash must be 32 bytes of hex, got 2 bytes"
        );
    }
}
