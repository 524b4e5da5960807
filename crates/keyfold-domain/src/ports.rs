//! The store port: what the domain needs from persistence, and nothing about how.
//!
//! Methods are shaped around the domain's atomic steps rather than around tables: where a
//! use case must change several things together (bootstrap an organization, complete a
//! registration, create a user *and* the email carrying its code) the port offers one method
//! and the adapter runs it in one transaction. Single-use things (challenges, user action
//! tokens) are "used" by a conditional update whose row count says who won a race.
//!
//! The same conformance suite (`keyfold-store/tests`) runs every adapter against this trait.

use async_trait::async_trait;
use keyfold_types::users::UserKind;

use crate::error::StoreError;
use crate::model::UserView;
use crate::model::{
    AccessToken, App, AssignmentView, Bootstrap, Challenge, CodePurpose, Credential, JwtKey,
    OneTimeCode, Org, OutboxMessage, SessionRecord, User, UserAction,
};
use crate::page::{Page, PageRequest};
use crate::time::Timestamp;

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait OrgStore: Send + Sync {
    /// A cheap round trip proving the database answers.
    async fn ping(&self) -> StoreResult<()>;
    /// Writes a new organization with its default app, root user, root credential, the
    /// built-in admin permission and its assignment — all or nothing.
    async fn bootstrap(&self, b: &Bootstrap) -> StoreResult<()>;
    async fn get_org(&self, org_id: &str) -> StoreResult<Option<Org>>;
    async fn list_orgs(&self) -> StoreResult<Vec<Org>>;
    async fn list_apps(&self, org_id: &str) -> StoreResult<Vec<App>>;
    /// Sets the operations of every immutable (built-in) permission, so a new release's new
    /// operations reach the root without a migration.
    async fn sync_builtin_permissions(
        &self,
        operations: &[String],
        now: Timestamp,
    ) -> StoreResult<()>;
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Inserts a user, optionally with its registration code and the email that carries it.
    /// Conflicts: `users.username` (a live user has that username), `users.external_id`.
    async fn create_user(
        &self,
        user: &User,
        code: Option<&OneTimeCode>,
        mail: Option<&OutboxMessage>,
    ) -> StoreResult<()>;
    async fn get_user(&self, org_id: &str, user_id: &str) -> StoreResult<Option<User>>;
    /// The live (not archived) user with this username.
    async fn find_user_by_username(
        &self,
        org_id: &str,
        username: &str,
    ) -> StoreResult<Option<User>>;
    async fn find_user_by_external_id(
        &self,
        org_id: &str,
        external_id: &str,
    ) -> StoreResult<Option<User>>;
    /// Live users, newest first, with their first credential and permission assignments —
    /// one round trip for the whole page.
    async fn list_user_views(
        &self,
        org_id: &str,
        kind: Option<UserKind>,
        page: &PageRequest,
    ) -> StoreResult<Page<UserView>>;
    /// One user (archived ones included) as the API shows it, in one round trip.
    async fn get_user_view(&self, org_id: &str, user_id: &str) -> StoreResult<Option<UserView>>;
    /// Sets `is_sso_required`; returns false when the user does not exist.
    async fn update_user_sso(
        &self,
        org_id: &str,
        user_id: &str,
        sso: bool,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Activates or deactivates; deactivating also revokes the user's tokens. Returns false
    /// when no live user matched.
    async fn set_user_active(
        &self,
        org_id: &str,
        user_id: &str,
        active: bool,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Archives (deletes): inactive, archived, every token revoked — atomically.
    async fn archive_user(&self, org_id: &str, user_id: &str, now: Timestamp) -> StoreResult<bool>;
    /// The permission assignments (with their permissions) of these identities.
    async fn assignments_of(&self, identity_ids: &[String]) -> StoreResult<Vec<AssignmentView>>;
}

#[async_trait]
pub trait CredentialStore: Send + Sync {
    async fn list_credentials(&self, org_id: &str, user_id: &str) -> StoreResult<Vec<Credential>>;
    async fn find_credential(&self, org_id: &str, cred_id: &str)
    -> StoreResult<Option<Credential>>;
}

#[async_trait]
pub trait CodeStore: Send + Sync {
    /// Burns every live code of the same user and purpose, stores this one and queues the
    /// email that carries it — atomically.
    async fn replace_code(&self, code: &OneTimeCode, mail: &OutboxMessage) -> StoreResult<()>;
    /// The live (unused, unexpired) code of this user and purpose.
    async fn live_code(
        &self,
        org_id: &str,
        user_id: &str,
        purpose: CodePurpose,
        now: Timestamp,
    ) -> StoreResult<Option<OneTimeCode>>;
    /// Counts a wrong guess; returns the new attempt count.
    async fn record_code_attempt(&self, code_id: &str) -> StoreResult<i64>;
}

#[async_trait]
pub trait ChallengeStore: Send + Sync {
    async fn insert_challenge(&self, c: &Challenge) -> StoreResult<()>;
    async fn get_challenge(&self, id: &str) -> StoreResult<Option<Challenge>>;
    /// Marks it used when it is unused and unexpired; true for exactly one caller.
    async fn use_challenge(&self, id: &str, now: Timestamp) -> StoreResult<bool>;
}

#[async_trait]
pub trait RegistrationStore: Send + Sync {
    /// Uses the registration challenge and the code, stores the credentials and marks the
    /// user registered — atomically. False when the challenge or code was already used.
    /// Conflict `credentials.cred_id` when a credential id is taken.
    async fn complete_registration(
        &self,
        challenge_id: &str,
        code_id: &str,
        user_id: &str,
        credentials: &[Credential],
        now: Timestamp,
    ) -> StoreResult<bool>;
}

#[async_trait]
pub trait TokenStore: Send + Sync {
    async fn insert_token(&self, token: &AccessToken) -> StoreResult<()>;
    /// The token joined with its identity, organization and granted operations.
    async fn session(&self, token_id: &str) -> StoreResult<Option<SessionRecord>>;
    async fn revoke_token(&self, token_id: &str, now: Timestamp) -> StoreResult<()>;
    /// Revokes every login session (`Token` kind) of the user.
    async fn revoke_sessions_of(&self, user_id: &str, now: Timestamp) -> StoreResult<()>;
}

#[async_trait]
pub trait UserActionStore: Send + Sync {
    /// Uses the action challenge and records the signed action — atomically. False when the
    /// challenge was already used or has expired.
    async fn record_user_action(
        &self,
        action: &UserAction,
        challenge_id: &str,
        now: Timestamp,
    ) -> StoreResult<bool>;
    async fn find_user_action(&self, token_hash: &str) -> StoreResult<Option<UserAction>>;
    /// Marks the action used when unused and unexpired; true for exactly one caller.
    async fn consume_user_action(&self, id: &str, now: Timestamp) -> StoreResult<bool>;
}

#[async_trait]
pub trait JwtKeyStore: Send + Sync {
    async fn jwt_keys(&self) -> StoreResult<Vec<JwtKey>>;
    /// Stores `key` as the current signing key; earlier keys stay for verification.
    async fn rotate_jwt_key(&self, key: &JwtKey) -> StoreResult<()>;
}

#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Claims up to `limit` due messages by pushing their next attempt to `lease_until`, so
    /// concurrent workers (other replicas) never take the same message.
    async fn claim_outbox(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<OutboxMessage>>;
    async fn outbox_sent(&self, id: &str, now: Timestamp) -> StoreResult<()>;
    async fn outbox_failed(&self, id: &str, error: &str, retry_at: Timestamp) -> StoreResult<()>;
}

/// Everything the API needs from persistence.
pub trait Store:
    OrgStore
    + UserStore
    + CredentialStore
    + CodeStore
    + ChallengeStore
    + RegistrationStore
    + TokenStore
    + UserActionStore
    + JwtKeyStore
    + OutboxStore
    + std::fmt::Debug
    + Send
    + Sync
{
}

impl<T> Store for T where
    T: OrgStore
        + UserStore
        + CredentialStore
        + CodeStore
        + ChallengeStore
        + RegistrationStore
        + TokenStore
        + UserActionStore
        + JwtKeyStore
        + OutboxStore
        + std::fmt::Debug
        + Send
        + Sync
{
}
