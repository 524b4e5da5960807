//! Personal access tokens: a user's long-lived tokens for scripts and integrations.
//!
//! A PAT acts *for* its user and can never do more than that user:
//! - at creation, asking for a permission the caller does not hold is a 403;
//! - per request, its operations are its user's intersected with its own assignments
//!   (computed by the store's session query), so when the user loses an operation the PAT
//!   loses it on the very next request — no fan-out, nothing to forget;
//! - it dies with its user: a deactivated or deleted user locks every PAT out at once
//!   (deleting revokes them for good).
//!
//! Each PAT has its own key (a credential owned by the token). It signs that PAT's user
//! actions and nothing else: it can neither log in as the user nor sign for the user's other
//! sessions, so handing a PAT's key to a CI job hands over no more than the PAT.
//!
//! Like a service account's, the token string is never stored: its row (by `jti`) is checked
//! on every request.

use keyfold_domain::DomainError;
use keyfold_domain::authz::{Granted, Principal, op};
use keyfold_domain::ids::{IdKind, looks_like, new_id};
use keyfold_domain::model::{AccessToken, Assignment, Credential, TokenKind};
use keyfold_domain::permissions::within_callers_reach;
use keyfold_domain::secrets::random_b64;
use keyfold_domain::validate;
use keyfold_types::auth::CredentialKind;
use keyfold_types::limits;
use keyfold_types::users::{CreatePatBody, PatResponse, UpdatePatBody};

use crate::credential::PublicKey;
use crate::jwt::{self, Audience, Claims};
use crate::service::{AuthService, Result};
use crate::service_accounts::{DEFAULT_DAYS_VALID, MAX_DAYS_VALID};

/// The shortest lifetime a PAT may be given.
pub const MIN_SECONDS_VALID: u64 = 60;

fn not_found(id: &str) -> DomainError {
    DomainError::not_found(format!("personal access token {id} not found"))
}

fn taken() -> DomainError {
    DomainError::conflict("externalId is already used by another personal access token")
}

