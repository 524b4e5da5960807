//! The store port implemented once in SQL both dialects accept.

use async_trait::async_trait;
use keyfold_domain::StoreError;
use keyfold_domain::model::{
    AccessToken, App, Assignment, AssignmentView, Bootstrap, Challenge, CodePurpose, Credential,
    JwtKey, OneTimeCode, Org, OutboxMessage, SessionRecord, TokenKind, User, UserAction, UserView,
};
use keyfold_domain::page::{Cursor, Page, PageRequest};
use keyfold_domain::ports::{
    ChallengeStore, CodeStore, CredentialStore, CredentialToggle, JwtKeyStore, OrgStore,
    OutboxStore, RegistrationStore, StoreResult, TokenStore, UserActionStore, UserStore,
};
use keyfold_domain::time::Timestamp;
use keyfold_types::users::UserKind;
use sqlx::error::ErrorKind;

use crate::rows::*;
use crate::{Backend, SqlStore, on_read, on_write};

/// Maps sqlx errors to the port's. Unique violations are named by the rule they break so
/// the domain can answer precisely; other causes are logged here and reported generically.
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    if let Some(db) = e.as_database_error()
        && db.kind() == ErrorKind::UniqueViolation
    {
        // PostgreSQL names the index; SQLite names the columns.
        let detail = format!("{} {}", db.constraint().unwrap_or_default(), db.message());
        let which = if detail.contains("users_username") || detail.contains("users.username") {
            "users.username"
        } else if detail.contains("users_external_id") || detail.contains("users.external_id") {
            "users.external_id"
        } else if detail.contains("credentials_cred_id") || detail.contains("credentials.cred_id") {
            "credentials.cred_id"
        } else if detail.contains("keys_external_id") || detail.contains("keys.external_id") {
            "keys.external_id"
        } else if detail.contains("wallets_external_id") || detail.contains("wallets.external_id") {
            "wallets.external_id"
        } else if detail.contains("signatures_external_id")
            || detail.contains("signatures.external_id")
        {
            "signatures.external_id"
        } else if detail.contains("access_tokens_external")
            || detail.contains("access_tokens.external_id")
        {
            "access_tokens.external_id"
        } else if detail.contains("permission_assignments") {
            "permission_assignments.identity"
        } else {
            "unique"
        };
        return StoreError::Conflict(which.into());
    }
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => unavailable(e),
        other => {
            tracing::error!(error = %other, "database error");
            StoreError::Internal(other.to_string())
        }
    }
}

pub(crate) fn unavailable(e: sqlx::Error) -> StoreError {
    tracing::error!(error = %e, "database unavailable");
    StoreError::Unavailable(e.to_string())
}

pub(crate) fn ops_from_json(s: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(s).map_err(|e| StoreError::Internal(format!("stored operations: {e}")))
}

pub(crate) fn ops_to_json(ops: &[String]) -> StoreResult<String> {
    serde_json::to_string(ops).map_err(|e| StoreError::Internal(format!("operations: {e}")))
}

/// `$from, $from+1, …` placeholders for an `IN (…)` list.
pub(crate) fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

const USER_COLS: &str = "id, org_id, username, name, kind, is_active, is_registered, \
    is_service_account, is_sso_required, is_archived, external_id, public_key, created_at, updated_at";
const CRED_COLS: &str = "uuid, org_id, user_id, cred_id, kind, name, public_key, algorithm, \
    is_active, sign_count, encrypted_private_key, token_id, detail, created_at";
const TOKEN_COLS: &str = "id, org_id, user_id, kind, name, is_active, expires_at, revoked_at, external_id, app_id, created_at";
const CHALLENGE_COLS: &str = "id, org_id, kind, user_id, challenge, token_id, http_method, \
    http_path, payload_hash, detail, expires_at, used_at, created_at";
const CODE_COLS: &str =
    "id, org_id, user_id, purpose, code_hash, attempts, expires_at, used_at, created_at";
const OUTBOX_COLS: &str =
    "id, kind, payload, attempts, next_attempt_at, last_error, sent_at, created_at";

/// Completes a `WITH page AS (SELECT <users> …)` query: each user of the page with its first
/// credential and (one row each) its permission assignments, in page order.
const VIEW_SELECT: &str = "SELECT page.*, \
     (SELECT c.uuid FROM credentials c WHERE c.user_id = page.id AND c.token_id IS NULL \
      ORDER BY c.created_at, c.uuid LIMIT 1) AS first_credential, \
     a.id AS assignment_id, p.id AS permission_id, p.name AS permission_name, \
     p.operations AS operations \
     FROM page \
     LEFT JOIN permission_assignments a ON a.identity_id = page.id \
     LEFT JOIN permissions p ON p.id = a.permission_id AND NOT p.is_archived \
     ORDER BY page.created_at DESC, page.id DESC, a.created_at, a.id";

/// Folds the rows of a view query into one `UserView` per user, keeping the order.
fn group_views(rows: Vec<UserViewRow>) -> StoreResult<Vec<UserView>> {
    let mut out: Vec<UserView> = Vec::new();
    for r in rows {
        let user = User::try_from(r.user)?;
        if out.last().is_none_or(|v| v.user.id != user.id) {
            out.push(UserView {
                user,
                first_credential_uuid: r.first_credential,
                assignments: Vec::new(),
            });
        }
        if let (Some(assignment_id), Some(permission_id), Some(name), Some(ops), Some(view)) = (
            r.assignment_id,
            r.permission_id,
            r.permission_name,
            r.operations,
            out.last_mut(),
        ) {
            view.assignments.push(AssignmentView {
                identity_id: view.user.id.clone(),
                assignment_id,
                permission_id,
                permission_name: name,
                operations: ops_from_json(&ops)?,
            });
        }
    }
    Ok(out)
}

