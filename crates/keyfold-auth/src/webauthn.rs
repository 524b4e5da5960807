//! Passkeys (Fido2 credentials), verified by `webauthn-rs-core`.
//!
//! Everything WebAuthn-specific lives here; the flows in `credentials.rs` and `service.rs` see
//! three calls: start a registration, finish it, verify an assertion.
//!
//! Two Dfns conventions shape the adapter:
//! - **The challenge.** Dfns hands out a challenge *string*, and its browser SDK passes the
//!   string's UTF-8 bytes to `navigator.credentials.create()/get()`. The library generates
//!   its own random challenge inside its ceremony state, so we generate the state, then put
//!   our challenge's bytes into it (the state is plain serde data; the library documents
//!   persisting it). Nothing else in the state is touched, and every check — challenge,
//!   origin, RP id hash, user presence / verification, signature, counter — is the library's.
//! - **The relying party.** A passkey is scoped to an application: the origin the browser
//!   reports must be the expected origin of one of the organization's active client-side
//!   applications, and the authenticator data must carry that application's RP id hash. The
//!   ceremony is verified by a `WebauthnCore` built for exactly that application, so a
//!   passkey made for one origin or RP never verifies for another.
//!
//! A counter that does not move forward (when either side is non-zero) is the library's
//! `CredentialPossibleCompromise`: a cloned authenticator. The stored counter only moves
//! forward, by a conditional update in the store.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyfold_domain::DomainError;
use serde::{Deserialize, Serialize};
use url::Url;
use webauthn_rs_core::WebauthnCore;
use webauthn_rs_core::error::WebauthnError;
use webauthn_rs_core::proto::{
    AttestationConveyancePreference, AuthenticatorAssertionResponseRaw,
    AuthenticatorAttestationResponseRaw, COSEAlgorithm, COSEKeyType, Credential as WaCredential,
    PublicKeyCredential, RegisterPublicKeyCredential, UserVerificationPolicy,
};

use crate::credential::b64url;

type Result<T> = std::result::Result<T, DomainError>;

const TIMEOUT: Duration = Duration::from_secs(300);

/// The application a ceremony is verified for.
#[derive(Debug, Clone)]
pub struct RelyingPartyApp {
    pub rp_id: String,
    pub origin: String,
}

/// What a Fido2 credential row keeps (`credentials.detail`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredPasskey {
    pub rp_id: String,
    pub origin: String,
    pub credential: WaCredential,
}

/// A verified new passkey.
#[derive(Debug, Clone)]
pub struct NewPasskey {
    pub detail: String,
    pub public_key: String,
    pub counter: u32,
}

fn core(rp_name: &str, app: &RelyingPartyApp) -> Result<WebauthnCore> {
    let origin = Url::parse(&app.origin)
        .map_err(|_| DomainError::internal("an application's expected origin is not a URL"))?;
    Ok(WebauthnCore::new_unsafe_experts_only(
        rp_name,
        &app.rp_id,
        vec![origin],
        TIMEOUT,
        Some(false),
        Some(false),
    ))
}

/// Replaces the library's random challenge in a serialized ceremony state with ours.
fn with_challenge<T: Serialize + for<'de> Deserialize<'de>>(
    state: &T,
    challenge: &str,
) -> Result<T> {
    let mut v = serde_json::to_value(state)
        .map_err(|e| DomainError::internal(format!("webauthn state: {e}")))?;
    let slot = v
        .get_mut("challenge")
        .ok_or_else(|| DomainError::internal("webauthn state has no challenge"))?;
    *slot = serde_json::Value::String(URL_SAFE_NO_PAD.encode(challenge.as_bytes()));
    serde_json::from_value(v).map_err(|e| DomainError::internal(format!("webauthn state: {e}")))
}

/// The origin the browser reported in `clientDataJSON` (before anything is trusted: it only
/// picks which application's rules to verify with).
pub fn reported_origin(client_data_b64: &str) -> Result<String> {
    #[derive(Deserialize)]
    struct Cd {
        origin: String,
    }
    let raw = b64url("clientData", client_data_b64)?;
    let cd: Cd = serde_json::from_slice(&raw).map_err(|_| {
        DomainError::invalid("clientData must be the authenticator's clientDataJSON")
    })?;
    Ok(cd.origin.trim_end_matches('/').to_string())
}

/// Starts a passkey registration: the serialized ceremony state, bound to `challenge`.
pub fn start_registration(
    rp_name: &str,
    default_app: &RelyingPartyApp,
    user_id: &str,
    username: &str,
    exclude: Vec<Vec<u8>>,
    challenge: &str,
) -> Result<String> {
    let c = core(rp_name, default_app)?;
    let builder = c
        .new_challenge_register_builder(user_id.as_bytes(), username, username)
        .map_err(|e| DomainError::internal(format!("webauthn: {e}")))?
        .attestation(AttestationConveyancePreference::None)
        // Keyfold asks for user verification (PIN, biometrics): a passkey approves
        // signatures, so presence alone is not enough.
        .user_verification_policy(UserVerificationPolicy::Required)
        // RS256 passkeys are rare and their keys are not shown as PEM here.
        .credential_algorithms(vec![COSEAlgorithm::ES256, COSEAlgorithm::EDDSA])
        .exclude_credentials(Some(exclude));
    let (_, state) = c
        .generate_challenge_register(builder)
        .map_err(|e| DomainError::internal(format!("webauthn: {e}")))?;
    let state = with_challenge(&state, challenge)?;
    serde_json::to_string(&state).map_err(|e| DomainError::internal(format!("webauthn: {e}")))
}

