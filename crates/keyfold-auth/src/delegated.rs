//! End users managed by a service (delegated identity).
//!
//! ```text
//! POST /auth/registration/delegated + user action  → creates the EndUser (no email sent),
//!      returns its registration challenge and temporary token, which the service hands to
//!      its user's device
//! POST /auth/registration/enduser (Bearer: temporary token) → the device registers its
//!      credential (Key or passkey) and gets a login token, plus the wallets it asked for,
//!      on keys delegated to it (created by the key service; see the server's handler)
//! POST /auth/login/delegated + user action  → a login token for an existing end user
//! ```
//!
//! The service never holds the end user's credential: the challenge is answered on the
//! user's device. Delegated login hands the service a session *as* the end user, which is
//! why it takes its own operation (`Auth:Login:Delegated`) and a signed user action; what
//! that session may do is what the end user's permissions allow.

use keyfold_domain::DomainError;
use keyfold_domain::authz::{Granted, op};
use keyfold_domain::ids::{IdKind, new_id};
use keyfold_domain::model::{CodePurpose, OneTimeCode, User};
use keyfold_domain::permissions::within_callers_reach;
use keyfold_domain::secrets::{code_hash, new_code};
use keyfold_domain::validate;
use keyfold_types::auth::{
    Authentication, DelegatedLoginBody, DelegatedRegistrationBody, RegisterEndUserBody,
    RegisterEndUserResponse, RegistrationChallengeResponse,
};
use keyfold_types::limits;
use keyfold_types::users::UserKind;

use crate::service::{AuthService, Result};

impl AuthService {
    /// `POST /auth/registration/delegated`.
    pub async fn delegated_registration(
        &self,
        g: &Granted<op::RegisterDelegated>,
        body: DelegatedRegistrationBody,
    ) -> Result<RegistrationChallengeResponse> {
        if body.kind != "EndUser" {
            return Err(DomainError::invalid(
                "kind must be EndUser: delegated registration creates end users",
            ));
        }
        let email = validate::email("email", &body.email)?;
        let external_id = body
            .external_id
            .as_deref()
            .map(|e| validate::required_text("externalId", e, limits::EXTERNAL_ID_MAX))
            .transpose()?;
        let org_id = g.org_id().to_string();
        let now = self.clock.now();
        // A registration code nobody is mailed: it only marks the user as awaiting
        // registration, so the one registration path (challenge + code spent together)
        // serves invited and delegated users alike.
        let code = new_code();
        if self
            .store
            .find_user_by_username(&org_id, &email)
            .await?
            .is_some()
        {
            // Never a second registration challenge for an existing user: that would let the
            // service register its own credential for someone invited by email. An end user
            // whose registration never completed is deleted and created again.
            return Err(DomainError::conflict(
                "a user with this email already exists in the organization",
            ));
        }
        let id = new_id(IdKind::User);
        let user = User {
            id: id.clone(),
            org_id: org_id.clone(),
            username: email.clone(),
            name: email.clone(),
            kind: UserKind::EndUser,
            is_active: true,
            is_registered: false,
            is_service_account: false,
            is_sso_required: false,
            is_archived: false,
            external_id,
            public_key: None,
            created_at: now,
            updated_at: now,
        };
        let record = OneTimeCode {
            id: new_id(IdKind::Code),
            org_id: org_id.clone(),
            user_id: id,
            purpose: CodePurpose::Registration,
            code_hash: code_hash(&code),
            attempts: 0,
            expires_at: now.plus_secs(self.settings.challenge_ttl_secs),
            used_at: None,
            created_at: now,
        };
        self.store
            .create_user(&user, Some(&record), None)
            .await
            .map_err(|e| match e {
                keyfold_domain::StoreError::Conflict(_) => {
                    DomainError::conflict("a user with this email or externalId already exists")
                }
                other => other.into(),
            })?;
        self.open_registration(&org_id, &user).await
    }

    /// `POST /auth/registration/enduser`: registration, then a login session for the new
    /// end user. The wallets it asks for are created by the caller (the server's handler,
    /// through `KeyService::create_end_user_wallets`) once this returns, and only after
    /// `KeyService::plan_end_user_wallets` accepted them: keys live in the key service, and
    /// bad wallet input must be refused before the registration is spent. Here, wallets are
    /// only checked to be asked for by an end user.
    pub async fn register_end_user(
        &self,
        temporary_token: &str,
        body: RegisterEndUserBody,
    ) -> Result<RegisterEndUserResponse> {
        if !body.wallets.is_empty() {
            self.check_end_user_registration(temporary_token).await?;
        }
        let registered = self.register(temporary_token, body.registration).await?;
        let user = self
            .store
            .get_user(&registered.user.org_id, &registered.user.id)
            .await?
            .ok_or_else(|| DomainError::internal("a just-registered user vanished"))?;
        let token = self.issue_session(&user, self.clock.now(), None).await?;
        Ok(RegisterEndUserResponse {
            credential: registered.credential,
            user: registered.user,
            authentication: Authentication { token },
            wallets: Vec::new(),
        })
    }

    /// Checks that `temporary_token` is a live registration token of an end user — before
    /// anything is done for the wallets that registration asks for.
    pub async fn check_end_user_registration(&self, temporary_token: &str) -> Result<()> {
        let claims = self
            .verify_jwt(temporary_token, crate::jwt::Audience::Registration)
            .await?;
        let user = self
            .store
            .get_user(&claims.app_metadata.org_id, &claims.sub)
            .await?;
        if user.map(|u| u.kind) != Some(UserKind::EndUser) {
            return Err(DomainError::invalid(
                "wallets at registration are created for end users only (POST /auth/registration/delegated)",
            ));
        }
        Ok(())
    }

    /// `POST /auth/login/delegated`: a session as one of the organization's end users.
    pub async fn delegated_login(
        &self,
        g: &Granted<op::LoginDelegated>,
        body: DelegatedLoginBody,
    ) -> Result<String> {
        let username = validate::email("username", &body.username)?;
        let user = self
            .store
            .find_user_by_username(g.org_id(), &username)
            .await?
            .filter(|u| {
                u.kind == UserKind::EndUser && u.is_active && u.is_registered && !u.is_archived
            })
            .ok_or_else(|| {
                DomainError::not_found(format!(
                    "no active, registered end user {username} in this organization"
                ))
            })?;
        // A session as the end user must not be a way around the caller's own permissions:
        // the end user's *assigned* operations must be within the caller's. Its implicit
        // ones (`authz::END_USER_OPERATIONS`: reading and using its own wallets) are what
        // delegated login is for — reading them is the point, and using them still takes a
        // user action signed by the end user's own credential, which the service never holds.
        let ops: Vec<String> = self
            .store
            .assignments_of(std::slice::from_ref(&user.id))
            .await?
            .into_iter()
            .flat_map(|a| a.operations)
            .collect();
        within_callers_reach(g.principal(), &ops)?;
        self.issue_session(&user, self.clock.now(), g.principal().bound_app.clone())
            .await
    }
}
