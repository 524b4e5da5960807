//! The server's at-rest seal for its own secrets (JWT signing keys): XChaCha20-Poly1305 under
//! a 256-bit key the operator provides (a file or an environment variable), a fresh random
//! nonce per record, and associated data naming the record so a sealed blob cannot be moved
//! to another row and still open.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use keyfold_domain::DomainError;
use rand::RngCore;
use zeroize::Zeroizing;

const NONCE_LEN: usize = 24;

/// A sealing key. `Debug` never shows it.
pub struct Sealer {
    cipher: XChaCha20Poly1305,
    /// A key of its own, derived from the sealing key, for identifiers that must look random
    /// but stay the same across restarts ([`Sealer::stable_id`]).
    ids: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<redacted>)")
    }
}

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Self {
        use sha2::Digest;
        let mut ids = Zeroizing::new([0u8; 32]);
        let mut h = sha2::Sha256::new();
        h.update(b"keyfold sealer: stable ids v1\0");
        h.update(key);
        ids.copy_from_slice(&h.finalize());
        Self {
            cipher: XChaCha20Poly1305::new(key.into()),
            ids,
        }
    }

    /// A base64url identifier determined by `parts` and the server secret: the same on every
    /// call and after restarts, unpredictable without the secret. (SHA-256 over a fixed-length
    /// key prefix and length-prefixed parts: a PRF for identifiers, not an authenticator.)
    pub fn stable_id(&self, parts: &[&str]) -> String {
        use base64::Engine;
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(*self.ids);
        for p in parts {
            h.update((p.len() as u64).to_be_bytes());
            h.update(p.as_bytes());
        }
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h.finalize())
    }

    /// Parses the key from 64 hex characters (surrounding whitespace ignored).
    pub fn from_hex(hex_key: &str) -> Result<Self, DomainError> {
        let bytes = Zeroizing::new(hex::decode(hex_key.trim()).map_err(|_| {
            DomainError::invalid("the server secret key must be 64 hex characters")
        })?);
        let key: Zeroizing<[u8; 32]> = Zeroizing::new(
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| DomainError::invalid("the server secret key must be 32 bytes"))?,
        );
        Ok(Self::new(&key))
    }

    /// A fresh random key, hex encoded (for `keyfold dev`'s first start).
    pub fn generate_hex() -> Zeroizing<String> {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut *key);
        Zeroizing::new(hex::encode(*key))
    }

    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, DomainError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| DomainError::internal("sealing failed"))?;
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, DomainError> {
        if sealed.len() < NONCE_LEN {
            return Err(DomainError::internal("sealed record is truncated"));
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
            .map(Zeroizing::new)
            .map_err(|_| {
                DomainError::internal(
                    "a sealed record does not open: wrong server secret key, or tampered data",
                )
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn stable_ids_depend_on_the_key_and_every_part() {
        let hex_key = Sealer::generate_hex();
        let (a, b) = (
            Sealer::from_hex(&hex_key).unwrap(),
            Sealer::from_hex(&hex_key).unwrap(),
        );
        let other = Sealer::from_hex(&Sealer::generate_hex()).unwrap();
        let id = a.stable_id(&["x", "org", "alice"]);
        assert_eq!(id, b.stable_id(&["x", "org", "alice"]), "same key, same id");
        assert_eq!(id.len(), 43);
        assert_ne!(id, other.stable_id(&["x", "org", "alice"]));
        assert_ne!(id, a.stable_id(&["x", "org", "bob"]));
        // length-prefixed: moving a boundary changes the id
        assert_ne!(id, a.stable_id(&["x", "orga", "lice"]));
    }

    #[test]
    fn seal_open_and_bind_aad() {
        let s = Sealer::from_hex(&Sealer::generate_hex()).unwrap();
        let sealed = s.seal(b"row-1", b"secret").unwrap();
        assert_eq!(&*s.open(b"row-1", &sealed).unwrap(), b"secret");
        assert!(s.open(b"row-2", &sealed).is_err());
        let mut tampered = sealed.clone();
        tampered[30] ^= 1;
        assert!(s.open(b"row-1", &tampered).is_err());
        let other = Sealer::from_hex(&Sealer::generate_hex()).unwrap();
        assert!(other.open(b"row-1", &sealed).is_err());
        assert_eq!(format!("{s:?}"), "Sealer(<redacted>)");
    }

    #[test]
    fn known_answer_opens() {
        // Golden vector: a blob sealed by this code must keep opening after upgrades.
        let s = Sealer::new(&[7u8; 32]);
        let nonce = [9u8; 24];
        let ct = s
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: b"keyfold",
                    aad: b"jwt-key/v1/jk-x",
                },
            )
            .unwrap();
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ct);
        assert_eq!(
            hex::encode(&blob),
            "090909090909090909090909090909090909090909090909\
             d5179bec13c61d07877d91a624611f9e13a9c3ef7188ca"
        );
        assert_eq!(&*s.open(b"jwt-key/v1/jk-x", &blob).unwrap(), b"keyfold");
    }
}
