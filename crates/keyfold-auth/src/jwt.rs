//! Access tokens: EdDSA (Ed25519) JWTs under a rotatable key set.
//!
//! The newest key signs; every key still in the store verifies, so a rotation never logs
//! anybody out. Private keys live in the store only sealed under the server secret. The
//! payload carries the organization at `["https://custom/app_metadata"].orgId`, which the
//! Dfns SDK checks before sending a request.
//!
//! A JWT proves only that *we* issued it. Whether it still counts (logout, deactivation,
//! expiry) is decided per request against the token's row — see `AuthService::authenticate`.

use std::collections::HashMap;

use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use keyfold_domain::DomainError;
use keyfold_domain::ids::{IdKind, new_id};
use keyfold_domain::model::JwtKey;
use keyfold_domain::time::Timestamp;
use serde::{Deserialize, Serialize};

use crate::sealer::Sealer;

pub const ISSUER: &str = "keyfold";
pub const APP_METADATA_CLAIM: &str = "https://custom/app_metadata";

/// Who a token is for: the API, or only the registration endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Api,
    Registration,
}

impl Audience {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "keyfold:api",
            Self::Registration => "keyfold:registration",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AppMetadata {
    pub org_id: String,
    pub user_id: String,
    pub token_kind: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The identity (user or service account) id.
    pub sub: String,
    /// The token's row id (`to-…`), or the registration challenge id for temporary tokens.
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(rename = "https://custom/username")]
    pub username: String,
    #[serde(rename = "https://custom/app_metadata")]
    pub app_metadata: AppMetadata,
}

/// Why a token did not verify. `UnknownKey` may mean another replica rotated: reload and retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    UnknownKey,
    Invalid(&'static str),
}

struct SigningKey {
    kid: String,
    key: EncodingKey,
}

