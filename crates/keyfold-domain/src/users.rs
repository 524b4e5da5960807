//! User management use cases (`/auth/users`).
//!
//! A new employee is created unregistered, with a one-time registration code that leaves by
//! email (through the outbox, in the same transaction as the user). The user proves the code
//! and registers a credential (see `keyfold-auth`), and only then can log in. Deleting a user
//! archives it: it can no longer log in, every token it held dies at once, and its history
//! stays attributable.

use std::sync::Arc;

use keyfold_types::limits;
use keyfold_types::users::{
    CreatableUserKind, CreateUserBody, ListUsersQuery, ListableUserKind, UpdateUserBody, UserKind,
};

use crate::authz::{Granted, op};
use crate::error::{DomainError, Result, StoreError};
use crate::ids::{IdKind, looks_like, new_id};
use crate::model::{CodePurpose, Email, OneTimeCode, OutboxMessage, User, UserView};
use crate::page::{Page, PageRequest};
use crate::ports::Store;
use crate::secrets;
use crate::time::{Clock, Timestamp};
use crate::validate;

/// Settings the user use cases need.
#[derive(Debug, Clone)]
pub struct UserSettings {
    /// How long a registration code stays valid.
    pub registration_code_ttl_secs: i64,
    /// The API's public base URL, quoted in emails.
    pub public_url: String,
}

#[derive(Debug, Clone)]
pub struct UserService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: UserSettings,
}