/// One `user_actions` row (`$a: &UserAction`) through `$exec`; `Result<(), sqlx::Error>`.
macro_rules! insert_user_action {
    ($exec:expr, $a:expr) => {
        sqlx::query(
            "INSERT INTO user_actions (id, org_id, user_id, token_id, token_hash, credential_uuid, \
             http_method, http_path, payload_hash, challenge, client_data, signature, expires_at, \
             used_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(&$a.id)
        .bind(&$a.org_id)
        .bind(&$a.user_id)
        .bind(&$a.token_id)
        .bind(&$a.token_hash)
        .bind(&$a.credential_uuid)
        .bind(&$a.http_method)
        .bind(&$a.http_path)
        .bind(&$a.payload_hash)
        .bind(&$a.challenge)
        .bind(&$a.client_data)
        .bind(&$a.signature)
        .bind($a.expires_at.0)
        .bind($a.used_at.map(|t| t.0))
        .bind($a.created_at.0)
        .execute($exec)
        .await
        .map(|_| ())
    };
}

pub(crate) use insert_user_action;

/// Whether `e` is a unique violation (for inserts whose conflict is an answer, not an error).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.kind() == ErrorKind::UniqueViolation)
}

/// Inserts one row; the same tokens compile for either backend's executor.
macro_rules! insert_user {
    ($exec:expr, $u:expr) => {
        sqlx::query(
            "INSERT INTO users (id, org_id, username, name, kind, is_active, is_registered, \
             is_service_account, is_sso_required, is_archived, external_id, public_key, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&$u.id)
        .bind(&$u.org_id)
        .bind(&$u.username)
        .bind(&$u.name)
        .bind($u.kind.as_str())
        .bind($u.is_active)
        .bind($u.is_registered)
        .bind($u.is_service_account)
        .bind($u.is_sso_required)
        .bind($u.is_archived)
        .bind(&$u.external_id)
        .bind(&$u.public_key)
        .bind($u.created_at.0)
        .bind($u.updated_at.0)
        .execute($exec)
    };
}

macro_rules! insert_credential {
    ($exec:expr, $c:expr) => {
        sqlx::query(
            "INSERT INTO credentials (uuid, org_id, user_id, cred_id, kind, name, public_key, \
             algorithm, is_active, sign_count, encrypted_private_key, token_id, detail, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&$c.uuid)
        .bind(&$c.org_id)
        .bind(&$c.user_id)
        .bind(&$c.cred_id)
        .bind($c.kind.as_str())
        .bind(&$c.name)
        .bind(&$c.public_key)
        .bind(&$c.algorithm)
        .bind($c.is_active)
        .bind($c.sign_count)
        .bind(&$c.encrypted_private_key)
        .bind(&$c.token_id)
        .bind(&$c.detail)
        .bind($c.created_at.0)
        .execute($exec)
    };
}

macro_rules! insert_token {
    ($exec:expr, $t:expr) => {
        sqlx::query(
            "INSERT INTO access_tokens (id, org_id, user_id, kind, name, is_active, expires_at, \
             revoked_at, external_id, app_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&$t.id)
        .bind(&$t.org_id)
        .bind(&$t.user_id)
        .bind($t.kind.as_str())
        .bind(&$t.name)
        .bind($t.is_active)
        .bind($t.expires_at.map(|x| x.0))
        .bind($t.revoked_at.map(|x| x.0))
        .bind(&$t.external_id)
        .bind(&$t.app_id)
        .bind($t.created_at.0)
        .execute($exec)
    };
}

macro_rules! insert_assignment {
    ($exec:expr, $a:expr) => {
        sqlx::query(
            "INSERT INTO permission_assignments (id, org_id, permission_id, identity_id, \
             is_immutable, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&$a.id)
        .bind(&$a.org_id)
        .bind(&$a.permission_id)
        .bind(&$a.identity_id)
        .bind($a.is_immutable)
        .bind($a.created_at.0)
        .bind($a.updated_at.0)
        .execute($exec)
    };
}

macro_rules! insert_code {
    ($exec:expr, $c:expr) => {
        sqlx::query(
            "INSERT INTO one_time_codes (id, org_id, user_id, purpose, code_hash, attempts, \
             expires_at, used_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&$c.id)
        .bind(&$c.org_id)
        .bind(&$c.user_id)
        .bind($c.purpose.as_str())
        .bind(&$c.code_hash)
        .bind($c.attempts)
        .bind($c.expires_at.0)
        .bind($c.used_at.map(|t| t.0))
        .bind($c.created_at.0)
        .execute($exec)
    };
}

macro_rules! insert_outbox {
    ($exec:expr, $m:expr) => {
        sqlx::query(
            "INSERT INTO outbox (id, kind, payload, attempts, next_attempt_at, last_error, sent_at, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&$m.id)
        .bind(&$m.kind)
        .bind(&$m.payload)
        .bind($m.attempts)
        .bind($m.next_attempt_at.0)
        .bind(&$m.last_error)
        .bind($m.sent_at.map(|t| t.0))
        .bind($m.created_at.0)
        .execute($exec)
    };
}

/// Spends a single-use row (challenge, code, user action): marks it used if it is unused and
/// unexpired. The row count (1 or 0) says whether this caller won.
macro_rules! insert_challenge {
    ($exec:expr, $c:expr) => {
        sqlx::query(
            "INSERT INTO challenges (id, org_id, kind, user_id, challenge, token_id, http_method, \
             http_path, payload_hash, detail, expires_at, used_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&$c.id)
        .bind(&$c.org_id)
        .bind($c.kind.as_str())
        .bind(&$c.user_id)
        .bind(&$c.challenge)
        .bind(&$c.token_id)
        .bind(&$c.http_method)
        .bind(&$c.http_path)
        .bind(&$c.payload_hash)
        .bind(&$c.detail)
        .bind($c.expires_at.0)
        .bind($c.used_at.map(|t| t.0))
        .bind($c.created_at.0)
        .execute($exec)
    };
}

macro_rules! insert_app {
    ($exec:expr, $a:expr) => {
        sqlx::query(
            "INSERT INTO apps (id, org_id, name, kind, expected_origin, expected_rp_id, \
             public_key, is_active, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&$a.id)
        .bind(&$a.org_id)
        .bind(&$a.name)
        .bind($a.kind.as_str())
        .bind(&$a.expected_origin)
        .bind(&$a.expected_rp_id)
        .bind(&$a.public_key)
        .bind($a.is_active)
        .bind($a.created_at.0)
        .execute($exec)
    };
}

macro_rules! spend {
    ($exec:expr, $table:literal, $id:expr, $now:expr) => {
        sqlx::query(concat!(
            "UPDATE ",
            $table,
            " SET used_at = $1 WHERE id = $2 AND used_at IS NULL AND expires_at > $1"
        ))
        .bind($now.0)
        .bind($id)
        .execute($exec)
        .await
        .map(|r| r.rows_affected())
        .map_err(map_err)
    };
}

#[async_trait]
impl OrgStore for SqlStore {
    async fn ping(&self) -> StoreResult<()> {
        on_read!(self, |p| sqlx::query("SELECT 1")
            .execute(p)
            .await
            .map(|_| ()))
        .map_err(map_err)
    }

    async fn bootstrap(&self, b: &Bootstrap) -> StoreResult<()> {
        let ops = ops_to_json(&b.admin_permission.operations)?;
        let r = on_write!(self, |p| {
            let mut tx = p.begin().await.map_err(map_err)?;
            sqlx::query(
                "INSERT INTO orgs (id, name, is_active, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&b.org.id)
            .bind(&b.org.name)
            .bind(b.org.is_active)
            .bind(b.org.created_at.0)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            insert_app!(&mut *tx, b.app).await.map_err(map_err)?;
            insert_user!(&mut *tx, b.root).await.map_err(map_err)?;
            insert_credential!(&mut *tx, b.credential)
                .await
                .map_err(map_err)?;
            let perm = &b.admin_permission;
            sqlx::query(
                "INSERT INTO permissions (id, org_id, name, operations, is_immutable, is_archived, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&perm.id)
            .bind(&perm.org_id)
            .bind(&perm.name)
            .bind(&ops)
            .bind(perm.is_immutable)
            .bind(perm.is_archived)
            .bind(perm.created_at.0)
            .bind(perm.updated_at.0)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            let a = &b.assignment;
            sqlx::query(
                "INSERT INTO permission_assignments (id, org_id, permission_id, identity_id, \
                 is_immutable, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&a.id)
            .bind(&a.org_id)
            .bind(&a.permission_id)
            .bind(&a.identity_id)
            .bind(a.is_immutable)
            .bind(a.created_at.0)
            .bind(a.updated_at.0)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            tx.commit().await.map_err(map_err)
        });
        self.sessions_changed();
        r
    }

    async fn get_org(&self, org_id: &str) -> StoreResult<Option<Org>> {
        let row: Option<OrgRow> = on_read!(self, |p| {
            sqlx::query_as("SELECT id, name, is_active, created_at FROM orgs WHERE id = $1")
                .bind(org_id)
                .fetch_optional(p)
                .await
        })
        .map_err(map_err)?;
        Ok(row.map(Org::from))
    }

    async fn list_orgs(&self) -> StoreResult<Vec<Org>> {
        let rows: Vec<OrgRow> = on_read!(self, |p| {
            sqlx::query_as(
                "SELECT id, name, is_active, created_at FROM orgs ORDER BY created_at, id",
            )
            .fetch_all(p)
            .await
        })
        .map_err(map_err)?;
        Ok(rows.into_iter().map(Org::from).collect())
    }

    async fn insert_app(&self, app: &App) -> StoreResult<()> {
        on_write!(self, |p| insert_app!(p, app)
            .await
            .map(|r| r.rows_affected()))
        .map_err(map_err)?;
        Ok(())
    }

    async fn get_app(&self, app_id: &str) -> StoreResult<Option<App>> {
        let row: Option<AppRow> = on_read!(self, |p| {
            sqlx::query_as(
                "SELECT id, org_id, name, kind, expected_origin, expected_rp_id, public_key, \
                 is_active, created_at FROM apps WHERE id = $1",
            )
            .bind(app_id)
            .fetch_optional(p)
            .await
        })
        .map_err(map_err)?;
        row.map(App::try_from).transpose()
    }

    async fn use_app_nonce(
        &self,
        app_id: &str,
        nonce: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool> {
        on_write!(self, |p| {
            let mut tx = p.begin().await.map_err(map_err)?;
            sqlx::query("DELETE FROM app_nonces WHERE expires_at < $1")
                .bind(now.0)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            let n = sqlx::query(
                "INSERT INTO app_nonces (app_id, nonce, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(app_id)
            .bind(nonce)
            .bind(expires_at.0)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
            tx.commit().await.map_err(map_err)?;
            Ok(n == 1)
        })
    }

    async fn list_apps(&self, org_id: &str) -> StoreResult<Vec<App>> {
        let rows: Vec<AppRow> = on_read!(self, |p| {
            sqlx::query_as(
                "SELECT id, org_id, name, kind, expected_origin, expected_rp_id, public_key, \
                 is_active, created_at FROM apps WHERE org_id = $1 ORDER BY created_at, id",
            )
            .bind(org_id)
            .fetch_all(p)
            .await
        })
        .map_err(map_err)?;
        rows.into_iter().map(App::try_from).collect()
    }

    async fn sync_builtin_permissions(
        &self,
        operations: &[String],
        now: Timestamp,
    ) -> StoreResult<()> {
        let ops = ops_to_json(operations)?;
        on_write!(self, |p| {
            sqlx::query(
                "UPDATE permissions SET operations = $1, updated_at = $2 \
                 WHERE is_immutable AND operations <> $1",
            )
            .bind(&ops)
            .bind(now.0)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(map_err)?;
        self.sessions_changed();
        Ok(())
    }
}

#[async_trait]
impl UserStore for SqlStore {
    async fn create_user(
        &self,
        user: &User,
        code: Option<&OneTimeCode>,
        mail: Option<&OutboxMessage>,
    ) -> StoreResult<()> {
        on_write!(self, |p| {
            let mut tx = p.begin().await.map_err(map_err)?;
            insert_user!(&mut *tx, user).await.map_err(map_err)?;
            if let Some(c) = code {
                insert_code!(&mut *tx, c).await.map_err(map_err)?;
            }
            if let Some(m) = mail {
                insert_outbox!(&mut *tx, m).await.map_err(map_err)?;
            }
            tx.commit().await.map_err(map_err)
        })
    }

    async fn get_user(&self, org_id: &str, user_id: &str) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE org_id = $1 AND id = $2");
        let row: Option<UserRow> = on_read!(self, |p| {
            sqlx::query_as(&sql)
                .bind(org_id)
                .bind(user_id)
                .fetch_optional(p)
                .await
        })
        .map_err(map_err)?;
        row.map(User::try_from).transpose()
    }

    async fn find_user_by_username(
        &self,
        org_id: &str,
        username: &str,
    ) -> StoreResult<Option<User>> {
        let sql = format!(
            "SELECT {USER_COLS} FROM users WHERE org_id = $1 AND username = $2 AND NOT is_archived"
        );
        let row: Option<UserRow> = on_read!(self, |p| {
            sqlx::query_as(&sql)
                .bind(org_id)
                .bind(username)
                .fetch_optional(p)
                .await
        })
        .map_err(map_err)?;
        row.map(User::try_from).transpose()
    }

    async fn find_user_by_external_id(
        &self,
        org_id: &str,
        external_id: &str,
    ) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE org_id = $1 AND external_id = $2");
        let row: Option<UserRow> = on_read!(self, |p| {
            sqlx::query_as(&sql)
                .bind(org_id)
                .bind(external_id)
                .fetch_optional(p)
                .await
        })
        .map_err(map_err)?;
        row.map(User::try_from).transpose()
    }

    async fn list_user_views(
        &self,
        org_id: &str,
        kind: Option<UserKind>,
        page: &PageRequest,
    ) -> StoreResult<Page<UserView>> {
        self.list_views(org_id, kind, false, page).await
    }

    async fn list_service_account_views(
        &self,
        org_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<UserView>> {
        self.list_views(org_id, None, true, page).await
    }

    async fn create_service_account(
        &self,
        user: &User,
        credential: &Credential,
        token: &AccessToken,
        assignment: Option<&keyfold_domain::model::Assignment>,
    ) -> StoreResult<()> {
        on_write!(self, |p| {
            let mut tx = p.begin().await.map_err(map_err)?;
            insert_user!(&mut *tx, user).await.map_err(map_err)?;
            insert_credential!(&mut *tx, credential)
                .await
                .map_err(map_err)?;
            insert_token!(&mut *tx, token).await.map_err(map_err)?;
            if let Some(a) = assignment {
                insert_assignment!(&mut *tx, a).await.map_err(map_err)?;
            }
            tx.commit().await.map_err(map_err)
        })?;
        self.sessions_changed();
        Ok(())
    }

    async fn update_user_profile(
        &self,
        org_id: &str,
        user_id: &str,
        name: Option<&str>,
        external_id: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let n = on_write!(self, |p| {
            sqlx::query(
                "UPDATE users SET name = COALESCE($1, name), external_id = COALESCE($2, external_id), \
                 updated_at = $3 WHERE org_id = $4 AND id = $5 AND NOT is_archived",
            )
            .bind(name)
            .bind(external_id)
            .bind(now.0)
            .bind(org_id)
            .bind(user_id)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(map_err)?;
        Ok(n == 1)
    }

    async fn tokens_of(&self, user_id: &str) -> StoreResult<Vec<AccessToken>> {
        let rows: Vec<TokenRow> = on_read!(self, |p| {
            sqlx::query_as(&format!(
                "SELECT {TOKEN_COLS} FROM access_tokens \
                 WHERE user_id = $1 AND kind <> 'Token' ORDER BY created_at, id"
            ))
            .bind(user_id)
            .fetch_all(p)
            .await
        })
        .map_err(map_err)?;
        rows.into_iter().map(AccessToken::try_from).collect()
    }

    async fn get_user_view(&self, org_id: &str, user_id: &str) -> StoreResult<Option<UserView>> {
        let sql = format!(
            "WITH page AS (SELECT {USER_COLS} FROM users WHERE org_id = $1 AND id = $2) {VIEW_SELECT}"
        );
        let rows: Vec<UserViewRow> = on_read!(self, |p| {
            sqlx::query_as(&sql)
                .bind(org_id)
                .bind(user_id)
                .fetch_all(p)
                .await
        })
        .map_err(map_err)?;
        Ok(group_views(rows)?.pop())
    }

    async fn update_user_sso(
        &self,
        org_id: &str,
        user_id: &str,
        sso: bool,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let done = on_write!(self, |p| {
            sqlx::query(
                "UPDATE users SET is_sso_required = $1, updated_at = $2 \
                 WHERE org_id = $3 AND id = $4 AND NOT is_archived",
            )
            .bind(sso)
            .bind(now.0)
            .bind(org_id)
            .bind(user_id)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(map_err)?;
        Ok(done == 1)
    }

    async fn set_user_active(
        &self,
        org_id: &str,
        user_id: &str,
        active: bool,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let changed = on_write!(self, |p| {
            let mut tx = p.begin().await.map_err(map_err)?;
            let done = sqlx::query(
                "UPDATE users SET is_active = $1, updated_at = $2 \
                 WHERE org_id = $3 AND id = $4 AND NOT is_archived",
            )
            .bind(active)
            .bind(now.0)
            .bind(org_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            if done.rows_affected() != 1 {
                return Ok(false);
            }
            if !active {
                // Login sessions end; long-lived tokens (PATs, service accounts) are held back
                // by the identity check and come back with the identity.
                sqlx::query(
                    "UPDATE access_tokens SET revoked_at = $1 \
                     WHERE user_id = $2 AND kind = 'Token' AND revoked_at IS NULL",
                )
                .bind(now.0)
                .bind(user_id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            }
            tx.commit().await.map_err(map_err)?;
            Ok(true)
        });
        self.sessions_changed();
        changed
    }

    async fn archive_user(&self, org_id: &str, user_id: &str, now: Timestamp) -> StoreResult<bool> {
        let changed = on_write!(self, |p| {
            let mut tx = p.begin().await.map_err(map_err)?;
            let done = sqlx::query(
                "UPDATE users SET is_active = FALSE, is_archived = TRUE, updated_at = $1 \
                 WHERE org_id = $2 AND id = $3 AND NOT is_archived",
            )
            .bind(now.0)
            .bind(org_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            if done.rows_affected() != 1 {
                return Ok(false);
            }
            sqlx::query(
                "UPDATE access_tokens SET revoked_at = $1, is_active = FALSE \
                 WHERE user_id = $2 AND revoked_at IS NULL",
            )
            .bind(now.0)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
            Ok(true)
        });
        self.sessions_changed();
        changed
    }

    async fn assignments_of(&self, identity_ids: &[String]) -> StoreResult<Vec<AssignmentView>> {
        if identity_ids.is_empty() {
            return Ok(vec![]);
        }
        let sql = format!(
            "SELECT a.identity_id, a.id AS assignment_id, p.id AS permission_id, \
             p.name AS permission_name, p.operations FROM permission_assignments a \
             JOIN permissions p ON p.id = a.permission_id \
             WHERE NOT p.is_archived AND a.identity_id IN ({}) ORDER BY a.created_at, a.id",
            placeholders(1, identity_ids.len())
        );
        let rows: Vec<AssignmentViewRow> = on_read!(self, |p| {
            let mut q = sqlx::query_as(&sql);
            for id in identity_ids {
                q = q.bind(id);
            }
            q.fetch_all(p).await
        })
        .map_err(map_err)?;
        rows.into_iter()
            .map(|r| {
                Ok(AssignmentView {
                    operations: ops_from_json(&r.operations)?,
                    identity_id: r.identity_id,
                    assignment_id: r.assignment_id,
                    permission_id: r.permission_id,
                    permission_name: r.permission_name,
                })
            })
            .collect()
    }
}

#[async_trait]
impl CredentialStore for SqlStore {
    async fn list_credentials(&self, org_id: &str, user_id: &str) -> StoreResult<Vec<Credential>> {
        let Some(cache) = &self.cache else {
            return self.load_credentials(org_id, user_id).await;
        };
        let key = (org_id.to_string(), user_id.to_string());
        cache
            .credentials
            .read_through(key, || self.load_credentials(org_id, user_id))
            .await
    }

    async fn find_credential(
        &self,
        org_id: &str,
        cred_id: &str,
    ) -> StoreResult<Option<Credential>> {
        let sql = format!("SELECT {CRED_COLS} FROM credentials WHERE org_id = $1 AND cred_id = $2");
        let row: Option<CredentialRow> = on_read!(self, |p| {
            sqlx::query_as(&sql)
                .bind(org_id)
                .bind(cred_id)
                .fetch_optional(p)
                .await
        })
        .map_err(map_err)?;
        row.map(Credential::try_from).transpose()
    }

    async fn add_credential(
        &self,
        challenge_id: &str,
        code_id: Option<&str>,
        credential: &Credential,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let r = on_write!(self, |p| {
            let mut tx = p.begin().await.map_err(map_err)?;
            if spend!(&mut *tx, "challenges", challenge_id, now)? != 1 {
                return Ok(false);
            }
            if let Some(code_id) = code_id
                && spend!(&mut *tx, "one_time_codes", code_id, now)? != 1
            {
                return Ok(false);
            }
            insert_credential!(&mut *tx, credential)
                .await
                .map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
            Ok(true)
        });
        self.credentials_changed();
        r
    }

    async fn set_credential_active(
        &self,
        org_id: &str,
        user_id: &str,
        uuid: &str,
        active: bool,
    ) -> StoreResult<CredentialToggle> {
        let r = on_write!(self, |p| {
            let mut tx = p.begin().await.map_err(map_err)?;
            // Lock the user's row: concurrent deactivations of a user's credentials take
            // turns, so two of them cannot each leave the other as the last one and both
            // succeed (PostgreSQL; SQLite has one writer anyway).
            sqlx::query("UPDATE users SET updated_at = updated_at WHERE id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            let found: Option<(String,)> = sqlx::query_as(
                "SELECT kind FROM credentials WHERE org_id = $1 AND user_id = $2 AND uuid = $3 \
                 AND token_id IS NULL",
            )
            .bind(org_id)
            .bind(user_id)
            .bind(uuid)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
            if found.is_none() {
                return Ok(CredentialToggle::NotFound);
            }
            if !active {
                let (others,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM credentials WHERE user_id = $1 AND uuid <> $2 \
                     AND is_active AND token_id IS NULL \
                     AND kind IN ('Key', 'Fido2', 'PasswordProtectedKey')",
                )
                .bind(user_id)
                .bind(uuid)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                if others == 0 {
                    return Ok(CredentialToggle::LastActive);
                }
            }
            sqlx::query("UPDATE credentials SET is_active = $1 WHERE uuid = $2")
                .bind(active)
                .bind(uuid)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
            Ok(CredentialToggle::Done)
        });
        self.credentials_changed();
        r
    }

    async fn advance_sign_count(&self, uuid: &str, counter: i64) -> StoreResult<bool> {
        let owner: Option<(String, String)> = on_write!(self, |p| {
            sqlx::query_as(
                // WebAuthn §7.2 step 21: a zero counter passes only while the stored one is
                // zero too (an authenticator without a counter); otherwise it must grow.
                "UPDATE credentials SET sign_count = $1 \
                 WHERE uuid = $2 AND (sign_count < $1 OR ($1 = 0 AND sign_count = 0)) \
                 RETURNING org_id, user_id",
            )
            .bind(counter)
            .bind(uuid)
            .fetch_optional(p)
            .await
        })
        .map_err(map_err)?;
        // Every passkey use advances a counter: only its owner's cached list goes.
        if let Some((org_id, user_id)) = &owner {
            self.user_credentials_changed(org_id, user_id);
        }
        Ok(owner.is_some())
    }
}

#[async_trait]
impl CodeStore for SqlStore {
    async fn replace_code(&self, code: &OneTimeCode, mail: &OutboxMessage) -> StoreResult<()> {
        on_write!(self, |p| {
            let mut tx = p.begin().await.map_err(map_err)?;
            sqlx::query(
                "UPDATE one_time_codes SET used_at = $1 \
                 WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL",
            )
            .bind(code.created_at.0)
            .bind(&code.user_id)
            .bind(code.purpose.as_str())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            insert_code!(&mut *tx, code).await.map_err(map_err)?;
            insert_outbox!(&mut *tx, mail).await.map_err(map_err)?;
            tx.commit().await.map_err(map_err)
        })
    }

    async fn live_code(
        &self,
        org_id: &str,
        user_id: &str,
        purpose: CodePurpose,
        now: Timestamp,
    ) -> StoreResult<Option<OneTimeCode>> {
        let sql = format!(
            "SELECT {CODE_COLS} FROM one_time_codes WHERE org_id = $1 AND user_id = $2 \
             AND purpose = $3 AND used_at IS NULL AND expires_at > $4 \
             ORDER BY created_at DESC, id DESC LIMIT 1"
        );
        let row: Option<CodeRow> = on_read!(self, |p| {
            sqlx::query_as(&sql)
                .bind(org_id)
                .bind(user_id)
                .bind(purpose.as_str())
                .bind(now.0)
                .fetch_optional(p)
                .await
        })
        .map_err(map_err)?;
        row.map(OneTimeCode::try_from).transpose()
    }

    async fn replace_code_quietly(&self, code: &OneTimeCode) -> StoreResult<()> {
        on_write!(self, |p| {
            let mut tx = p.begin().await.map_err(map_err)?;
            sqlx::query(
                "UPDATE one_time_codes SET used_at = $1 \
                 WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL",
            )
            .bind(code.created_at.0)
            .bind(&code.user_id)
            .bind(code.purpose.as_str())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            insert_code!(&mut *tx, code).await.map_err(map_err)?;
            tx.commit().await.map_err(map_err)
        })
    }

    async fn find_live_code(
        &self,
        code_hash: &str,
        purpose: CodePurpose,
        now: Timestamp,
    ) -> StoreResult<Option<OneTimeCode>> {
        let sql = format!(
            "SELECT {CODE_COLS} FROM one_time_codes WHERE code_hash = $1 AND purpose = $2 \
             AND used_at IS NULL AND expires_at > $3 ORDER BY created_at DESC, id DESC LIMIT 1"
        );
        let row: Option<CodeRow> = on_read!(self, |p| {
            sqlx::query_as(&sql)
                .bind(code_hash)
                .bind(purpose.as_str())
                .bind(now.0)
                .fetch_optional(p)
                .await
        })
        .map_err(map_err)?;
        row.map(OneTimeCode::try_from).transpose()
    }

    async fn claim_code_attempt(&self, code_id: &str, max: i64) -> StoreResult<bool> {
        let done = on_write!(self, |p| {
            sqlx::query(
                "UPDATE one_time_codes SET attempts = attempts + 1 \
                 WHERE id = $1 AND attempts < $2 AND used_at IS NULL",
            )
            .bind(code_id)
            .bind(max)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(map_err)?;
        Ok(done == 1)
    }

    async fn refund_code_attempt(&self, code_id: &str) -> StoreResult<()> {
        on_write!(self, |p| {
            sqlx::query(
                "UPDATE one_time_codes SET attempts = attempts - 1 WHERE id = $1 AND attempts > 0",
            )
            .bind(code_id)
            .execute(p)
            .await
            .map(|_| ())
        })
        .map_err(map_err)?;
        Ok(())
    }
}

#[async_trait]
impl ChallengeStore for SqlStore {
    async fn insert_challenge(&self, c: &Challenge) -> StoreResult<()> {
        on_write!(self, |p| insert_challenge!(p, c)
            .await
            .map(|r| r.rows_affected()))
        .map_err(map_err)?;
        Ok(())
    }

    async fn insert_challenge_spending_code(
        &self,
        c: &Challenge,
        code_id: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        on_write!(self, |p| {
            let mut tx = p.begin().await.map_err(map_err)?;
            if spend!(&mut *tx, "one_time_codes", code_id, now)? != 1 {
                return Ok(false);
            }
            insert_challenge!(&mut *tx, c).await.map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
            Ok(true)
        })
    }

    async fn get_challenge(&self, id: &str) -> StoreResult<Option<Challenge>> {
        let sql = format!("SELECT {CHALLENGE_COLS} FROM challenges WHERE id = $1");
        let row: Option<ChallengeRow> = on_read!(self, |p| {
            sqlx::query_as(&sql).bind(id).fetch_optional(p).await
        })
        .map_err(map_err)?;
        row.map(Challenge::try_from).transpose()
    }

    async fn use_challenge(&self, id: &str, now: Timestamp) -> StoreResult<bool> {
        let done = on_write!(self, |p| spend!(p, "challenges", id, now))?;
        Ok(done == 1)
    }
}

#[async_trait]
impl RegistrationStore for SqlStore {
    async fn complete_registration(
        &self,
        challenge_id: &str,
        code_id: &str,
        user_id: &str,
        credentials: &[Credential],
        now: Timestamp,
    ) -> StoreResult<bool> {
        let r = on_write!(self, |p| {
            let mut tx = p.begin().await.map_err(map_err)?;
            let c = spend!(&mut *tx, "challenges", challenge_id, now)?;
            let k = spend!(&mut *tx, "one_time_codes", code_id, now)?;
            let u = sqlx::query(
                "UPDATE users SET is_registered = TRUE, updated_at = $1 \
                 WHERE id = $2 AND NOT is_registered AND is_active AND NOT is_archived",
            )
            .bind(now.0)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            if c != 1 || k != 1 || u.rows_affected() != 1 {
                return Ok(false);
            }
            for cred in credentials {
                insert_credential!(&mut *tx, cred).await.map_err(map_err)?;
            }
            tx.commit().await.map_err(map_err)?;
            Ok(true)
        });
        self.credentials_changed();
        r
    }
}

impl SqlStore {
    async fn load_credentials(&self, org_id: &str, user_id: &str) -> StoreResult<Vec<Credential>> {
        let sql = format!(
            "SELECT {CRED_COLS} FROM credentials WHERE org_id = $1 AND user_id = $2 \
             ORDER BY created_at, uuid"
        );
        let rows: Vec<CredentialRow> = on_read!(self, |p| {
            sqlx::query_as(&sql)
                .bind(org_id)
                .bind(user_id)
                .fetch_all(p)
                .await
        })
        .map_err(map_err)?;
        rows.into_iter().map(Credential::try_from).collect()
    }

    async fn load_session(&self, token_id: &str) -> StoreResult<Option<SessionRecord>> {
        // One round trip: the token, its identity, its org, and (one row per permission) the
        // operations granted to the identity.
        // A PAT's rows also carry its own assignments (identity = the token): it gets the
        // operations both its user and it hold.
        const SQL: &str = "SELECT t.id, t.org_id, t.user_id, t.kind, t.name, t.is_active, \
             t.expires_at, t.revoked_at, t.external_id, t.app_id, t.created_at, u.username, \
             u.kind AS user_kind, u.is_service_account, u.is_active AS user_active, \
             u.is_archived AS user_archived, o.is_active AS org_active, \
             a.identity_id AS assigned_to, p.operations \
             FROM access_tokens t \
             JOIN users u ON u.id = t.user_id \
             JOIN orgs o ON o.id = t.org_id \
             LEFT JOIN permission_assignments a \
               ON a.identity_id = t.user_id OR a.identity_id = t.id \
             LEFT JOIN permissions p ON p.id = a.permission_id AND NOT p.is_archived \
             WHERE t.id = $1";
        let rows: Vec<SessionRow> = on_read!(self, |p| {
            sqlx::query_as(SQL).bind(token_id).fetch_all(p).await
        })
        .map_err(map_err)?;
        let mut user_ops = std::collections::HashSet::new();
        let mut token_ops = std::collections::HashSet::new();
        for r in &rows {
            if let (Some(ops), Some(to)) = (&r.operations, &r.assigned_to) {
                if *to == r.token.user_id {
                    user_ops.extend(ops_from_json(ops)?);
                } else {
                    token_ops.extend(ops_from_json(ops)?);
                }
            }
        }
        let Some(first) = rows.into_iter().next() else {
            return Ok(None);
        };
        let operations = if first.token.kind == TokenKind::Pat.as_str() {
            user_ops.intersection(&token_ops).cloned().collect()
        } else {
            user_ops
        };
        let user_kind = UserKind::parse(&first.user_kind).ok_or_else(|| {
            StoreError::Internal(format!("stored user kind {:?}", first.user_kind))
        })?;
        Ok(Some(SessionRecord {
            token: AccessToken::try_from(first.token)?,
            username: first.username,
            user_kind,
            is_service_account: first.is_service_account,
            user_active: first.user_active,
            user_archived: first.user_archived,
            org_active: first.org_active,
            operations: std::sync::Arc::new(operations),
        }))
    }
}

#[async_trait]
impl TokenStore for SqlStore {
    async fn insert_token(&self, t: &AccessToken) -> StoreResult<()> {
        on_write!(self, |p| {
            insert_token!(p, t).await.map(|r| r.rows_affected())
        })
        .map_err(map_err)?;
        Ok(())
    }

    async fn session(&self, token_id: &str) -> StoreResult<Option<SessionRecord>> {
        let Some(cache) = &self.cache else {
            return self.load_session(token_id).await;
        };
        // Not `read_through`: an unknown token is not cached (a new token's insert bumps no
        // generation), so only found sessions are kept.
        if let Some(hit) = cache.sessions.get(token_id) {
            return Ok(Some(hit));
        }
        let generation = cache.sessions.generation();
        let rec = self.load_session(token_id).await?;
        if let Some(r) = &rec {
            cache.sessions.put(token_id.to_string(), generation, r);
        }
        Ok(rec)
    }

    async fn revoke_token(&self, token_id: &str, now: Timestamp) -> StoreResult<()> {
        on_write!(self, |p| {
            sqlx::query(
                "UPDATE access_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
            )
            .bind(now.0)
            .bind(token_id)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(map_err)?;
        self.sessions_changed();
        Ok(())
    }

    async fn revoke_sessions_of(&self, user_id: &str, now: Timestamp) -> StoreResult<()> {
        on_write!(self, |p| {
            sqlx::query(
                "UPDATE access_tokens SET revoked_at = $1 \
                 WHERE user_id = $2 AND kind = 'Token' AND revoked_at IS NULL",
            )
            .bind(now.0)
            .bind(user_id)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(map_err)?;
        self.sessions_changed();
        Ok(())
    }

    async fn create_pat(
        &self,
        token: &AccessToken,
        credential: &Credential,
        assignment: Option<&Assignment>,
    ) -> StoreResult<()> {
        on_write!(self, |p| {
            let mut tx = p.begin().await.map_err(map_err)?;
            insert_token!(&mut *tx, token).await.map_err(map_err)?;
            insert_credential!(&mut *tx, credential)
                .await
                .map_err(map_err)?;
            if let Some(a) = assignment {
                insert_assignment!(&mut *tx, a).await.map_err(map_err)?;
            }
            tx.commit().await.map_err(map_err)
        })?;
        self.sessions_changed();
        Ok(())
    }

    async fn get_token(&self, org_id: &str, token_id: &str) -> StoreResult<Option<AccessToken>> {
        let sql = format!("SELECT {TOKEN_COLS} FROM access_tokens WHERE org_id = $1 AND id = $2");
        let row: Option<TokenRow> = on_read!(self, |p| {
            sqlx::query_as(&sql)
                .bind(org_id)
                .bind(token_id)
                .fetch_optional(p)
                .await
        })
        .map_err(map_err)?;
        row.map(AccessToken::try_from).transpose()
    }

    async fn update_token(
        &self,
        org_id: &str,
        token_id: &str,
        name: Option<&str>,
        external_id: Option<&str>,
    ) -> StoreResult<bool> {
        let n = on_write!(self, |p| {
            sqlx::query(
                "UPDATE access_tokens SET name = COALESCE($1, name), \
                 external_id = COALESCE($2, external_id) \
                 WHERE org_id = $3 AND id = $4 AND revoked_at IS NULL",
            )
            .bind(name)
            .bind(external_id)
            .bind(org_id)
            .bind(token_id)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(map_err)?;
        self.sessions_changed();
        Ok(n == 1)
    }

    async fn set_token_active(
        &self,
        org_id: &str,
        token_id: &str,
        active: bool,
    ) -> StoreResult<bool> {
        let n = on_write!(self, |p| {
            sqlx::query(
                "UPDATE access_tokens SET is_active = $1 \
                 WHERE org_id = $2 AND id = $3 AND revoked_at IS NULL",
            )
            .bind(active)
            .bind(org_id)
            .bind(token_id)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(map_err)?;
        self.sessions_changed();
        Ok(n == 1)
    }

    async fn archive_token(
        &self,
        org_id: &str,
        token_id: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let done = on_write!(self, |p| {
            let mut tx = p.begin().await.map_err(map_err)?;
            let n = sqlx::query(
                "UPDATE access_tokens SET revoked_at = $1, is_active = $2 \
                 WHERE org_id = $3 AND id = $4 AND revoked_at IS NULL",
            )
            .bind(now.0)
            .bind(false)
            .bind(org_id)
            .bind(token_id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
            if n != 1 {
                return Ok(false);
            }
            sqlx::query(
                "UPDATE credentials SET is_active = $1 WHERE org_id = $2 AND token_id = $3",
            )
            .bind(false)
            .bind(org_id)
            .bind(token_id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
            Ok(true)
        });
        self.sessions_changed();
        done
    }
}

#[async_trait]
impl UserActionStore for SqlStore {
    async fn insert_user_action(&self, a: &UserAction) -> StoreResult<bool> {
        match on_write!(self, |p| insert_user_action!(p, a)) {
            Ok(()) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn challenge_answered(&self, challenge: &str) -> StoreResult<bool> {
        let row: Option<(String,)> = on_read!(self, |p| {
            sqlx::query_as("SELECT id FROM user_actions WHERE challenge = $1")
                .bind(challenge)
                .fetch_optional(p)
                .await
        })
        .map_err(map_err)?;
        Ok(row.is_some())
    }

    fn sole_writer(&self) -> bool {
        self.cache.is_some()
    }
}

#[async_trait]
impl JwtKeyStore for SqlStore {
    async fn jwt_keys(&self) -> StoreResult<Vec<JwtKey>> {
        let rows: Vec<JwtKeyRow> = on_read!(self, |p| {
            sqlx::query_as(
                "SELECT kid, alg, sealed_private_key, public_key, is_current, created_at \
                 FROM jwt_keys ORDER BY created_at, kid",
            )
            .fetch_all(p)
            .await
        })
        .map_err(map_err)?;
        Ok(rows.into_iter().map(JwtKey::from).collect())
    }

    async fn rotate_jwt_key(&self, k: &JwtKey) -> StoreResult<()> {
        on_write!(self, |p| {
            let mut tx = p.begin().await.map_err(map_err)?;
            sqlx::query("UPDATE jwt_keys SET is_current = FALSE WHERE is_current")
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            sqlx::query(
                "INSERT INTO jwt_keys (kid, alg, sealed_private_key, public_key, is_current, created_at) \
                 VALUES ($1, $2, $3, $4, TRUE, $5)",
            )
            .bind(&k.kid)
            .bind(&k.alg)
            .bind(&k.sealed_private_key)
            .bind(&k.public_key)
            .bind(k.created_at.0)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            tx.commit().await.map_err(map_err)
        })
    }
}

#[async_trait]
impl OutboxStore for SqlStore {
    async fn claim_outbox(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<OutboxMessage>> {
        let rows: Vec<OutboxRow> = match &self.backend {
            // One writer connection: the claim is already exclusive.
            Backend::Sqlite { write, .. } => {
                let sql = format!(
                    "UPDATE outbox SET next_attempt_at = $2, attempts = attempts + 1 WHERE id IN \
                     (SELECT id FROM outbox WHERE sent_at IS NULL AND next_attempt_at <= $1 \
                      ORDER BY next_attempt_at LIMIT $3) RETURNING {OUTBOX_COLS}"
                );
                sqlx::query_as(&sql)
                    .bind(now.0)
                    .bind(lease_until.0)
                    .bind(limit)
                    .fetch_all(write)
                    .await
            }
            // Replicas share the table: skip rows another worker holds.
            Backend::Postgres(pool) => {
                let sql = format!(
                    "UPDATE outbox SET next_attempt_at = $2, attempts = attempts + 1 WHERE id IN \
                     (SELECT id FROM outbox WHERE sent_at IS NULL AND next_attempt_at <= $1 \
                      ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING {OUTBOX_COLS}"
                );
                sqlx::query_as(&sql)
                    .bind(now.0)
                    .bind(lease_until.0)
                    .bind(limit)
                    .fetch_all(pool)
                    .await
            }
        }
        .map_err(map_err)?;
        Ok(rows.into_iter().map(OutboxMessage::from).collect())
    }

    async fn outbox_sent(&self, id: &str, now: Timestamp) -> StoreResult<()> {
        on_write!(self, |p| {
            sqlx::query("UPDATE outbox SET sent_at = $1, last_error = NULL WHERE id = $2")
                .bind(now.0)
                .bind(id)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(map_err)?;
        Ok(())
    }

    async fn outbox_failed(&self, id: &str, error: &str, retry_at: Timestamp) -> StoreResult<()> {
        on_write!(self, |p| {
            sqlx::query("UPDATE outbox SET last_error = $1, next_attempt_at = $2 WHERE id = $3 AND sent_at IS NULL")
                .bind(error)
                .bind(retry_at.0)
                .bind(id)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(map_err)?;
        Ok(())
    }
}

impl SqlStore {
    async fn list_views(
        &self,
        org_id: &str,
        kind: Option<UserKind>,
        service_accounts: bool,
        page: &PageRequest,
    ) -> StoreResult<Page<UserView>> {
        let sa = if service_accounts { "TRUE" } else { "FALSE" };
        // Keyset pagination, newest first. Without a cursor, start above every real key.
        let (after_ts, after_id) = match &page.after {
            Some(c) => (c.created_at.0, c.id.clone()),
            None => (i64::MAX, "~".to_string()),
        };
        let kind_filter = if kind.is_some() { "AND kind = $5" } else { "" };
        let sql = format!(
            "WITH page AS (SELECT {USER_COLS} FROM users WHERE org_id = $1 AND NOT is_archived \
             AND is_service_account = {sa} \
             AND (created_at < $2 OR (created_at = $2 AND id < $3)) {kind_filter} \
             ORDER BY created_at DESC, id DESC LIMIT $4) {VIEW_SELECT}"
        );
        let fetch = i64::from(page.limit) + 1;
        let rows: Vec<UserViewRow> = on_read!(self, |p| {
            let q = sqlx::query_as(&sql)
                .bind(org_id)
                .bind(after_ts)
                .bind(&after_id)
                .bind(fetch);
            let q = match kind {
                Some(k) => q.bind(k.as_str()),
                None => q,
            };
            q.fetch_all(p).await
        })
        .map_err(map_err)?;
        let mut items = group_views(rows)?;
        let next = if items.len() > page.limit as usize {
            items.truncate(page.limit as usize);
            items.last().map(|v| Cursor {
                created_at: v.user.created_at,
                id: v.user.id.clone(),
            })
        } else {
            None
        };
        Ok(Page { items, next })
    }
}
