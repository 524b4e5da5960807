//! A registered user's credentials: adding one (from this device, or from another with a
//! one-time code), listing, activating and deactivating.
//!
//! ```text
//! add      POST /auth/credentials/init {kind}        → challenge (Fido2: WebAuthn options)
//!          POST /auth/credentials  + user action     → attestation verified → credential
//! code     POST /auth/credentials/code + user action → a one-time code, shown once
//!          POST /auth/credentials/code/init (no token) {credentialKind, code} → challenge
//!          POST /auth/credentials/code/verify (no token) → attestation verified → credential
//! ```
//!
//! Adding a credential is the most powerful thing a session can do — the new credential can
//! log in as the user from then on — so it is signed by an existing credential (the user
//! action), never open to a personal access token (which would otherwise turn a narrow PAT
//! into its user's full power) and never to a service account (one key, by design).
//!
//! Every challenge records the kind it was issued for (and, for Fido2, the WebAuthn
//! ceremony state). A code is spent in the transaction that stores the challenge it buys,
//! and the challenge in the one that stores the credential: one code, one challenge, one
//! credential at most.

use keyfold_domain::DomainError;
use keyfold_domain::authz::Principal;
use keyfold_domain::ids::{IdKind, looks_like, new_id};
use keyfold_domain::model::{
    AppKind, Challenge, ChallengeKind, CodePurpose, Credential, OneTimeCode, TokenKind, User,
};
use keyfold_domain::ports::CredentialToggle;
use keyfold_domain::secrets::{code_hash, new_code, random_b64};
use keyfold_domain::time::Timestamp;
use keyfold_domain::validate;
use keyfold_types::auth::{
    AllowCredential, Attestation, AuthenticatorSelection, CreateCredentialBody,
    CreateCredentialChallengeBody, CreateCredentialChallengeWithCodeBody, CreateCredentialCodeBody,
    CredentialChallengeResponse, CredentialCodeResponse, CredentialInfo, CredentialKind,
    CredentialResponse, MessageResponse, NewCredential, PubKeyCredParam, RegistrationUser,
    RelyingParty, UserVerification,
};
use keyfold_types::limits;
use serde::{Deserialize, Serialize};

use crate::credential::{b64url, verify_key_attestation};
use crate::service::{AuthService, Result};
use crate::webauthn::{self, RelyingPartyApp, StoredPasskey};

/// The longest a credential code may live.
pub const MAX_CODE_SECS: i64 = 24 * 3600;
/// The shortest.
pub const MIN_CODE_SECS: i64 = 60;
/// Largest `encryptedPrivateKey` kept.
const ENCRYPTED_KEY_MAX: usize = 16_384;

/// What a credential challenge was issued for (`challenges.detail`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChallengeDetail {
    kind: CredentialKind,
    /// Fido2: the WebAuthn registration state (webauthn-rs-core), JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    webauthn: Option<String>,
    /// The code flow: the code this challenge was opened with (spent when it was opened).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code_id: Option<String>,
    /// Totp: the sealed secret being enrolled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    totp: Option<String>,
}

fn not_found(uuid: &str) -> DomainError {
    DomainError::not_found(format!("credential {uuid} not found"))
}

fn bad_code() -> DomainError {
    DomainError::unauthenticated("the credential code is unknown, used or expired")
}

/// Only a person acting as themselves changes their credentials.
fn as_person(caller: &Principal) -> Result<()> {
    if caller.token_kind == TokenKind::Pat {
        return Err(DomainError::denied(
            "a personal access token cannot change its user's credentials",
        ));
    }
    if caller.is_service_account {
        return Err(DomainError::denied(
            "a service account has exactly one key; create another service account instead",
        ));
    }
    Ok(())
}

impl AuthService {
    /// `POST /auth/credentials/init`.
    pub async fn credential_init(
        &self,
        caller: &Principal,
        body: CreateCredentialChallengeBody,
    ) -> Result<CredentialChallengeResponse> {
        as_person(caller)?;
        let user = self.live_person(&caller.org_id, &caller.user_id).await?;
        self.open_credential_challenge(&user, body.kind, None).await
    }

    /// `POST /auth/credentials/code/init`: the code stands for the user (no bearer token).
    pub async fn credential_init_with_code(
        &self,
        body: CreateCredentialChallengeWithCodeBody,
    ) -> Result<CredentialChallengeResponse> {
        if body.code.len() > 64 {
            return Err(bad_code());
        }
        let now = self.clock.now();
        let code = self
            .store
            .find_live_code(&code_hash(&body.code), CodePurpose::Credential, now)
            .await?
            .ok_or_else(bad_code)?;
        let user = self
            .live_person(&code.org_id, &code.user_id)
            .await
            .map_err(|_| bad_code())?;
        self.open_credential_challenge(&user, body.credential_kind, Some(code.id))
            .await
    }

