//! Service accounts: machine identities with their own permissions.
//!
//! A service account is a user row marked `is_service_account` (it can never log in with
//! `/auth/login`), one `Key` credential holding the public key it signs user actions with,
//! and one long-lived access token. Keyfold keeps only the token's id: the JWT is verified
//! by its signature and then by that row (revoked, deactivated) on every request, so the
//! token itself is never stored and cannot be read back. Deactivating the account locks the
//! token out at once; activating lets the same token back in; deleting revokes it for good.

use keyfold_domain::DomainError;
use keyfold_domain::authz::{Granted, op};
use keyfold_domain::ids::{IdKind, looks_like, new_id};
use keyfold_domain::model::{AccessToken, Assignment, Credential, TokenKind, User, UserView};
use keyfold_domain::page::{Page, PageRequest};
use keyfold_domain::permissions::within_callers_reach;
use keyfold_domain::secrets::random_b64;
use keyfold_domain::validate;
use keyfold_types::auth::CredentialKind;
use keyfold_types::limits;
use keyfold_types::users::{
    CreateServiceAccountBody, ServiceAccountResponse, ServiceAccountToken,
    UpdateServiceAccountBody, UserKind,
};

use crate::credential::PublicKey;
use crate::jwt::{self, Audience, Claims};
use crate::service::{AuthService, Result};

/// Token lifetime when the request gives none.
pub const DEFAULT_DAYS_VALID: u32 = 365;
/// The longest lifetime a service account token may have.
pub const MAX_DAYS_VALID: u32 = 3650;

fn not_found(id: &str) -> DomainError {
    DomainError::not_found(format!("service account {id} not found"))
}

impl AuthService {
    pub async fn create_service_account(
        &self,
        g: &Granted<op::ServiceAccountsCreate>,
        body: CreateServiceAccountBody,
    ) -> Result<ServiceAccountResponse> {
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
        let days = body.days_valid.unwrap_or(DEFAULT_DAYS_VALID);
        if days == 0 || days > MAX_DAYS_VALID {
            return Err(DomainError::invalid(format!(
                "daysValid must be between 1 and {MAX_DAYS_VALID}"
            )));
        }
        let org_id = g.org_id().to_string();
        let permission = match body.permission_id.as_deref() {
            None => None,
            Some(pid) => {
                let p = looks_like(IdKind::Permission, pid)
                    .then_some(())
                    .ok_or_else(|| DomainError::not_found(format!("permission {pid} not found")));
                p?;
                let p = self
                    .store
                    .get_permission(&org_id, pid)
                    .await?
                    .ok_or_else(|| DomainError::not_found(format!("permission {pid} not found")))?;
                if p.is_archived {
                    return Err(DomainError::invalid(
                        "an archived permission cannot be assigned",
                    ));
                }
                within_callers_reach(g.principal(), &p.operations)?;
                Some(p)
            }
        };
        let now = self.clock.now();
        let user_id = new_id(IdKind::User);
        let user = User {
            id: user_id.clone(),
            org_id: org_id.clone(),
            // Unique by construction; a service account has no email.
            username: user_id.clone(),
            name: name.clone(),
            kind: UserKind::CustomerEmployee,
            is_active: true,
            is_registered: true,
            is_service_account: true,
            is_sso_required: false,
            is_archived: false,
            external_id,
            public_key: Some(pem.clone()),
            created_at: now,
            updated_at: now,
        };
        let credential = Credential {
            uuid: new_id(IdKind::Credential),
            org_id: org_id.clone(),
            user_id: user_id.clone(),
            cred_id: random_b64(16),
            kind: CredentialKind::Key,
            name: format!("{name} key"),
            public_key: pem,
            algorithm: None,
            is_active: true,
            sign_count: 0,
            encrypted_private_key: None,
            token_id: None,
            detail: None,
            created_at: now,
        };
        let ttl_secs = i64::from(days) * 86_400;
        let token = AccessToken {
            id: new_id(IdKind::Token),
            org_id: org_id.clone(),
            user_id: user_id.clone(),
            kind: TokenKind::ServiceAccount,
            name: name.clone(),
            is_active: true,
            expires_at: Some(now.plus_secs(ttl_secs)),
            revoked_at: None,
            external_id: None,
            app_id: None,
            created_at: now,
        };
        let assignment = permission.as_ref().map(|p| Assignment {
            id: new_id(IdKind::Assignment),
            org_id: org_id.clone(),
            permission_id: p.id.clone(),
            identity_id: user_id.clone(),
            is_immutable: false,
            created_at: now,
            updated_at: now,
        });
        self.store
            .create_service_account(&user, &credential, &token, assignment.as_ref())
            .await
            .map_err(|e| match e {
                keyfold_domain::StoreError::Conflict(_) => {
                    DomainError::conflict("externalId is already used by another identity")
                }
                other => other.into(),
            })?;
        let jwt = self.issue(&Claims {
            iss: jwt::ISSUER.into(),
            aud: Audience::Api.as_str().into(),
            sub: user_id.clone(),
            jti: token.id.clone(),
            iat: now.millis() / 1000,
            exp: now.millis() / 1000 + ttl_secs,
            username: user.username.clone(),
            app_metadata: jwt::AppMetadata {
                org_id: org_id.clone(),
                user_id: user_id.clone(),
                token_kind: TokenKind::ServiceAccount.as_str().into(),
            },
        })?;
        let mut res = self.service_account(&org_id, &user_id).await?;
        if let Some(t) = res
            .access_tokens
            .iter_mut()
            .find(|t| t.token_id == token.id)
        {
            t.access_token = Some(jwt);
        }
        Ok(res)
    }

