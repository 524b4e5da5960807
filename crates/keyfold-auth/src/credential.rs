//! Verifying what a key credential signed.
//!
//! The Dfns key signer (`@dfns/sdk-keysigner`) signs with Node's `crypto.sign(undefined, …)`,
//! which means: ECDSA over SHA-256 with a DER signature for P-256 and secp256k1 keys, plain
//! Ed25519 for Ed25519 keys, RSASSA-PKCS1-v1_5 with SHA-256 for RSA keys. Public keys arrive
//! as PEM SubjectPublicKeyInfo. Everything here is audited libraries doing the math — the
//! RustCrypto crates, and `ring` for P-256 verification (every user action of the SDK's
//! default key signer is one; ring's is several times faster than the pure-Rust `p256`, which
//! still parses the keys) — this module only picks the right one and decodes the envelopes
//! (base64url, hex, JSON).

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use ed25519_dalek::pkcs8::DecodePublicKey as _;
use keyfold_domain::DomainError;
use keyfold_types::limits;
use rsa::pkcs1::DecodeRsaPublicKey as _;
use rsa::signature::Verifier as _;
use rsa::traits::PublicKeyParts as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};

type Result<T> = std::result::Result<T, DomainError>;

/// A credential's public key, parsed once.
#[derive(Debug, Clone)]
pub enum PublicKey {
    /// The uncompressed SEC1 point (65 bytes), as ring takes it; parsed and checked by `p256`.
    P256(Box<[u8]>),
    Secp256k1(k256::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
    Rsa(rsa::RsaPublicKey),
}

/// Smallest RSA modulus we accept (NIST SP 800-57: 2048 bits through 2030).
const RSA_MIN_BITS: usize = 2048;

impl PublicKey {
    /// Parses a PEM SubjectPublicKeyInfo (or a PKCS#1 `RSA PUBLIC KEY`).
    pub fn from_pem(pem: &str) -> Result<Self> {
        let pem = pem.trim();
        if pem.len() > limits::PUBLIC_KEY_MAX {
            return Err(DomainError::invalid("publicKey is too long"));
        }
        if let Ok(k) = p256::PublicKey::from_public_key_pem(pem) {
            use p256::elliptic_curve::sec1::ToEncodedPoint as _;
            return Ok(Self::P256(k.to_encoded_point(false).as_bytes().into()));
        }
        if let Ok(k) = k256::PublicKey::from_public_key_pem(pem) {
            return Ok(Self::Secp256k1(k.into()));
        }
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
            return Ok(Self::Ed25519(k));
        }
        let rsa = rsa::RsaPublicKey::from_public_key_pem(pem)
            .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(pem));
        if let Ok(k) = rsa {
            if k.size() * 8 < RSA_MIN_BITS {
                return Err(DomainError::invalid(format!(
                    "RSA keys must have at least {RSA_MIN_BITS} bits"
                )));
            }
            return Ok(Self::Rsa(k));
        }
        Err(DomainError::invalid(
            "publicKey must be a PEM public key: ECDSA P-256 or secp256k1, Ed25519, or RSA",
        ))
    }

    /// Verifies `signature` over `message` as Node's `crypto.sign(undefined, …)` makes it.
    /// `algorithm` is the optional hint the SDK may send; only SHA-256 variants exist here.
    pub fn verify(&self, message: &[u8], signature: &[u8], algorithm: Option<&str>) -> Result<()> {
        check_algorithm(self, algorithm)?;
        let ok = match self {
            Self::P256(point) => {
                // DER as Node makes it, or the raw 64-byte r‖s some clients send.
                let with = |alg| {
                    ring::signature::UnparsedPublicKey::new(alg, &point[..])
                        .verify(message, signature)
                        .is_ok()
                };
                // The raw form only when the bytes are not DER at all (as before: one reading
                // of the bytes, never two tries at a signature).
                if p256::ecdsa::Signature::from_der(signature).is_ok() {
                    with(&ring::signature::ECDSA_P256_SHA256_ASN1)
                } else {
                    signature.len() == 64 && with(&ring::signature::ECDSA_P256_SHA256_FIXED)
                }
            }
            Self::Secp256k1(k) => {
                let sig = k256::ecdsa::Signature::from_der(signature)
                    .or_else(|_| k256::ecdsa::Signature::from_slice(signature))
                    .map_err(|_| bad_signature())?;
                // OpenSSL does not normalise s; Bitcoin-style low-s is not a rule here.
                let sig = sig.normalize_s().unwrap_or(sig);
                k.verify(message, &sig).is_ok()
            }
            Self::Ed25519(k) => {
                let sig =
                    ed25519_dalek::Signature::from_slice(signature).map_err(|_| bad_signature())?;
                k.verify_strict(message, &sig).is_ok()
            }
            Self::Rsa(k) => {
                let vk = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(k.clone());
                let sig =
                    rsa::pkcs1v15::Signature::try_from(signature).map_err(|_| bad_signature())?;
                vk.verify(message, &sig).is_ok()
            }
        };
        if ok { Ok(()) } else { Err(bad_signature()) }
    }

    pub fn kind_name(&self) -> &'static str {
        match self {
            Self::P256(_) => "ECDSA P-256",
            Self::Secp256k1(_) => "ECDSA secp256k1",
            Self::Ed25519(_) => "Ed25519",
            Self::Rsa(_) => "RSA",
        }
    }
}