    /// `POST /auth/credentials`, under the caller's user action.
    pub async fn create_credential(
        &self,
        caller: &Principal,
        body: CreateCredentialBody,
    ) -> Result<CredentialResponse> {
        as_person(caller)?;
        let challenge = self
            .live_challenge(&body.challenge_identifier, ChallengeKind::Credential)
            .await?;
        if challenge.user_id != caller.user_id || challenge.org_id != caller.org_id {
            return Err(DomainError::unauthenticated(
                "the credential challenge belongs to another user",
            ));
        }
        self.finish_credential(challenge, body.credential, false)
            .await
    }

    /// `POST /auth/credentials/code/verify`: the challenge from `…/code/init` stands for the
    /// user; its code is spent with it.
    pub async fn create_credential_with_code(
        &self,
        body: CreateCredentialBody,
    ) -> Result<CredentialResponse> {
        let challenge = self
            .live_challenge(&body.challenge_identifier, ChallengeKind::Credential)
            .await?;
        self.finish_credential(challenge, body.credential, true)
            .await
    }

    /// `GET /auth/credentials`: the caller's user's credentials (a PAT's own key is not one).
    pub async fn list_user_credentials(
        &self,
        caller: &Principal,
    ) -> Result<Vec<CredentialResponse>> {
        let creds = self
            .store
            .list_credentials(&caller.org_id, &caller.user_id)
            .await?;
        Ok(creds
            .iter()
            .filter(|c| c.token_id.is_none())
            .map(|c| self.credential_response(c))
            .collect())
    }

    /// `PUT /auth/credentials/activate` / `…/deactivate`.
    pub async fn set_credential_active(
        &self,
        caller: &Principal,
        uuid: &str,
        active: bool,
    ) -> Result<MessageResponse> {
        as_person(caller)?;
        if !looks_like(IdKind::Credential, uuid) {
            return Err(not_found(uuid));
        }
        match self
            .store
            .set_credential_active(&caller.org_id, &caller.user_id, uuid, active)
            .await?
        {
            CredentialToggle::Done => Ok(MessageResponse {
                message: if active {
                    "credential activated".into()
                } else {
                    "credential deactivated".into()
                },
            }),
            CredentialToggle::NotFound => Err(not_found(uuid)),
            CredentialToggle::LastActive => Err(DomainError::invalid(
                "this is the user's last active credential; add another before deactivating it",
            )),
        }
    }

    /// `POST /auth/credentials/code`: a one-time code (shown once, stored hashed) with which
    /// another device can add a credential to the caller's user until `expiration`.
    pub async fn create_credential_code(
        &self,
        caller: &Principal,
        body: CreateCredentialCodeBody,
    ) -> Result<CredentialCodeResponse> {
        as_person(caller)?;
        let now = self.clock.now();
        let expires = parse_expiration(&body.expiration)?;
        let secs = expires
            .millis()
            .checked_sub(now.millis())
            .map_or(i64::MIN, |d| d / 1000);
        if !(MIN_CODE_SECS..=MAX_CODE_SECS).contains(&secs) {
            return Err(DomainError::invalid(format!(
                "expiration must be between {MIN_CODE_SECS} seconds and {} hours from now",
                MAX_CODE_SECS / 3600
            )));
        }
        let user = self.live_person(&caller.org_id, &caller.user_id).await?;
        let code = new_code();
        let record = OneTimeCode {
            id: new_id(IdKind::Code),
            org_id: user.org_id.clone(),
            user_id: user.id.clone(),
            purpose: CodePurpose::Credential,
            code_hash: code_hash(&code),
            attempts: 0,
            expires_at: expires,
            used_at: None,
            created_at: now,
        };
        self.store.replace_code_quietly(&record).await?;
        Ok(CredentialCodeResponse {
            code: code.to_string(),
            expiration: expires.to_iso(),
        })
    }

    // ------------------------------------------------------------------ internals

    async fn live_person(&self, org_id: &str, user_id: &str) -> Result<User> {
        self.store
            .get_user(org_id, user_id)
            .await?
            .filter(|u| u.is_active && !u.is_archived && u.is_registered && !u.is_service_account)
            .ok_or_else(|| DomainError::unauthenticated("the user is not active"))
    }

