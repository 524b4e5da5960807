//! Key credentials on the client side: the private key stays here; the server sees
//! signatures and the public key only.
//!
//! Signatures are exactly what the Dfns key signer produces with Node's `crypto.sign`:
//! ECDSA over SHA-256 in DER for P-256 and secp256k1, plain Ed25519.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyfold_types::auth::{Assertion, ChallengeResponse, CredentialInfo, KeyCredentialAssertion};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{Error, Result};

#[derive(Clone)]
enum Key {
    P256(p256::ecdsa::SigningKey),
    Secp256k1(k256::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
}

/// A key credential: its id and private key.
#[derive(Clone)]
pub struct KeySigner {
    cred_id: String,
    key: Key,
}

impl std::fmt::Debug for KeySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySigner")
            .field("cred_id", &self.cred_id)
            .field("key", &"<redacted>")
            .finish()
    }
}

fn signer_err(e: impl std::fmt::Display) -> Error {
    Error::Signer(e.to_string())
}

impl KeySigner {
    /// From a PKCS#8 PEM private key (P-256, secp256k1 or Ed25519).
    pub fn from_pkcs8_pem(cred_id: &str, pem: &str) -> Result<Self> {
        let key = if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_pem(pem) {
            Key::P256(k)
        } else if let Ok(k) = k256::ecdsa::SigningKey::from_pkcs8_pem(pem) {
            Key::Secp256k1(k)
        } else if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
            Key::Ed25519(k)
        } else {
            return Err(Error::Signer(
                "privateKey must be a PKCS#8 PEM key: P-256, secp256k1 or Ed25519".into(),
            ));
        };
        Ok(Self {
            cred_id: cred_id.into(),
            key,
        })
    }

    /// A fresh P-256 credential with a random credential id.
    pub fn generate_p256() -> Self {
        Self {
            cred_id: random_cred_id(),
            key: Key::P256(p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng)),
        }
    }

    pub fn generate_secp256k1() -> Self {
        Self {
            cred_id: random_cred_id(),
            key: Key::Secp256k1(k256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng)),
        }
    }

    pub fn generate_ed25519() -> Self {
        Self {
            cred_id: random_cred_id(),
            key: Key::Ed25519(ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng)),
        }
    }

    pub fn cred_id(&self) -> &str {
        &self.cred_id
    }

    pub fn private_key_pem(&self) -> Result<Zeroizing<String>> {
        let pem = match &self.key {
            Key::P256(k) => k.to_pkcs8_pem(LineEnding::LF).map_err(signer_err)?,
            Key::Secp256k1(k) => k.to_pkcs8_pem(LineEnding::LF).map_err(signer_err)?,
            Key::Ed25519(k) => k.to_pkcs8_pem(LineEnding::LF).map_err(signer_err)?,
        };
        Ok(Zeroizing::new(pem.to_string()))
    }

    pub fn public_key_pem(&self) -> Result<String> {
        match &self.key {
            Key::P256(k) => {
                p256::PublicKey::from(k.verifying_key()).to_public_key_pem(LineEnding::LF)
            }
            Key::Secp256k1(k) => {
                k256::PublicKey::from(k.verifying_key()).to_public_key_pem(LineEnding::LF)
            }
            Key::Ed25519(k) => k.verifying_key().to_public_key_pem(LineEnding::LF),
        }
        .map_err(signer_err)
    }

    /// Signs `data` (SHA-256 ECDSA in DER, or Ed25519).
    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        use p256::ecdsa::signature::Signer;
        match &self.key {
            Key::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign(data);
                s.to_der().as_bytes().to_vec()
            }
            Key::Secp256k1(k) => {
                let s: k256::ecdsa::Signature = k.sign(data);
                s.to_der().as_bytes().to_vec()
            }
            Key::Ed25519(k) => k.sign(data).to_bytes().to_vec(),
        }
    }

    /// Answers a login or action challenge, as `@dfns/sdk-keysigner` does.
    pub fn assert(&self, challenge: &ChallengeResponse) -> Result<Assertion> {
        if !challenge
            .allow_credentials
            .key
            .iter()
            .any(|c| c.id == self.cred_id)
        {
            return Err(Error::Signer(format!(
                "credential {} is not among the challenge's allowed credentials",
                self.cred_id
            )));
        }
        let client_data =
            serde_json::json!({"type": "key.get", "challenge": challenge.challenge}).to_string();
        Ok(Assertion::Key {
            credential_assertion: KeyCredentialAssertion {
                cred_id: self.cred_id.clone(),
                client_data: URL_SAFE_NO_PAD.encode(client_data.as_bytes()),
                signature: URL_SAFE_NO_PAD.encode(self.sign(client_data.as_bytes())),
                algorithm: None,
            },
        })
    }

    /// Proves possession of this new key for a registration challenge.
    pub fn attest(&self, challenge: &str, origin: &str) -> Result<CredentialInfo> {
        let client_data = serde_json::json!({
            "type": "key.create",
            "challenge": challenge,
            "origin": origin,
            "crossOrigin": false,
        })
        .to_string();
        let public_key = self.public_key_pem()?;
        let fingerprint = format!(
            "{{\"clientDataHash\":{},\"publicKey\":{}}}",
            serde_json::to_string(&hex::encode(Sha256::digest(client_data.as_bytes())))
                .map_err(signer_err)?,
            serde_json::to_string(&public_key).map_err(signer_err)?
        );
        let attestation = serde_json::json!({
            "publicKey": public_key,
            "signature": hex::encode(self.sign(fingerprint.as_bytes())),
        })
        .to_string();
        Ok(CredentialInfo {
            cred_id: self.cred_id.clone(),
            client_data: URL_SAFE_NO_PAD.encode(client_data.as_bytes()),
            attestation_data: URL_SAFE_NO_PAD.encode(attestation.as_bytes()),
        })
    }
}

fn random_cred_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}
