//! Registration: an invited user proves the emailed code, then proves possession of a new
//! credential; only the public key reaches us.

use keyfold_domain::DomainError;
use keyfold_domain::ids::{IdKind, looks_like, new_id};
use keyfold_domain::model::{Challenge, ChallengeKind, CodePurpose};
use keyfold_domain::secrets::{code_hash, ct_eq, random_b64};
use keyfold_domain::validate;
use keyfold_types::auth::{
    Attestation, AuthenticatorSelection, CreateRegistrationChallengeBody, CredentialKind,
    PubKeyCredParam, RegisterBody, RegisterResponse, RegisteredCredential, RegisteredUser,
    RegistrationChallengeResponse, RegistrationUser, RelyingParty, SupportedCredentialKinds,
    UserVerification,
};

use crate::jwt::{self, Audience, Claims};
use crate::service::{AuthService, Result};

/// Wrong guesses a registration code survives.
pub const MAX_CODE_ATTEMPTS: i64 = 5;

fn bad_code() -> DomainError {
    DomainError::unauthenticated("the username or registration code is not valid")
}

impl AuthService {
    /// Checks a guess at a code, counting it first: a code survives [`MAX_CODE_ATTEMPTS`]
    /// wrong guesses however many arrive at once. A right guess is not counted.
    pub(crate) async fn guess_code(
        &self,
        code: &keyfold_domain::model::OneTimeCode,
        guess: &str,
    ) -> Result<bool> {
        if code.attempts >= MAX_CODE_ATTEMPTS
            || !self
                .store
                .claim_code_attempt(&code.id, MAX_CODE_ATTEMPTS)
                .await?
        {
            return Ok(false);
        }
        if !ct_eq(&code.code_hash, &code_hash(guess)) {
            return Ok(false);
        }
        self.store.refund_code_attempt(&code.id).await?;
        Ok(true)
    }

    /// `POST /auth/registration/init`.
    pub async fn registration_init(
        &self,
        body: CreateRegistrationChallengeBody,
    ) -> Result<RegistrationChallengeResponse> {
        let username = validate::email("username", &body.username)?;
        validate::required_text("registrationCode", &body.registration_code, 128)?;
        if !looks_like(IdKind::Org, &body.org_id) {
            return Err(bad_code());
        }
        let now = self.clock.now();
        let user = self
            .store
            .find_user_by_username(&body.org_id, &username)
            .await?
            .filter(|u| u.is_active && !u.is_registered)
            .ok_or_else(bad_code)?;
        let code = self
            .store
            .live_code(&body.org_id, &user.id, CodePurpose::Registration, now)
            .await?
            .ok_or_else(bad_code)?;
        if !self.guess_code(&code, &body.registration_code).await? {
            return Err(bad_code());
        }
        let org = self
            .store
            .get_org(&body.org_id)
            .await?
            .filter(|o| o.is_active)
            .ok_or_else(bad_code)?;
        self.open_registration(&org.id, &user).await
    }

    /// The registration challenge (with the WebAuthn state for a passkey) and the temporary
    /// token that authorizes `POST /auth/registration` / `…/enduser` for it.
    pub(crate) async fn open_registration(
        &self,
        org_id: &str,
        user: &keyfold_domain::model::User,
    ) -> Result<RegistrationChallengeResponse> {
        let now = self.clock.now();
        let challenge = random_b64(32);
        // The WebAuthn ceremony state, in case the first credential is a passkey.
        let webauthn_state = crate::webauthn::start_registration(
            &self.settings.rp_name,
            &crate::webauthn::RelyingPartyApp {
                rp_id: self.settings.rp_id.clone(),
                origin: format!("https://{}", self.settings.rp_id),
            },
            &user.id,
            &user.username,
            Vec::new(),
            &challenge,
        )?;
        let record = Challenge {
            id: new_id(IdKind::Challenge),
            org_id: org_id.to_string(),
            kind: ChallengeKind::Registration,
            user_id: user.id.clone(),
            challenge: challenge.clone(),
            token_id: None,
            http_method: None,
            http_path: None,
            payload_hash: None,
            detail: Some(webauthn_state),
            expires_at: now.plus_secs(self.settings.challenge_ttl_secs),
            used_at: None,
            created_at: now,
        };
        self.store.insert_challenge(&record).await?;
        let temp = self.issue(&Claims {
            iss: jwt::ISSUER.into(),
            aud: Audience::Registration.as_str().into(),
            sub: user.id.clone(),
            jti: record.id.clone(),
            iat: now.millis() / 1000,
            exp: record.expires_at.millis() / 1000,
            username: user.username.clone(),
            app_metadata: jwt::AppMetadata {
                org_id: org_id.to_string(),
                user_id: user.id.clone(),
                token_kind: "Temp".into(),
            },
        })?;
        let existing = self.store.list_credentials(org_id, &user.id).await?;
        Ok(RegistrationChallengeResponse {
            user: RegistrationUser {
                id: user.id.clone(),
                display_name: user.name.clone(),
                name: user.username.clone(),
            },
            temporary_authentication_token: temp,
            challenge,
            rp: Some(RelyingParty {
                id: self.settings.rp_id.clone(),
                name: self.settings.rp_name.clone(),
            }),
            supported_credential_kinds: SupportedCredentialKinds {
                first_factor: vec![
                    CredentialKind::Key,
                    CredentialKind::Fido2,
                    CredentialKind::PasswordProtectedKey,
                ],
                second_factor: vec![],
            },
            authenticator_selection: AuthenticatorSelection {
                authenticator_attachment: None,
                resident_key: "required".into(),
                require_resident_key: true,
                user_verification: UserVerification::Required,
            },
            attestation: Attestation::None,
            // ES256, EdDSA, RS256 — what the key verifier accepts.
            pub_key_cred_params: [-7, -8, -257]
                .into_iter()
                .map(|alg| PubKeyCredParam {
                    kind: "public-key".into(),
                    alg,
                })
                .collect(),
            exclude_credentials: existing
                .iter()
                .map(|c| keyfold_types::auth::AllowCredential::public_key(c.cred_id.clone()))
                .collect(),
            otp_url: String::new(),
        })
    }