    async fn open_credential_challenge(
        &self,
        user: &User,
        kind: CredentialKind,
        code_id: Option<String>,
    ) -> Result<CredentialChallengeResponse> {
        match kind {
            CredentialKind::Key
            | CredentialKind::Fido2
            | CredentialKind::PasswordProtectedKey
            | CredentialKind::RecoveryKey
            | CredentialKind::Totp => {}
            other => {
                return Err(DomainError::invalid(format!(
                    "credential kind {} cannot be added here; use Key, Fido2, PasswordProtectedKey, RecoveryKey or Totp",
                    other.as_str()
                )));
            }
        }
        let existing = self.store.list_credentials(&user.org_id, &user.id).await?;
        let (totp, otp_url) = if kind == CredentialKind::Totp {
            if existing_totp(&existing) {
                return Err(DomainError::conflict(
                    "the user already has an active Totp credential; deactivate it first",
                ));
            }
            let (sealed, url) = crate::totp::enroll(
                &self.sealer,
                &user.id,
                &self.settings.rp_name,
                &user.username,
            )?;
            (Some(sealed), Some(url))
        } else {
            (None, None)
        };
        let now = self.clock.now();
        let challenge = random_b64(32);
        let passkeys: Vec<&Credential> = existing
            .iter()
            .filter(|c| c.kind == CredentialKind::Fido2)
            .collect();
        let webauthn = if kind == CredentialKind::Fido2 {
            let exclude = passkeys
                .iter()
                .filter_map(|c| b64url("credId", &c.cred_id).ok())
                .collect();
            let default_app = RelyingPartyApp {
                rp_id: self.settings.rp_id.clone(),
                origin: format!("https://{}", self.settings.rp_id),
            };
            Some(webauthn::start_registration(
                &self.settings.rp_name,
                &default_app,
                &user.id,
                &user.username,
                exclude,
                &challenge,
            )?)
        } else {
            None
        };
        let detail = serde_json::to_string(&ChallengeDetail {
            kind,
            webauthn,
            code_id: code_id.clone(),
            totp,
        })
        .map_err(|e| DomainError::internal(format!("challenge detail: {e}")))?;
        let record = Challenge {
            id: new_id(IdKind::Challenge),
            org_id: user.org_id.clone(),
            kind: ChallengeKind::Credential,
            user_id: user.id.clone(),
            challenge: challenge.clone(),
            token_id: None,
            http_method: None,
            http_path: None,
            payload_hash: None,
            detail: Some(detail),
            expires_at: now.plus_secs(self.settings.challenge_ttl_secs),
            used_at: None,
            created_at: now,
        };
        match &code_id {
            // The code buys one challenge: spent now, with the challenge stored.
            Some(code_id) => {
                if !self
                    .store
                    .insert_challenge_spending_code(&record, code_id, now)
                    .await?
                {
                    return Err(bad_code());
                }
            }
            None => self.store.insert_challenge(&record).await?,
        }
        let fido2 = kind == CredentialKind::Fido2;
        Ok(CredentialChallengeResponse {
            kind,
            user: RegistrationUser {
                id: user.id.clone(),
                display_name: user.name.clone(),
                name: user.username.clone(),
            },
            challenge_identifier: record.id,
            challenge,
            rp: Some(RelyingParty {
                id: self.settings.rp_id.clone(),
                name: self.settings.rp_name.clone(),
            }),
            attestation: if fido2 {
                Attestation::None
            } else {
                Attestation::Direct
            },
            pub_key_cred_params: [-7, -8, -257]
                .into_iter()
                .map(|alg| PubKeyCredParam {
                    kind: "public-key".into(),
                    alg,
                })
                .collect(),
            authenticator_selection: fido2.then(|| AuthenticatorSelection {
                authenticator_attachment: None,
                resident_key: "required".into(),
                require_resident_key: true,
                user_verification: UserVerification::Required,
            }),
            exclude_credentials: fido2.then(|| {
                passkeys
                    .iter()
                    .map(|c| AllowCredential::public_key(c.cred_id.clone()))
                    .collect()
            }),
            temporary_authentication_token: String::new(),
            otp_url,
        })
    }