impl UserService {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, settings: UserSettings) -> Self {
        Self {
            store,
            clock,
            settings,
        }
    }

    /// Creates an unregistered employee and emails its registration code. Retrying with the
    /// same `externalId` and email returns the user created the first time.
    pub async fn create(
        &self,
        g: &Granted<op::UsersCreate>,
        body: CreateUserBody,
    ) -> Result<UserView> {
        let org_id = g.org_id().to_string();
        let email = validate::email("email", &body.email)?;
        if body.kind == CreatableUserKind::DfnsStaff {
            return Err(DomainError::invalid(
                "kind DfnsStaff cannot be created: a self-hosted Keyfold has no staff users",
            ));
        }
        let external_id = body
            .external_id
            .as_deref()
            .map(|e| validate::required_text("externalId", e, limits::EXTERNAL_ID_MAX))
            .transpose()?;
        let public_key = body
            .public_key
            .as_deref()
            .map(|k| validate::required_text("publicKey", k, limits::PUBLIC_KEY_MAX))
            .transpose()?;

        if let Some(ext) = &external_id
            && let Some(existing) = self.store.find_user_by_external_id(&org_id, ext).await?
        {
            return self.idempotent_replay(existing, &email).await;
        }

        let now = self.clock.now();
        let user = User {
            id: new_id(IdKind::User),
            org_id: org_id.clone(),
            username: email.clone(),
            name: email.clone(),
            kind: UserKind::CustomerEmployee,
            is_active: true,
            is_registered: false,
            is_service_account: false,
            is_sso_required: body.is_sso_required.unwrap_or(false),
            is_archived: false,
            external_id: external_id.clone(),
            public_key,
            created_at: now,
            updated_at: now,
        };
        let (code, mail) = self.registration_code(&user, now)?;
        match self
            .store
            .create_user(&user, Some(&code), Some(&mail))
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) if external_id.is_some() => {
                // A concurrent retry won the race (the database may report either unique
                // rule first): answer like the retry it is.
                let ext = external_id.as_deref().unwrap_or_default();
                if let Some(existing) = self.store.find_user_by_external_id(&org_id, ext).await? {
                    return self.idempotent_replay(existing, &email).await;
                }
                return Err(DomainError::conflict(format!(
                    "a user with email {email} already exists"
                )));
            }
            Err(StoreError::Conflict(what)) if what == "users.username" => {
                return Err(DomainError::conflict(format!(
                    "a user with email {email} already exists"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        self.view(&org_id, &user.id).await
    }

    async fn idempotent_replay(&self, existing: User, email: &str) -> Result<UserView> {
        if existing.username == email {
            self.view(&existing.org_id, &existing.id).await
        } else {
            Err(DomainError::conflict(
                "externalId is already used by a different user",
            ))
        }
    }

    pub async fn list(
        &self,
        g: &Granted<op::UsersRead>,
        q: ListUsersQuery,
    ) -> Result<Page<UserView>> {
        let page = PageRequest::parse(q.limit, q.pagination_token.as_deref())?;
        let kind = q.kind.map(|k| match k {
            ListableUserKind::CustomerEmployee => UserKind::CustomerEmployee,
            ListableUserKind::EndUser => UserKind::EndUser,
        });
        Ok(self.store.list_user_views(g.org_id(), kind, &page).await?)
    }

    pub async fn get(&self, g: &Granted<op::UsersRead>, user_id: &str) -> Result<UserView> {
        if !looks_like(IdKind::User, user_id) {
            return Err(not_found(user_id));
        }
        // Service accounts are managed (and permission-checked) under
        // /auth/service-accounts only.
        match self.store.get_user_view(g.org_id(), user_id).await? {
            Some(v) if !v.user.is_archived && !v.user.is_service_account => Ok(v),
            _ => Err(not_found(user_id)),
        }
    }

    pub async fn update(
        &self,
        g: &Granted<op::UsersUpdate>,
        user_id: &str,
        body: UpdateUserBody,
    ) -> Result<UserView> {
        self.load(g.org_id(), user_id).await?;
        let now = self.clock.now();
        if !self
            .store
            .update_user_sso(g.org_id(), user_id, body.is_sso_required, now)
            .await?
        {
            return Err(not_found(user_id));
        }
        self.get_after_write(g.org_id(), user_id).await
    }

    pub async fn activate(
        &self,
        g: &Granted<op::UsersActivate>,
        user_id: &str,
    ) -> Result<UserView> {
        self.set_active(g.org_id(), &g.principal().user_id, user_id, true)
            .await
    }

    /// Deactivation also revokes every token of the user, effective on its next request.
    pub async fn deactivate(
        &self,
        g: &Granted<op::UsersDeactivate>,
        user_id: &str,
    ) -> Result<UserView> {
        self.set_active(g.org_id(), &g.principal().user_id, user_id, false)
            .await
    }

    pub async fn delete(&self, g: &Granted<op::UsersDelete>, user_id: &str) -> Result<UserView> {
        if g.principal().user_id == user_id {
            return Err(DomainError::invalid(
                "you cannot delete yourself; another administrator must do it",
            ));
        }
        self.load(g.org_id(), user_id).await?;
        let now = self.clock.now();
        if !self.store.archive_user(g.org_id(), user_id, now).await? {
            return Err(not_found(user_id));
        }
        self.view(g.org_id(), user_id).await
    }

    /// Sends a fresh registration code to an unregistered user (public endpoint). Unknown or
    /// already-registered usernames get the same answer, so the endpoint reveals nothing.
    pub async fn resend_registration_code(&self, org_id: &str, username: &str) -> Result<()> {
        let username = validate::email("username", username)?;
        if !looks_like(IdKind::Org, org_id) {
            return Ok(());
        }
        let Some(user) = self.store.find_user_by_username(org_id, &username).await? else {
            return Ok(());
        };
        if user.is_registered || !user.is_active {
            return Ok(());
        }
        let now = self.clock.now();
        let (code, mail) = self.registration_code(&user, now)?;
        self.store.replace_code(&code, &mail).await?;
        Ok(())
    }

    async fn set_active(
        &self,
        org_id: &str,
        caller: &str,
        user_id: &str,
        active: bool,
    ) -> Result<UserView> {
        if !active && caller == user_id {
            return Err(DomainError::invalid(
                "you cannot deactivate yourself; another administrator must do it",
            ));
        }
        self.load(org_id, user_id).await?;
        let now = self.clock.now();
        if !self
            .store
            .set_user_active(org_id, user_id, active, now)
            .await?
        {
            return Err(not_found(user_id));
        }
        self.get_after_write(org_id, user_id).await
    }

    async fn get_after_write(&self, org_id: &str, user_id: &str) -> Result<UserView> {
        self.view(org_id, user_id).await
    }

    /// A live user of this organization, or 404 (also for malformed ids and other tenants'
    /// users, which must be indistinguishable from missing ones).
    async fn load(&self, org_id: &str, user_id: &str) -> Result<User> {
        if !looks_like(IdKind::User, user_id) {
            return Err(not_found(user_id));
        }
        match self.store.get_user(org_id, user_id).await? {
            Some(u) if !u.is_archived && !u.is_service_account => Ok(u),
            _ => Err(not_found(user_id)),
        }
    }

    fn registration_code(
        &self,
        user: &User,
        now: Timestamp,
    ) -> Result<(OneTimeCode, OutboxMessage)> {
        let code = secrets::new_code();
        let record = OneTimeCode {
            id: new_id(IdKind::Code),
            org_id: user.org_id.clone(),
            user_id: user.id.clone(),
            purpose: CodePurpose::Registration,
            code_hash: secrets::code_hash(&code),
            attempts: 0,
            expires_at: now.plus_secs(self.settings.registration_code_ttl_secs),
            used_at: None,
            created_at: now,
        };
        let email = Email {
            to: user.username.clone(),
            subject: "Your Keyfold registration code".into(),
            body: format!(
                "Welcome to Keyfold.\n\n\
                 Your registration code is: {code}\n\n\
                 Organization: {org}\nUsername: {username}\nServer: {url}\n\n\
                 Register a credential with POST {url}/auth/registration/init \
                 {{\"orgId\":\"{org}\",\"username\":\"{username}\",\"registrationCode\":\"{code}\"}} \
                 and then POST {url}/auth/registration.\n\
                 The code expires at {expires} and works once.\n",
                code = &*code,
                org = user.org_id,
                username = user.username,
                url = self.settings.public_url,
                expires = record.expires_at.to_iso(),
            ),
        };
        let payload = serde_json::to_string(&email)
            .map_err(|e| DomainError::internal(format!("encoding email: {e}")))?;
        let mail = OutboxMessage {
            id: new_id(IdKind::Outbox),
            kind: "email".into(),
            payload,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            sent_at: None,
            created_at: now,
        };
        Ok((record, mail))
    }

    /// The user as the API shows it (credential and assignments joined in the store).
    async fn view(&self, org_id: &str, user_id: &str) -> Result<UserView> {
        self.store
            .get_user_view(org_id, user_id)
            .await?
            .ok_or_else(|| not_found(user_id))
    }
}

fn not_found(user_id: &str) -> DomainError {
    DomainError::not_found(format!("user {user_id} not found"))
}