/// The loaded key set.
pub struct KeySet {
    current: Option<SigningKey>,
    verifiers: HashMap<String, DecodingKey>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("current", &self.current.as_ref().map(|c| &c.kid))
            .field("verifiers", &self.verifiers.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn aad(kid: &str) -> Vec<u8> {
    format!("keyfold/jwt-key/v1/{kid}").into_bytes()
}

/// A fresh signing key record: Ed25519, private half sealed.
pub fn new_key_record(sealer: &Sealer, now: Timestamp) -> Result<JwtKey, DomainError> {
    let sk = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let kid = new_id(IdKind::JwtKey);
    let der = sk
        .to_pkcs8_der()
        .map_err(|e| DomainError::internal(format!("encoding jwt key: {e}")))?;
    Ok(JwtKey {
        sealed_private_key: sealer.seal(&aad(&kid), der.as_bytes())?,
        public_key: sk.verifying_key().to_bytes().to_vec(),
        kid,
        alg: "EdDSA".into(),
        is_current: true,
        created_at: now,
    })
}

impl KeySet {
    /// Builds the set from stored records: the current one (newest if several claim it)
    /// signs, all verify.
    pub fn from_records(records: &[JwtKey], sealer: &Sealer) -> Result<Self, DomainError> {
        let mut verifiers = HashMap::new();
        for r in records {
            if r.alg != "EdDSA" || r.public_key.len() != 32 {
                return Err(DomainError::internal(format!(
                    "jwt key {} is malformed",
                    r.kid
                )));
            }
            verifiers.insert(r.kid.clone(), DecodingKey::from_ed_der(&r.public_key));
        }
        let current = records
            .iter()
            .filter(|r| r.is_current)
            .max_by_key(|r| (r.created_at, r.kid.clone()))
            .map(|r| -> Result<SigningKey, DomainError> {
                let der = sealer.open(&aad(&r.kid), &r.sealed_private_key)?;
                Ok(SigningKey {
                    kid: r.kid.clone(),
                    key: EncodingKey::from_ed_der(&der),
                })
            })
            .transpose()?;
        Ok(Self { current, verifiers })
    }

    pub fn current_kid(&self) -> Option<&str> {
        self.current.as_ref().map(|c| c.kid.as_str())
    }

    pub fn issue(&self, claims: &Claims) -> Result<String, DomainError> {
        let signing = self
            .current
            .as_ref()
            .ok_or_else(|| DomainError::internal("no current jwt signing key"))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(signing.kid.clone());
        jsonwebtoken::encode(&header, claims, &signing.key)
            .map_err(|e| DomainError::internal(format!("signing jwt: {e}")))
    }

    /// Checks signature, issuer, audience and expiry (against `now`, our clock).
    pub fn verify(
        &self,
        token: &str,
        audience: Audience,
        now: Timestamp,
    ) -> Result<Claims, VerifyError> {
        if token.len() > 4096 {
            return Err(VerifyError::Invalid("the token is too long"));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| VerifyError::Invalid("the token is not a JWT"))?;
        if header.alg != Algorithm::EdDSA {
            return Err(VerifyError::Invalid(
                "the token is not signed by this server",
            ));
        }
        let kid = header
            .kid
            .ok_or(VerifyError::Invalid("the token names no signing key"))?;
        let key = self.verifiers.get(&kid).ok_or(VerifyError::UnknownKey)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[audience.as_str()]);
        // Expiry is checked below against our clock, which tests can move.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|_| VerifyError::Invalid("the token's signature or claims are invalid"))?;
        if data.claims.exp.saturating_mul(1000) <= now.millis() {
            return Err(VerifyError::Invalid("the token has expired"));
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn claims(now: Timestamp, aud: Audience) -> Claims {
        Claims {
            iss: ISSUER.into(),
            aud: aud.as_str().into(),
            sub: "us-1".into(),
            jti: "to-1".into(),
            iat: now.millis() / 1000,
            exp: now.millis() / 1000 + 60,
            username: "a@b.c".into(),
            app_metadata: AppMetadata {
                org_id: "or-1".into(),
                user_id: "us-1".into(),
                token_kind: "Token".into(),
            },
        }
    }

    #[test]
    fn issue_verify_rotate() {
        let sealer = Sealer::from_hex(&Sealer::generate_hex()).unwrap();
        let now = Timestamp(1_700_000_000_000);
        let k1 = new_key_record(&sealer, now).unwrap();
        let set1 = KeySet::from_records(std::slice::from_ref(&k1), &sealer).unwrap();
        let t1 = set1.issue(&claims(now, Audience::Api)).unwrap();
        assert_eq!(set1.verify(&t1, Audience::Api, now).unwrap().jti, "to-1");
        // Wrong audience, expired, tampered.
        assert!(set1.verify(&t1, Audience::Registration, now).is_err());
        assert!(set1.verify(&t1, Audience::Api, now.plus_secs(61)).is_err());
        let mut parts: Vec<&str> = t1.split('.').collect();
        let forged_payload = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            serde_json::to_vec(&Claims {
                sub: "us-2".into(),
                ..claims(now, Audience::Api)
            })
            .unwrap(),
        );
        parts[1] = &forged_payload;
        assert!(set1.verify(&parts.join("."), Audience::Api, now).is_err());

        // Rotation: the new key signs, the old token still verifies.
        let mut k1_old = k1.clone();
        k1_old.is_current = false;
        let k2 = new_key_record(&sealer, now.plus_secs(1)).unwrap();
        let set2 = KeySet::from_records(&[k1_old, k2.clone()], &sealer).unwrap();
        assert_eq!(set2.current_kid(), Some(k2.kid.as_str()));
        assert!(set2.verify(&t1, Audience::Api, now).is_ok());
        let t2 = set2.issue(&claims(now, Audience::Api)).unwrap();
        assert_eq!(
            set1.verify(&t2, Audience::Api, now),
            Err(VerifyError::UnknownKey)
        );
    }

    #[test]
    fn rejects_none_and_garbage() {
        let sealer = Sealer::from_hex(&Sealer::generate_hex()).unwrap();
        let now = Timestamp(1_700_000_000_000);
        let set = KeySet::from_records(&[new_key_record(&sealer, now).unwrap()], &sealer).unwrap();
        assert!(set.verify("garbage", Audience::Api, now).is_err());
        // alg=none with a valid-looking payload.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4In0.";
        assert!(set.verify(none, Audience::Api, now).is_err());
    }
}