    async fn finish_credential(
        &self,
        challenge: Challenge,
        new: NewCredential,
        with_code: bool,
    ) -> Result<CredentialResponse> {
        let detail: ChallengeDetail = challenge
            .detail
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
            .ok_or_else(|| DomainError::internal("credential challenge without its detail"))?;
        if with_code != detail.code_id.is_some() {
            return Err(DomainError::unauthenticated(if with_code {
                "this challenge was not opened with a credential code"
            } else {
                "this challenge was opened with a credential code; finish it with /auth/credentials/code/verify"
            }));
        }
        if new.kind() != detail.kind {
            return Err(DomainError::invalid(format!(
                "the challenge was issued for a {} credential, not {}",
                detail.kind.as_str(),
                new.kind().as_str()
            )));
        }
        let user = self
            .live_person(&challenge.org_id, &challenge.user_id)
            .await?;
        let now = self.clock.now();
        if let NewCredential::Totp {
            credential_info,
            credential_name,
        } = &new
        {
            let credential = self.enrolled_totp(
                &user,
                detail.totp.as_deref(),
                credential_info,
                credential_name.as_deref(),
                now,
            )?;
            return self.store_credential(&challenge, credential, now).await;
        }
        let credential = self
            .attest_credential(
                &user,
                &challenge.challenge,
                detail.webauthn.as_deref(),
                &new,
                now,
            )
            .await?;
        self.store_credential(&challenge, credential, now).await
    }

    async fn store_credential(
        &self,
        challenge: &Challenge,
        credential: Credential,
        now: Timestamp,
    ) -> Result<CredentialResponse> {
        let added = self
            .store
            .add_credential(&challenge.id, None, &credential, now)
            .await
            .map_err(|e| match e {
                keyfold_domain::StoreError::Conflict(_) => {
                    DomainError::conflict("a credential with this credId already exists")
                }
                other => other.into(),
            })?;
        if !added {
            return Err(DomainError::unauthenticated(
                "the credential challenge was already used or has expired",
            ));
        }
        Ok(self.credential_response(&credential))
    }

    /// A Totp credential: the first code from the authenticator app proves the enrollment.
    fn enrolled_totp(
        &self,
        user: &User,
        sealed: Option<&str>,
        info: &serde_json::Value,
        name: Option<&str>,
        now: Timestamp,
    ) -> Result<Credential> {
        let sealed =
            sealed.ok_or_else(|| DomainError::internal("Totp challenge without its secret"))?;
        let code = info
            .get("otpCode")
            .and_then(|c| c.as_str())
            .ok_or_else(|| DomainError::invalid("credentialInfo.otpCode is required"))?;
        let now_secs = u64::try_from(now.millis() / 1000).unwrap_or_default();
        let step = crate::totp::check(&self.sealer, &user.id, sealed, code, now_secs)?
            .ok_or_else(|| DomainError::unauthenticated("the one-time password is not valid"))?;
        let name = match name {
            Some(n) => validate::text("credentialName", n, limits::NAME_MAX)?,
            None => String::new(),
        };
        Ok(Credential {
            uuid: new_id(IdKind::Credential),
            org_id: user.org_id.clone(),
            user_id: user.id.clone(),
            cred_id: random_b64(16),
            kind: CredentialKind::Totp,
            name,
            public_key: String::new(),
            algorithm: None,
            is_active: true,
            // The enrolling code's step: it cannot be used again for a login.
            sign_count: i64::try_from(step).unwrap_or(i64::MAX),
            encrypted_private_key: None,
            token_id: None,
            detail: Some(sealed.to_string()),
            created_at: now,
        })
    }

