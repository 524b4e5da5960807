//! ECDSA secp256k1 signatures as the Dfns response carries them (`r`, `s`, `recid`, `encoded`),
//! and the check that one really comes from the wallet's key before we return it.
//!
//! A threshold cluster returns `(r, s)`; the recovery id is not part of the protocol's output. It
//! is the parity of the `y` coordinate of the nonce point, which we recover by trying both values
//! against the wallet's address ([`RecoverableSignature::from_cluster`]). Ethereum only accepts
//! low-s signatures (EIP-2), so a high `s` is folded to `n - s` first, which flips the parity.

use k256::ecdsa::{RecoveryId, Signature as K256Signature, VerifyingKey};

use super::{Address, B256, to_hex};
use crate::error::{Error, Result};

/// A canonical (low-s) secp256k1 signature with its recovery id (0 or 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecoverableSignature {
    r: B256,
    s: B256,
    recid: u8,
}

impl RecoverableSignature {
    /// Checks that `r` and `s` are in `[1, n)`, that `s ≤ n/2` (low-s) and that `recid` is
    /// either 0 or 1. The parts come from our signer cluster, so a failure is
    /// [`Error::SignatureMismatch`] (internal), not bad input.
    pub fn new(r: B256, s: B256, recid: u8) -> Result<Self> {
        let sig = k256_signature(r, s)?;
        if sig.normalize_s().is_some() {
            return Err(Error::SignatureMismatch(
                "s is in the upper half of the curve order (not low-s)".into(),
            ));
        }
        if recid > 1 {
            return Err(Error::SignatureMismatch(format!(
                "recovery id must be 0 or 1, got {recid}"
            )));
        }
        Ok(Self { r, s, recid })
    }

    /// Builds the signature the API returns from the cluster's raw `(r, s)` over `digest`:
    /// folds a high `s` to low-s, then finds the recovery id that recovers `expected` (the
    /// wallet's address). Fails with [`Error::SignatureMismatch`] when neither does, i.e. the
    /// signature is not from this wallet's key over this digest.
    pub fn from_cluster(digest: &B256, r: B256, s: B256, expected: &Address) -> Result<Self> {
        let sig = k256_signature(r, s)?;
        let sig = sig.normalize_s().unwrap_or(sig);
        let s = B256::from_slice(&sig.s().to_bytes());
        for recid in 0..=1 {
            let candidate = Self { r, s, recid };
            if candidate.recover_address(digest).ok().as_ref() == Some(expected) {
                return Ok(candidate);
            }
        }
        Err(Error::SignatureMismatch(format!(
            "signature over {digest} does not recover to {expected} with either recovery id"
        )))
    }

    /// `r`, 32 bytes big-endian.
    pub fn r(&self) -> B256 {
        self.r
    }

    /// `s`, 32 bytes big-endian, low-s.
    pub fn s(&self) -> B256 {
        self.s
    }

    /// The recovery id (y-parity): 0 or 1. The Dfns `recid` field.
    pub fn recid(&self) -> u8 {
        self.recid
    }

    /// `v` as `eth_sign` / `personal_sign` / `eth_signTypedData` return it: 27 + recid.
    pub fn v(&self) -> u8 {
        27 + self.recid
    }

    /// The 65-byte `r ‖ s ‖ v` form (v = 27 + recid): the Dfns `encoded` field, and what
    /// viem's `signatureToHex` produces.
    pub fn encoded(&self) -> [u8; 65] {
        let mut out = [0u8; 65];
        out[..32].copy_from_slice(self.r.as_slice());
        out[32..64].copy_from_slice(self.s.as_slice());
        out[64] = self.v();
        out
    }

    /// [`Self::encoded`] as `0x`-hex.
    pub fn encoded_hex(&self) -> String {
        to_hex(self.encoded())
    }

    /// The address whose key produced this signature over `digest`.
    pub fn recover_address(&self, digest: &B256) -> Result<Address> {
        let sig = k256_signature(self.r, self.s)?;
        let recid = RecoveryId::from_byte(self.recid).ok_or_else(|| {
            Error::SignatureMismatch(format!("invalid recovery id {}", self.recid))
        })?;
        let key = VerifyingKey::recover_from_prehash(digest.as_slice(), &sig, recid)
            .map_err(|_| Error::SignatureMismatch("no public key recovers from it".into()))?;
        Ok(Address::from_public_key(&key))
    }

    /// `Ok` when this signature over `digest` recovers to `expected`; the server calls this (or
    /// [`verify_signature`]) on every result before returning it.
    pub fn verify(&self, digest: &B256, expected: &Address) -> Result<()> {
        let got = self.recover_address(digest)?;
        if &got == expected {
            Ok(())
        } else {
            Err(Error::SignatureMismatch(format!(
                "signature over {digest} recovers to {got}, expected {expected}"
            )))
        }
    }