/// Verifies an attestation against the stored registration state.
pub fn finish_registration(
    rp_name: &str,
    app: &RelyingPartyApp,
    state_json: &str,
    cred_id: &str,
    client_data_b64: &str,
    attestation_b64: &str,
) -> Result<NewPasskey> {
    let state = serde_json::from_str(state_json)
        .map_err(|e| DomainError::internal(format!("webauthn state: {e}")))?;
    let raw_id = b64url("credId", cred_id)?;
    let reg = RegisterPublicKeyCredential {
        id: cred_id.to_string(),
        raw_id,
        response: AuthenticatorAttestationResponseRaw {
            attestation_object: b64url("attestationData", attestation_b64)?,
            client_data_json: b64url("clientData", client_data_b64)?,
            transports: None,
        },
        type_: "public-key".into(),
        extensions: Default::default(),
    };
    let raw_id = reg.raw_id.clone();
    let cred = core(rp_name, app)?
        .register_credential(&reg, &state, None)
        .map_err(refusal)?;
    if cred.cred_id.as_slice() != raw_id.as_slice() {
        return Err(DomainError::invalid(
            "credId is not the id of the attested credential",
        ));
    }
    let public_key = public_key_pem(&cred);
    let counter = cred.counter;
    let detail = serde_json::to_string(&StoredPasskey {
        rp_id: app.rp_id.clone(),
        origin: app.origin.clone(),
        credential: cred,
    })
    .map_err(|e| DomainError::internal(format!("webauthn: {e}")))?;
    Ok(NewPasskey {
        detail,
        public_key,
        counter,
    })
}

/// The Fido2 assertion fields, as Dfns sends them (base64url).
#[derive(Debug)]
pub struct Fido2Assertion<'a> {
    pub cred_id: &'a str,
    pub client_data: &'a str,
    pub authenticator_data: &'a str,
    pub signature: &'a str,
    pub user_handle: Option<&'a str>,
}

/// Verifies an assertion by a stored passkey for `challenge`; returns the new counter.
pub fn verify_assertion(
    rp_name: &str,
    app: &RelyingPartyApp,
    stored_detail: &str,
    challenge: &str,
    a: &Fido2Assertion<'_>,
) -> Result<u32> {
    let stored: StoredPasskey = serde_json::from_str(stored_detail)
        .map_err(|e| DomainError::internal(format!("stored passkey: {e}")))?;
    if stored.rp_id != app.rp_id {
        return Err(DomainError::unauthenticated(
            "this passkey was registered for another relying party",
        ));
    }
    let c = core(rp_name, app)?;
    let builder = c
        .new_challenge_authenticate_builder(
            vec![stored.credential.clone()],
            Some(UserVerificationPolicy::Required),
        )
        .map_err(|e| DomainError::internal(format!("webauthn: {e}")))?;
    let (_, state) = c
        .generate_challenge_authenticate(builder)
        .map_err(|e| DomainError::internal(format!("webauthn: {e}")))?;
    let state = with_challenge(&state, challenge)?;
    let rsp = PublicKeyCredential {
        id: a.cred_id.to_string(),
        raw_id: b64url("credId", a.cred_id)?,
        response: AuthenticatorAssertionResponseRaw {
            authenticator_data: b64url("authenticatorData", a.authenticator_data)?,
            client_data_json: b64url("clientData", a.client_data)?,
            signature: b64url("signature", a.signature)?,
            user_handle: a.user_handle.map(|h| b64url("userHandle", h)).transpose()?,
        },
        extensions: Default::default(),
        type_: "public-key".into(),
    };
    let res = c
        .authenticate_single_credential(&rsp, &state, &stored.credential)
        .map_err(refusal)?;
    Ok(res.counter())
}

/// A refused ceremony: the caller's fault, said plainly (the library's error names the
/// failed check, never a secret).
fn refusal(e: WebauthnError) -> DomainError {
    match e {
        WebauthnError::CredentialPossibleCompromise => DomainError::unauthenticated(
            "the passkey's signature counter went backwards: a cloned authenticator is refused",
        ),
        WebauthnError::InvalidRPOrigin => DomainError::unauthenticated(
            "the passkey answered for another origin than this application's",
        ),
        WebauthnError::InvalidRPIDHash => DomainError::unauthenticated(
            "the passkey answered for another relying party than this application's",
        ),
        WebauthnError::MismatchedChallenge => {
            DomainError::unauthenticated("the passkey signed another challenge")
        }
        other => DomainError::unauthenticated(format!("the passkey was refused: {other}")),
    }
}

/// The passkey's public key as PEM SPKI where the curve has one here (P-256, Ed25519).
fn public_key_pem(cred: &WaCredential) -> String {
    use p256::pkcs8::EncodePublicKey as _;
    match &cred.cred.key {
        COSEKeyType::EC_EC2(k) if k.x.len() == 32 && k.y.len() == 32 => {
            let mut sec1 = Vec::with_capacity(65);
            sec1.push(4u8);
            sec1.extend_from_slice(&k.x);
            sec1.extend_from_slice(&k.y);
            p256::PublicKey::from_sec1_bytes(&sec1)
                .ok()
                .and_then(|p| p.to_public_key_pem(p256::pkcs8::LineEnding::LF).ok())
                .unwrap_or_default()
        }
        COSEKeyType::EC_OKP(k) => <[u8; 32]>::try_from(k.x.as_slice())
            .ok()
            .and_then(|x| ed25519_dalek::VerifyingKey::from_bytes(&x).ok())
            .and_then(|v| {
                ed25519_dalek::pkcs8::EncodePublicKey::to_public_key_pem(
                    &v,
                    ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF,
                )
                .ok()
            })
            .unwrap_or_default(),
        _ => String::new(),
    }
}