    /// `POST /auth/registration`, authorized by the temporary token from `registration_init`.
    pub async fn register(
        &self,
        temporary_token: &str,
        body: RegisterBody,
    ) -> Result<RegisterResponse> {
        let claims = self
            .verify_jwt(temporary_token, Audience::Registration)
            .await?;
        let challenge = self
            .live_challenge(&claims.jti, ChallengeKind::Registration)
            .await?;
        if challenge.user_id != claims.sub {
            return Err(DomainError::unauthenticated(
                "the registration token does not match its challenge",
            ));
        }
        if body.second_factor_credential.is_some() {
            return Err(DomainError::invalid(
                "second-factor credentials are not supported yet; register a first factor (and optionally a recovery key)",
            ));
        }
        match body.first_factor_credential.kind() {
            CredentialKind::Key | CredentialKind::Fido2 | CredentialKind::PasswordProtectedKey => {}
            other => {
                return Err(DomainError::invalid(format!(
                    "credential kind {} cannot be a first factor; use Key, Fido2 or PasswordProtectedKey",
                    other.as_str()
                )));
            }
        }
        if let Some(r) = &body.recovery_credential
            && r.kind() != CredentialKind::RecoveryKey
        {
            return Err(DomainError::invalid(
                "recoveryCredential must be a RecoveryKey",
            ));
        }
        let now = self.clock.now();
        let user = self
            .store
            .get_user(&challenge.org_id, &challenge.user_id)
            .await?
            .filter(|u| u.is_active && !u.is_registered && !u.is_archived)
            .ok_or_else(bad_code)?;
        let code = self
            .store
            .live_code(&user.org_id, &user.id, CodePurpose::Registration, now)
            .await?
            .ok_or_else(|| {
                DomainError::unauthenticated("the registration code was replaced or has expired")
            })?;
        let mut credentials = vec![
            self.attest_credential(
                &user,
                &challenge.challenge,
                challenge.detail.as_deref(),
                &body.first_factor_credential,
                now,
            )
            .await?,
        ];
        if let Some(r) = &body.recovery_credential {
            credentials.push(
                self.attest_credential(&user, &challenge.challenge, None, r, now)
                    .await?,
            );
        }
        if credentials.len() == 2 && credentials[0].cred_id == credentials[1].cred_id {
            return Err(DomainError::invalid(
                "the recovery credential must have its own credId",
            ));
        }
        let credential = credentials[0].clone();
        let name = credential.name.clone();
        let done = self
            .store
            .complete_registration(&challenge.id, &code.id, &user.id, &credentials, now)
            .await
            .map_err(|e| match e {
                keyfold_domain::StoreError::Conflict(_) => {
                    DomainError::conflict("a credential with this credId already exists")
                }
                other => other.into(),
            })?;
        if !done {
            return Err(DomainError::unauthenticated(
                "the registration challenge was already used or has expired",
            ));
        }
        Ok(RegisterResponse {
            credential: RegisteredCredential {
                uuid: credential.uuid,
                kind: credential.kind,
                name,
            },
            user: RegisteredUser {
                id: user.id,
                username: user.username,
                org_id: user.org_id,
            },
        })
    }
}