    pub async fn list_service_accounts(
        &self,
        g: &Granted<op::ServiceAccountsRead>,
        limit: Option<u32>,
        token: Option<&str>,
    ) -> Result<Page<ServiceAccountResponse>> {
        let page = PageRequest::parse(limit, token)?;
        let views = self
            .store
            .list_service_account_views(g.org_id(), &page)
            .await?;
        let mut items = Vec::with_capacity(views.items.len());
        for v in views.items {
            items.push(self.shape(v).await?);
        }
        Ok(Page {
            items,
            next: views.next,
        })
    }

    pub async fn get_service_account(
        &self,
        g: &Granted<op::ServiceAccountsRead>,
        id: &str,
    ) -> Result<ServiceAccountResponse> {
        self.service_account(g.org_id(), id).await
    }

    pub async fn update_service_account(
        &self,
        g: &Granted<op::ServiceAccountsUpdate>,
        id: &str,
        body: UpdateServiceAccountBody,
    ) -> Result<ServiceAccountResponse> {
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
        self.service_account(g.org_id(), id).await?;
        match self
            .store
            .update_user_profile(
                g.org_id(),
                id,
                name.as_deref(),
                external_id.as_deref(),
                self.clock.now(),
            )
            .await
        {
            Ok(true) => {}
            Ok(false) => return Err(not_found(id)),
            Err(keyfold_domain::StoreError::Conflict(_)) => {
                return Err(DomainError::conflict(
                    "externalId is already used by another identity",
                ));
            }
            Err(e) => return Err(e.into()),
        }
        self.service_account(g.org_id(), id).await
    }

    /// Activate (`true`) or deactivate: the token stops or starts working on its next use.
    pub async fn set_service_account_active(
        &self,
        org_id: &str,
        id: &str,
        active: bool,
    ) -> Result<ServiceAccountResponse> {
        self.service_account(org_id, id).await?;
        if !self
            .store
            .set_user_active(org_id, id, active, self.clock.now())
            .await?
        {
            return Err(not_found(id));
        }
        self.service_account(org_id, id).await
    }

    pub async fn activate_service_account(
        &self,
        g: &Granted<op::ServiceAccountsActivate>,
        id: &str,
    ) -> Result<ServiceAccountResponse> {
        self.set_service_account_active(g.org_id(), id, true).await
    }

    pub async fn deactivate_service_account(
        &self,
        g: &Granted<op::ServiceAccountsDeactivate>,
        id: &str,
    ) -> Result<ServiceAccountResponse> {
        self.set_service_account_active(g.org_id(), id, false).await
    }

    /// Archives it and revokes its tokens for good.
    pub async fn delete_service_account(
        &self,
        g: &Granted<op::ServiceAccountsDelete>,
        id: &str,
    ) -> Result<ServiceAccountResponse> {
        let res = self.service_account(g.org_id(), id).await?;
        if !self
            .store
            .archive_user(g.org_id(), id, self.clock.now())
            .await?
        {
            return Err(not_found(id));
        }
        let mut res = res;
        res.user_info.is_active = false;
        for t in &mut res.access_tokens {
            t.is_active = false;
        }
        Ok(res)
    }

    async fn service_account(&self, org_id: &str, id: &str) -> Result<ServiceAccountResponse> {
        if !looks_like(IdKind::User, id) {
            return Err(not_found(id));
        }
        let view = self
            .store
            .get_user_view(org_id, id)
            .await?
            .filter(|v| v.user.is_service_account && !v.user.is_archived)
            .ok_or_else(|| not_found(id))?;
        self.shape(view).await
    }

    async fn shape(&self, view: UserView) -> Result<ServiceAccountResponse> {
        let user = view.user.clone();
        let app_id = self
            .store
            .list_apps(&user.org_id)
            .await?
            .first()
            .map(|a| a.id.clone())
            .unwrap_or_default();
        let creds = self.store.list_credentials(&user.org_id, &user.id).await?;
        let cred = creds.first();
        let tokens = self.store.tokens_of(&user.id).await?;
        let info = view.into_api();
        let access_tokens = tokens
            .into_iter()
            .filter(|t| t.kind == TokenKind::ServiceAccount && t.revoked_at.is_none())
            .map(|t| ServiceAccountToken {
                access_token: None,
                date_created: t.created_at.to_iso(),
                cred_id: cred.map(|c| c.cred_id.clone()).unwrap_or_default(),
                is_active: t.is_active && user.is_active,
                kind: "ServiceAccount".into(),
                linked_user_id: user.id.clone(),
                linked_app_id: app_id.clone(),
                name: t.name,
                org_id: user.org_id.clone(),
                permission_assignments: info.permission_assignments.clone(),
                public_key: cred.map(|c| c.public_key.clone()).unwrap_or_default(),
                token_id: t.id,
            })
            .collect();
        Ok(ServiceAccountResponse {
            user_info: info,
            access_tokens,
        })
    }
}