fn check_algorithm(key: &PublicKey, algorithm: Option<&str>) -> Result<()> {
    let Some(a) = algorithm else { return Ok(()) };
    let a = a.trim().to_ascii_uppercase();
    let ok = match key {
        PublicKey::Rsa(_) => matches!(a.as_str(), "" | "SHA256" | "SHA-256" | "RSA-SHA256"),
        PublicKey::Ed25519(_) => matches!(a.as_str(), "" | "ED25519" | "EDDSA"),
        _ => matches!(a.as_str(), "" | "SHA256" | "SHA-256"),
    };
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(format!(
            "algorithm {a} is not supported for {} keys",
            key.kind_name()
        )))
    }
}

fn bad_signature() -> DomainError {
    DomainError::unauthenticated("the credential's signature does not verify")
}

/// Decodes base64url, padded or not (the SDK strips padding; other clients may not).
pub fn b64url(field: &str, value: &str) -> Result<Vec<u8>> {
    if value.len() > limits::BLOB_MAX {
        return Err(DomainError::invalid(format!("{field} is too long")));
    }
    URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .or_else(|_| URL_SAFE.decode(value))
        .map_err(|_| DomainError::invalid(format!("{field} is not valid base64url")))
}

/// The JSON a key credential wraps the challenge in.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientData {
    #[serde(rename = "type")]
    pub kind: String,
    pub challenge: String,
    pub origin: Option<String>,
    pub cross_origin: Option<bool>,
}

impl ClientData {
    /// Decodes base64url clientData and checks it is of `expected_type` over `challenge`.
    pub fn decode_and_check(raw: &[u8], expected_type: &str, challenge: &str) -> Result<Self> {
        let cd: ClientData = serde_json::from_slice(raw)
            .map_err(|_| DomainError::invalid("clientData is not the expected JSON object"))?;
        if cd.kind != expected_type {
            return Err(DomainError::unauthenticated(format!(
                "clientData type must be {expected_type}"
            )));
        }
        if !keyfold_domain::secrets::ct_eq(&cd.challenge, challenge) {
            return Err(DomainError::unauthenticated(
                "clientData was signed for another challenge",
            ));
        }
        Ok(cd)
    }
}

/// A key credential's assertion over a challenge (`type: key.get`).
#[derive(Debug)]
pub struct KeyAssertion<'a> {
    pub client_data_b64: &'a str,
    pub signature_b64: &'a str,
    pub algorithm: Option<&'a str>,
}