    pub(crate) fn to_alloy(self) -> alloy_primitives::Signature {
        alloy_primitives::Signature::from_scalars_and_parity(self.r, self.s, self.recid == 1)
    }
}

fn k256_signature(r: B256, s: B256) -> Result<K256Signature> {
    K256Signature::from_scalars(r.0, s.0).map_err(|_| {
        Error::SignatureMismatch("r or s is zero or not below the secp256k1 order".into())
    })
}

/// The Dfns `encoded` field: `0x`-hex of `r ‖ s ‖ v`, v = 27 + recid. Rejects non-canonical
/// parts (see [`RecoverableSignature::new`]).
pub fn encode_signature(r: B256, s: B256, recid: u8) -> Result<String> {
    Ok(RecoverableSignature::new(r, s, recid)?.encoded_hex())
}

/// `Ok` when `(r, s, recid)` is canonical and recovers to `expected` for `digest`.
pub fn verify_signature(
    digest: &B256,
    r: B256,
    s: B256,
    recid: u8,
    expected: &Address,
) -> Result<()> {
    RecoverableSignature::new(r, s, recid)?.verify(digest, expected)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use alloy_primitives::{U256, b256, keccak256};
    use k256::ecdsa::SigningKey;

    fn key(seed: &str) -> (SigningKey, Address) {
        let sk = SigningKey::from_slice(keccak256(seed).as_slice()).unwrap();
        let address = Address::from_public_key(sk.verifying_key());
        (sk, address)
    }

    fn sign(sk: &SigningKey, digest: &B256) -> (B256, B256, u8) {
        let (sig, recid) = sk.sign_prehash_recoverable(digest.as_slice()).unwrap();
        let (r, s) = sig.split_bytes();
        (B256::from_slice(&r), B256::from_slice(&s), recid.to_byte())
    }

    #[test]
    fn sign_recover_encode() {
        let (sk, address) = key("cow");
        assert_eq!(
            address.to_string(),
            "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"
        );
        for i in 0u8..16 {
            let digest = keccak256([i]);
            let (r, s, recid) = sign(&sk, &digest);
            let sig = RecoverableSignature::new(r, s, recid).unwrap();
            sig.verify(&digest, &address).unwrap();
            verify_signature(&digest, r, s, recid, &address).unwrap();
            let enc = sig.encoded();
            assert_eq!(&enc[..32], r.as_slice());
            assert_eq!(&enc[32..64], s.as_slice());
            assert_eq!(enc[64], 27 + recid);
            assert_eq!(encode_signature(r, s, recid).unwrap(), to_hex(enc));
            // The cluster path finds the same recovery id.
            assert_eq!(
                RecoverableSignature::from_cluster(&digest, r, s, &address).unwrap(),
                sig
            );
            // The wrong parity recovers another key.
            let flipped = RecoverableSignature::new(r, s, 1 - recid).unwrap();
            assert!(matches!(
                flipped.verify(&digest, &address),
                Err(Error::SignatureMismatch(_))
            ));
            // Another digest does not verify.
            let err = sig.verify(&keccak256([i, 1]), &address).unwrap_err();
            assert!(!err.is_bad_input());
        }
    }

    #[test]
    fn high_s_is_folded_by_from_cluster_and_rejected_elsewhere() {
        let (sk, address) = key("dog");
        let digest = keccak256(b"high s");
        let (r, s, recid) = sign(&sk, &digest);
        let n = U256::from_be_bytes(
            b256!("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141").0,
        );
        let high_s = B256::from(n - U256::from_be_bytes(s.0));
        assert!(matches!(
            RecoverableSignature::new(r, high_s, 1 - recid),
            Err(Error::SignatureMismatch(_))
        ));
        assert!(encode_signature(r, high_s, 1 - recid).is_err());
        let folded = RecoverableSignature::from_cluster(&digest, r, high_s, &address).unwrap();
        assert_eq!((folded.r(), folded.s(), folded.recid()), (r, s, recid));
        // Not our key: no recovery id works.
        let (_, other) = key("cat");
        assert!(matches!(
            RecoverableSignature::from_cluster(&digest, r, s, &other),
            Err(Error::SignatureMismatch(_))
        ));
    }

    #[test]
    fn rejects_out_of_range_parts() {
        let one = B256::with_last_byte(1);
        assert!(RecoverableSignature::new(B256::ZERO, one, 0).is_err());
        assert!(RecoverableSignature::new(one, B256::ZERO, 0).is_err());
        assert!(RecoverableSignature::new(B256::repeat_byte(0xff), one, 0).is_err());
        assert!(RecoverableSignature::new(one, one, 2).is_err());
        assert!(RecoverableSignature::new(one, one, 0).is_ok());
    }
}