impl AuthService {
    /// `POST /auth/pats`: a token for the caller's user. A PAT may create PATs only when it
    /// holds `Auth:Pats:Create` itself, and never with more than it holds.
    pub async fn create_pat(
        &self,
        g: &Granted<op::PatsCreate>,
        body: CreatePatBody,
    ) -> Result<PatResponse> {
        let caller = g.principal();
        if caller.token_kind == TokenKind::Pat {
            // A child would outlive its parent: a leaked, short-lived PAT must not be able
            // to mint a long-lived one with a key of the attacker's choosing.
            return Err(DomainError::denied(
                "a personal access token cannot create personal access tokens; use the user's own session",
            ));
        }
        if caller.is_service_account {
            return Err(DomainError::denied(
                "service accounts have their own token; personal access tokens are for users",
            ));
        }
        let name = validate::required_text("name", &body.name, limits::NAME_MAX)?;
        let external_id = body
            .external_id
            .as_deref()
            .map(|e| validate::required_text("externalId", e, limits::EXTERNAL_ID_MAX))
            .transpose()?;
        let pem = body.public_key.trim().to_string();
        if pem.len() > limits::PUBLIC_KEY_MAX {
            return Err(DomainError::invalid("publicKey is too long"));
        }
        PublicKey::from_pem(&pem).map_err(|e| DomainError::invalid(format!("publicKey: {e}")))?;
        let ttl_secs: i64 = match (body.seconds_valid, body.days_valid) {
            (Some(s), _) => {
                let max = u64::from(MAX_DAYS_VALID) * 86_400;
                if !(MIN_SECONDS_VALID..=max).contains(&s) {
                    return Err(DomainError::invalid(format!(
                        "secondsValid must be between {MIN_SECONDS_VALID} and {max}"
                    )));
                }
                i64::try_from(s).map_err(|_| DomainError::invalid("secondsValid is too large"))?
            }
            (None, days) => {
                let days = days.unwrap_or(DEFAULT_DAYS_VALID);
                if days == 0 || days > MAX_DAYS_VALID {
                    return Err(DomainError::invalid(format!(
                        "daysValid must be between 1 and {MAX_DAYS_VALID}"
                    )));
                }
                i64::from(days) * 86_400
            }
        };
        let org_id = g.org_id().to_string();
        let permission = match body.permission_id.as_deref() {
            None => None,
            Some(pid) => {
                let p = self
                    .live_permission(&org_id, pid)
                    .await?
                    .ok_or_else(|| DomainError::not_found(format!("permission {pid} not found")))?;
                if p.is_archived {
                    return Err(DomainError::invalid(
                        "an archived permission cannot be assigned",
                    ));
                }
                within_callers_reach(caller, &p.operations)?;
                Some(p)
            }
        };
        let user = self
            .store
            .get_user(&org_id, &caller.user_id)
            .await?
            .filter(|u| u.is_active && !u.is_archived)
            .ok_or_else(|| DomainError::unauthenticated("the identity is deactivated"))?;
        let now = self.clock.now();
        let token = AccessToken {
            id: new_id(IdKind::Token),
            org_id: org_id.clone(),
            user_id: user.id.clone(),
            kind: TokenKind::Pat,
            name: name.clone(),
            is_active: true,
            expires_at: Some(now.plus_secs(ttl_secs)),
            revoked_at: None,
            external_id,
            // Minted from a session bound to a server-side app: bound to it as well.
            app_id: caller.bound_app.clone(),
            created_at: now,
        };
        let credential = Credential {
            uuid: new_id(IdKind::Credential),
            org_id: org_id.clone(),
            user_id: user.id.clone(),
            cred_id: random_b64(16),
            kind: CredentialKind::Key,
            name: format!("{name} key"),
            public_key: pem,
            algorithm: None,
            is_active: true,
            sign_count: 0,
            encrypted_private_key: None,
            token_id: Some(token.id.clone()),
            detail: None,
            created_at: now,
        };
        let assignment = permission.as_ref().map(|p| Assignment {
            id: new_id(IdKind::Assignment),
            org_id: org_id.clone(),
            permission_id: p.id.clone(),
            identity_id: token.id.clone(),
            is_immutable: false,
            created_at: now,
            updated_at: now,
        });
        self.store
            .create_pat(&token, &credential, assignment.as_ref())
            .await
            .map_err(|e| match e {
                keyfold_domain::StoreError::Conflict(_) => taken(),
                other => other.into(),
            })?;
        let jwt = self.issue(&Claims {
            iss: jwt::ISSUER.into(),
            aud: Audience::Api.as_str().into(),
            sub: user.id.clone(),
            jti: token.id.clone(),
            iat: now.millis() / 1000,
            exp: now.millis() / 1000 + ttl_secs,
            username: user.username.clone(),
            app_metadata: jwt::AppMetadata {
                org_id: org_id.clone(),
                user_id: user.id.clone(),
                token_kind: TokenKind::Pat.as_str().into(),
            },
        })?;
        let mut res = self.shape_pat(token).await?;
        res.access_token = Some(jwt);
        Ok(res)
    }

    /// `GET /auth/pats`: the caller's user's live tokens, oldest first.
    pub async fn list_pats(&self, caller: &Principal) -> Result<Vec<PatResponse>> {
        let tokens = self.store.tokens_of(&caller.user_id).await?;
        let mut out = Vec::new();
        for t in tokens {
            if t.kind == TokenKind::Pat && t.revoked_at.is_none() {
                out.push(self.shape_pat(t).await?);
            }
        }
        Ok(out)
    }

    pub async fn get_pat(&self, caller: &Principal, id: &str) -> Result<PatResponse> {
        let t = self.own_pat(caller, id).await?;
        self.shape_pat(t).await
    }

    pub async fn update_pat(
        &self,
        caller: &Principal,
        id: &str,
        body: UpdatePatBody,
    ) -> Result<PatResponse> {
        let name = body
            .name
            .as_deref()
            .map(|n| validate::required_text("name", n, limits::NAME_MAX))
            .transpose()?;
        let external_id = body
            .external_id
            .as_deref()
            .map(|e| validate::required_text("externalId", e, limits::EXTERNAL_ID_MAX))
            .transpose()?;
        let t = self.own_pat(caller, id).await?;
        Self::may_change_pat(caller, id, false)?;
        match self
            .store
            .update_token(&t.org_id, &t.id, name.as_deref(), external_id.as_deref())
            .await
        {
            Ok(true) => {}
            Ok(false) => return Err(not_found(id)),
            Err(keyfold_domain::StoreError::Conflict(_)) => return Err(taken()),
            Err(e) => return Err(e.into()),
        }
        self.get_pat(caller, id).await
    }