impl KeyAssertion<'_> {
    /// Checks clientData names `challenge` and the signature over the clientData bytes.
    pub fn verify(&self, key: &PublicKey, challenge: &str) -> Result<ClientData> {
        let raw = b64url("clientData", self.client_data_b64)?;
        let sig = b64url("signature", self.signature_b64)?;
        let cd = ClientData::decode_and_check(&raw, "key.get", challenge)?;
        key.verify(&raw, &sig, self.algorithm)?;
        Ok(cd)
    }
}

/// `attestationData` of a new key credential.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyAttestationData {
    public_key: String,
    signature: String,
    algorithm: Option<String>,
}

/// A verified new key credential.
#[derive(Debug)]
pub struct AttestedKey {
    pub public_key_pem: String,
    pub algorithm: Option<String>,
    pub key: PublicKey,
    pub origin: Option<String>,
}

/// Verifies a new key credential's proof of possession: clientData is
/// `{"type":"key.create","challenge":…}` and the key signed the canonical JSON
/// `{"clientDataHash":hex(sha256(clientData)),"publicKey":PEM}` — the key vouches for itself
/// and for the challenge, so a key cannot be swapped in transit.
pub fn verify_key_attestation(
    client_data_b64: &str,
    attestation_b64: &str,
    challenge: &str,
) -> Result<AttestedKey> {
    let raw_cd = b64url("clientData", client_data_b64)?;
    let cd = ClientData::decode_and_check(&raw_cd, "key.create", challenge)?;
    let raw_att = b64url("attestationData", attestation_b64)?;
    let att: KeyAttestationData = serde_json::from_slice(&raw_att).map_err(|_| {
        DomainError::invalid("attestationData must be JSON {publicKey, signature, algorithm?}")
    })?;
    let key = PublicKey::from_pem(&att.public_key)?;
    let sig = hex::decode(att.signature.trim())
        .map_err(|_| DomainError::invalid("attestationData.signature must be hex"))?;
    // Exactly what JSON.stringify({clientDataHash, publicKey}) produces: that key order, no
    // whitespace, JSON string escaping (serde_json escapes like JavaScript for these values).
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let canonical = format!(
        "{{\"clientDataHash\":{},\"publicKey\":{}}}",
        quote(&hex::encode(Sha256::digest(&raw_cd))),
        quote(&att.public_key)
    );
    key.verify(canonical.as_bytes(), &sig, att.algorithm.as_deref())?;
    Ok(AttestedKey {
        public_key_pem: att.public_key,
        algorithm: att.algorithm,
        key,
        origin: cd.origin,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ed25519_dalek::pkcs8::EncodePublicKey as _;
    use rand::rngs::OsRng;
    use rsa::pkcs8::LineEnding;
    use rsa::signature::{SignatureEncoding as _, Signer as _};

    fn client_data(kind: &str, challenge: &str) -> Vec<u8> {
        format!("{{\"type\":\"{kind}\",\"challenge\":\"{challenge}\"}}").into_bytes()
    }

    fn check_all_paths(pem: &str, sign: impl Fn(&[u8]) -> Vec<u8>) {
        let key = PublicKey::from_pem(pem).unwrap();
        let cd = client_data("key.get", "ch1");
        let cd_b64 = URL_SAFE_NO_PAD.encode(&cd);
        let sig_b64 = URL_SAFE_NO_PAD.encode(sign(&cd));
        let a = KeyAssertion {
            client_data_b64: &cd_b64,
            signature_b64: &sig_b64,
            algorithm: None,
        };
        a.verify(&key, "ch1").unwrap();
        // Another challenge, a tampered clientData, a wrong type: all refused.
        assert!(a.verify(&key, "ch2").is_err());
        let other = URL_SAFE_NO_PAD.encode(client_data("key.get", "ch1 "));
        assert!(
            KeyAssertion {
                client_data_b64: &other,
                ..a
            }
            .verify(&key, "ch1")
            .is_err()
        );
        let create = client_data("key.create", "ch1");
        let create_b64 = URL_SAFE_NO_PAD.encode(&create);
        let create_sig = URL_SAFE_NO_PAD.encode(sign(&create));
        assert!(
            KeyAssertion {
                client_data_b64: &create_b64,
                signature_b64: &create_sig,
                algorithm: None
            }
            .verify(&key, "ch1")
            .is_err()
        );

        // Attestation over the canonical fingerprint.
        let cd = client_data("key.create", "reg");
        let fp = format!(
            "{{\"clientDataHash\":\"{}\",\"publicKey\":{}}}",
            hex::encode(Sha256::digest(&cd)),
            serde_json::to_string(pem).unwrap()
        );
        let att =
            serde_json::json!({"publicKey": pem, "signature": hex::encode(sign(fp.as_bytes()))});
        let att_b64 = URL_SAFE_NO_PAD.encode(att.to_string());
        let cd_b64 = URL_SAFE_NO_PAD.encode(&cd);
        verify_key_attestation(&cd_b64, &att_b64, "reg").unwrap();
        assert!(verify_key_attestation(&cd_b64, &att_b64, "other").is_err());
    }

    #[test]
    fn p256_der_raw_and_high_s() {
        let sk = p256::ecdsa::SigningKey::random(&mut OsRng);
        let pem = p256::PublicKey::from(sk.verifying_key())
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        // DER as Node signs; the raw 64-byte r‖s some clients send; and high s, as OpenSSL
        // may produce (valid ECDSA, so it verifies).
        let encodings: [fn(p256::ecdsa::Signature) -> Vec<u8>; 3] = [
            |s| s.to_der().as_bytes().to_vec(),
            |s| s.to_bytes().to_vec(),
            |s| {
                let (r, s) = s.split_scalars();
                let high = p256::ecdsa::Signature::from_scalars(r, -*s).unwrap();
                high.to_der().as_bytes().to_vec()
            },
        ];
        for encode in encodings {
            check_all_paths(&pem, |m| encode(sk.sign(m)));
        }
    }

    #[test]
    fn secp256k1_der_high_s() {
        let sk = k256::ecdsa::SigningKey::random(&mut OsRng);
        let pem = k256::PublicKey::from(sk.verifying_key())
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        check_all_paths(&pem, |m| {
            let s: k256::ecdsa::Signature = sk.sign(m);
            // Flip to high-s as OpenSSL may produce; must still verify.
            let (r, s) = s.split_scalars();
            let high = k256::ecdsa::Signature::from_scalars(r, -*s).unwrap();
            high.to_der().as_bytes().to_vec()
        });
    }

    #[test]
    fn ed25519() {
        let sk = ed25519_dalek::SigningKey::generate(&mut OsRng);
        let pem = sk
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        check_all_paths(&pem, |m| sk.sign(m).to_bytes().to_vec());
    }

    #[test]
    fn rsa_pkcs1v15_sha256() {
        let sk = rsa::RsaPrivateKey::new(&mut OsRng, 2048).unwrap();
        let pem = sk
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(sk);
        check_all_paths(&pem, |m| signer.sign(m).to_vec());
    }

    #[test]
    fn rejects_garbage_keys_and_small_rsa() {
        assert!(PublicKey::from_pem("not a key").is_err());
        let sk = rsa::RsaPrivateKey::new(&mut OsRng, 1024).unwrap();
        let pem = sk
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        assert!(PublicKey::from_pem(&pem).is_err());
    }

    #[test]
    fn signature_by_another_key_fails() {
        let sk = p256::ecdsa::SigningKey::random(&mut OsRng);
        let other = p256::ecdsa::SigningKey::random(&mut OsRng);
        let pem = p256::PublicKey::from(sk.verifying_key())
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let key = PublicKey::from_pem(&pem).unwrap();
        let s: p256::ecdsa::Signature = other.sign(b"m");
        assert!(key.verify(b"m", s.to_der().as_bytes(), None).is_err());
    }
}