    /// Verifies a new credential's proof of possession for `challenge` and builds its row:
    /// Key, PasswordProtectedKey and RecoveryKey by their self-signed attestation, Fido2 by
    /// the WebAuthn ceremony (`webauthn_state`) for the application of the reported origin.
    pub(crate) async fn attest_credential(
        &self,
        user: &User,
        challenge: &str,
        webauthn_state: Option<&str>,
        new: &NewCredential,
        now: Timestamp,
    ) -> Result<Credential> {
        let (info, name, encrypted) = match new {
            NewCredential::Key {
                credential_info,
                credential_name,
            }
            | NewCredential::Fido2 {
                credential_info,
                credential_name,
            } => (credential_info, credential_name, None),
            NewCredential::PasswordProtectedKey {
                credential_info,
                credential_name,
                encrypted_private_key,
            } => (
                credential_info,
                credential_name,
                Some(encrypted_private_key.clone()),
            ),
            NewCredential::RecoveryKey {
                credential_info,
                credential_name,
                encrypted_private_key,
            } => (
                credential_info,
                credential_name,
                encrypted_private_key.clone(),
            ),
            other => {
                return Err(DomainError::invalid(format!(
                    "credential kind {} is not supported; use Key, Fido2, PasswordProtectedKey or RecoveryKey",
                    other.kind().as_str()
                )));
            }
        };
        let cred_id = checked_cred_id(info)?;
        let name = match name {
            Some(n) => validate::text("credentialName", n, limits::NAME_MAX)?,
            None => String::new(),
        };
        if let Some(e) = &encrypted
            && (e.trim().is_empty() || e.len() > ENCRYPTED_KEY_MAX)
        {
            return Err(DomainError::invalid(format!(
                "encryptedPrivateKey must be 1 to {ENCRYPTED_KEY_MAX} characters"
            )));
        }
        let kind = new.kind();
        let (public_key, algorithm, sign_count, passkey) = if kind == CredentialKind::Fido2 {
            let state = webauthn_state
                .ok_or_else(|| DomainError::internal("Fido2 challenge without its state"))?;
            let app = self
                .app_for_origin(&user.org_id, &webauthn::reported_origin(&info.client_data)?)
                .await?;
            let made = webauthn::finish_registration(
                &self.settings.rp_name,
                &app,
                state,
                &cred_id,
                &info.client_data,
                &info.attestation_data,
            )?;
            (
                made.public_key,
                None,
                i64::from(made.counter),
                Some(made.detail),
            )
        } else {
            let attested =
                verify_key_attestation(&info.client_data, &info.attestation_data, challenge)?;
            (
                attested.public_key_pem.trim().to_string(),
                attested.algorithm,
                0,
                None,
            )
        };
        Ok(Credential {
            uuid: new_id(IdKind::Credential),
            org_id: user.org_id.clone(),
            user_id: user.id.clone(),
            cred_id,
            kind,
            name,
            public_key,
            algorithm,
            is_active: true,
            sign_count,
            encrypted_private_key: encrypted,
            token_id: None,
            detail: passkey,
            created_at: now,
        })
    }

    /// The application whose WebAuthn rules apply to a ceremony the browser ran at `origin`:
    /// an active client-side (or the default) application expecting exactly that origin.
    pub(crate) async fn app_for_origin(
        &self,
        org_id: &str,
        origin: &str,
    ) -> Result<RelyingPartyApp> {
        let apps = self.store.list_apps(org_id).await?;
        apps.into_iter()
            .filter(|a| a.is_active && a.kind != AppKind::ServerSide)
            .find_map(|a| {
                let expected = a.expected_origin?.trim_end_matches('/').to_string();
                (expected == origin).then_some(RelyingPartyApp {
                    rp_id: a.expected_rp_id?,
                    origin: expected,
                })
            })
            .ok_or_else(|| {
                DomainError::unauthenticated(format!(
                    "origin {origin} is not the expected origin of any of this organization's applications"
                ))
            })
    }

    pub(crate) fn credential_response(&self, c: &Credential) -> CredentialResponse {
        let passkey: Option<StoredPasskey> = c
            .detail
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok());
        CredentialResponse {
            kind: c.kind,
            credential_id: c.cred_id.clone(),
            credential_uuid: c.uuid.clone(),
            date_created: c.created_at.to_iso(),
            is_active: c.is_active,
            name: c.name.clone(),
            public_key: c.public_key.clone(),
            relying_party_id: passkey
                .as_ref()
                .map(|p| p.rp_id.clone())
                .unwrap_or_else(|| self.settings.rp_id.clone()),
            origin: passkey.map(|p| p.origin).unwrap_or_default(),
        }
    }
}

fn checked_cred_id(info: &CredentialInfo) -> Result<String> {
    let cred_id = validate::required_text("credId", &info.cred_id, limits::ID_MAX)?;
    if !cred_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=' | b'.'))
    {
        return Err(DomainError::invalid("credId must be base64url"));
    }
    Ok(cred_id)
}

/// `expiration`: an ISO 8601 date or unix seconds.
fn parse_expiration(v: &serde_json::Value) -> Result<Timestamp> {
    let bad = || DomainError::invalid("expiration must be an ISO 8601 date or unix seconds");
    match v {
        serde_json::Value::Number(n) => {
            let secs = n.as_i64().ok_or_else(bad)?;
            let millis = secs.checked_mul(1000).ok_or_else(bad)?;
            Ok(Timestamp(millis))
        }
        serde_json::Value::String(s) => {
            if let Ok(secs) = s.trim().parse::<i64>() {
                return Ok(Timestamp(secs.checked_mul(1000).ok_or_else(bad)?));
            }
            Timestamp::parse_iso(s.trim()).ok_or_else(bad)
        }
        _ => Err(bad()),
    }
}

/// Whether the user already has an active Totp credential (one at a time).
pub(crate) fn existing_totp(creds: &[Credential]) -> bool {
    creds
        .iter()
        .any(|c| c.is_active && c.kind == CredentialKind::Totp)
}