    /// Activate (`true`) or deactivate: the token stops or starts working on its next use.
    pub async fn set_pat_active(
        &self,
        caller: &Principal,
        id: &str,
        active: bool,
    ) -> Result<PatResponse> {
        let t = self.own_pat(caller, id).await?;
        Self::may_change_pat(caller, id, false)?;
        if !self
            .store
            .set_token_active(&t.org_id, &t.id, active)
            .await?
        {
            return Err(not_found(id));
        }
        self.get_pat(caller, id).await
    }

    /// `DELETE /auth/pats/{id}`: revoked for good, its key deactivated.
    pub async fn archive_pat(&self, caller: &Principal, id: &str) -> Result<PatResponse> {
        let t = self.own_pat(caller, id).await?;
        Self::may_change_pat(caller, id, true)?;
        if !self
            .store
            .archive_token(&t.org_id, &t.id, self.clock.now())
            .await?
        {
            return Err(not_found(id));
        }
        let mut res = self.shape_pat(t).await?;
        res.is_active = false;
        Ok(res)
    }

    /// Changing a PAT takes the user's own session (or service account never: it has none).
    /// A PAT may revoke itself, nothing more: a narrow PAT must not re-activate, rename or
    /// revoke its siblings.
    fn may_change_pat(caller: &Principal, id: &str, revoking: bool) -> Result<()> {
        if caller.token_kind == TokenKind::Pat && !(revoking && caller.token_id == id) {
            return Err(DomainError::denied(
                "personal access tokens are managed from the user's own session; a token may only revoke itself",
            ));
        }
        Ok(())
    }

    /// A live PAT of the caller's user; anyone else's (or a revoked one) is not found.
    async fn own_pat(&self, caller: &Principal, id: &str) -> Result<AccessToken> {
        if !looks_like(IdKind::Token, id) {
            return Err(not_found(id));
        }
        self.store
            .get_token(&caller.org_id, id)
            .await?
            .filter(|t| {
                t.kind == TokenKind::Pat && t.user_id == caller.user_id && t.revoked_at.is_none()
            })
            .ok_or_else(|| not_found(id))
    }

    async fn live_permission(
        &self,
        org_id: &str,
        id: &str,
    ) -> Result<Option<keyfold_domain::model::Permission>> {
        if !looks_like(IdKind::Permission, id) {
            return Ok(None);
        }
        Ok(self.store.get_permission(org_id, id).await?)
    }

    async fn shape_pat(&self, t: AccessToken) -> Result<PatResponse> {
        let cred = self
            .store
            .list_credentials(&t.org_id, &t.user_id)
            .await?
            .into_iter()
            .find(|c| c.token_id.as_deref() == Some(t.id.as_str()));
        let user_active = self
            .store
            .get_user(&t.org_id, &t.user_id)
            .await?
            .is_some_and(|u| u.is_active && !u.is_archived);
        let app_id = self
            .store
            .list_apps(&t.org_id)
            .await?
            .first()
            .map(|a| a.id.clone())
            .unwrap_or_default();
        let assignments = self
            .store
            .assignments_of(std::slice::from_ref(&t.id))
            .await?
            .into_iter()
            .map(|a| keyfold_types::users::PermissionAssignmentInfo {
                permission_name: a.permission_name,
                permission_id: a.permission_id,
                assignment_id: a.assignment_id,
                operations: Some(a.operations),
            })
            .collect();
        Ok(PatResponse {
            access_token: None,
            date_created: t.created_at.to_iso(),
            cred_id: cred.as_ref().map(|c| c.cred_id.clone()).unwrap_or_default(),
            is_active: t.is_active && t.revoked_at.is_none() && user_active,
            kind: TokenKind::Pat.as_str().into(),
            linked_user_id: t.user_id,
            linked_app_id: app_id,
            name: t.name,
            org_id: t.org_id,
            permission_assignments: assignments,
            public_key: cred.map(|c| c.public_key).unwrap_or_default(),
            token_id: t.id,
        })
    }
}
