//! Row shapes as the database returns them, and their conversion to domain entities. The
//! `FromRow` derives are generic over the backend, so one struct serves SQLite and PostgreSQL.
//! A row that does not convert (an unknown enum spelling) is reported, never guessed.

use keyfold_domain::StoreError;
use keyfold_domain::model::{
    AccessToken, App, AppKind, Challenge, ChallengeKind, CodePurpose, Credential, JwtKey,
    OneTimeCode, Org, OutboxMessage, TokenKind, User,
};
use keyfold_domain::time::Timestamp;
use keyfold_types::auth::CredentialKind;
use keyfold_types::users::UserKind;

pub(crate) fn bad(what: &str, value: &str) -> StoreError {
    StoreError::Internal(format!("stored {what} has unknown value {value:?}"))
}

fn ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp)
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct OrgRow {
    id: String,
    name: String,
    is_active: bool,
    created_at: i64,
}

impl From<OrgRow> for Org {
    fn from(r: OrgRow) -> Self {
        Org {
            id: r.id,
            name: r.name,
            is_active: r.is_active,
            created_at: Timestamp(r.created_at),
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AppRow {
    id: String,
    org_id: String,
    name: String,
    kind: String,
    expected_origin: Option<String>,
    expected_rp_id: Option<String>,
    public_key: Option<String>,
    is_active: bool,
    created_at: i64,
}

impl TryFrom<AppRow> for App {
    type Error = StoreError;
    fn try_from(r: AppRow) -> Result<Self, StoreError> {
        Ok(App {
            kind: AppKind::parse(&r.kind).ok_or_else(|| bad("app kind", &r.kind))?,
            id: r.id,
            org_id: r.org_id,
            name: r.name,
            expected_origin: r.expected_origin,
            expected_rp_id: r.expected_rp_id,
            public_key: r.public_key,
            is_active: r.is_active,
            created_at: Timestamp(r.created_at),
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct UserRow {
    id: String,
    org_id: String,
    username: String,
    name: String,
    kind: String,
    is_active: bool,
    is_registered: bool,
    is_service_account: bool,
    is_sso_required: bool,
    is_archived: bool,
    external_id: Option<String>,
    public_key: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<Self, StoreError> {
        Ok(User {
            kind: UserKind::parse(&r.kind).ok_or_else(|| bad("user kind", &r.kind))?,
            id: r.id,
            org_id: r.org_id,
            username: r.username,
            name: r.name,
            is_active: r.is_active,
            is_registered: r.is_registered,
            is_service_account: r.is_service_account,
            is_sso_required: r.is_sso_required,
            is_archived: r.is_archived,
            external_id: r.external_id,
            public_key: r.public_key,
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct CredentialRow {
    uuid: String,
    org_id: String,
    user_id: String,
    cred_id: String,
    kind: String,
    name: String,
    public_key: String,
    algorithm: Option<String>,
    is_active: bool,
    sign_count: i64,
    encrypted_private_key: Option<String>,
    token_id: Option<String>,
    detail: Option<String>,
    created_at: i64,
}

impl TryFrom<CredentialRow> for Credential {
    type Error = StoreError;
    fn try_from(r: CredentialRow) -> Result<Self, StoreError> {
        Ok(Credential {
            kind: CredentialKind::parse(&r.kind).ok_or_else(|| bad("credential kind", &r.kind))?,
            uuid: r.uuid,
            org_id: r.org_id,
            user_id: r.user_id,
            cred_id: r.cred_id,
            name: r.name,
            public_key: r.public_key,
            algorithm: r.algorithm,
            is_active: r.is_active,
            sign_count: r.sign_count,
            encrypted_private_key: r.encrypted_private_key,
            token_id: r.token_id,
            detail: r.detail,
            created_at: Timestamp(r.created_at),
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct CodeRow {
    id: String,
    org_id: String,
    user_id: String,
    purpose: String,
    code_hash: String,
    attempts: i64,
    expires_at: i64,
    used_at: Option<i64>,
    created_at: i64,
}

impl TryFrom<CodeRow> for OneTimeCode {
    type Error = StoreError;
    fn try_from(r: CodeRow) -> Result<Self, StoreError> {
        Ok(OneTimeCode {
            purpose: CodePurpose::parse(&r.purpose)
                .ok_or_else(|| bad("code purpose", &r.purpose))?,
            id: r.id,
            org_id: r.org_id,
            user_id: r.user_id,
            code_hash: r.code_hash,
            attempts: r.attempts,
            expires_at: Timestamp(r.expires_at),
            used_at: ts(r.used_at),
            created_at: Timestamp(r.created_at),
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ChallengeRow {
    id: String,
    org_id: String,
    kind: String,
    user_id: String,
    challenge: String,
    token_id: Option<String>,
    http_method: Option<String>,
    http_path: Option<String>,
    payload_hash: Option<String>,
    detail: Option<String>,
    expires_at: i64,
    used_at: Option<i64>,
    created_at: i64,
}

impl TryFrom<ChallengeRow> for Challenge {
    type Error = StoreError;
    fn try_from(r: ChallengeRow) -> Result<Self, StoreError> {
        Ok(Challenge {
            kind: ChallengeKind::parse(&r.kind).ok_or_else(|| bad("challenge kind", &r.kind))?,
            id: r.id,
            org_id: r.org_id,
            user_id: r.user_id,
            challenge: r.challenge,
            token_id: r.token_id,
            http_method: r.http_method,
            http_path: r.http_path,
            payload_hash: r.payload_hash,
            detail: r.detail,
            expires_at: Timestamp(r.expires_at),
            used_at: ts(r.used_at),
            created_at: Timestamp(r.created_at),
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct TokenRow {
    id: String,
    org_id: String,
    pub user_id: String,
    pub kind: String,
    name: String,
    is_active: bool,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    external_id: Option<String>,
    app_id: Option<String>,
    created_at: i64,
}

impl TryFrom<TokenRow> for AccessToken {
    type Error = StoreError;
    fn try_from(r: TokenRow) -> Result<Self, StoreError> {
        Ok(AccessToken {
            kind: TokenKind::parse(&r.kind).ok_or_else(|| bad("token kind", &r.kind))?,
            id: r.id,
            org_id: r.org_id,
            user_id: r.user_id,
            name: r.name,
            is_active: r.is_active,
            expires_at: ts(r.expires_at),
            revoked_at: ts(r.revoked_at),
            external_id: r.external_id,
            app_id: r.app_id,
            created_at: Timestamp(r.created_at),
        })
    }
}

/// One row of the session query: the token, its identity and org, and (LEFT JOIN) one of the
/// identity's permissions' operation lists.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SessionRow {
    #[sqlx(flatten)]
    pub token: TokenRow,
    pub username: String,
    pub user_kind: String,
    pub is_service_account: bool,
    pub user_active: bool,
    pub user_archived: bool,
    pub org_active: bool,
    pub assigned_to: Option<String>,
    pub operations: Option<String>,
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct JwtKeyRow {
    kid: String,
    alg: String,
    sealed_private_key: Vec<u8>,
    public_key: Vec<u8>,
    is_current: bool,
    created_at: i64,
}

impl From<JwtKeyRow> for JwtKey {
    fn from(r: JwtKeyRow) -> Self {
        JwtKey {
            kid: r.kid,
            alg: r.alg,
            sealed_private_key: r.sealed_private_key,
            public_key: r.public_key,
            is_current: r.is_current,
            created_at: Timestamp(r.created_at),
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct OutboxRow {
    id: String,
    kind: String,
    payload: String,
    attempts: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
    sent_at: Option<i64>,
    created_at: i64,
}

impl From<OutboxRow> for OutboxMessage {
    fn from(r: OutboxRow) -> Self {
        OutboxMessage {
            id: r.id,
            kind: r.kind,
            payload: r.payload,
            attempts: r.attempts,
            next_attempt_at: Timestamp(r.next_attempt_at),
            last_error: r.last_error,
            sent_at: ts(r.sent_at),
            created_at: Timestamp(r.created_at),
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AssignmentViewRow {
    pub identity_id: String,
    pub assignment_id: String,
    pub permission_id: String,
    pub permission_name: String,
    pub operations: String,
}

/// A user of a page, with its first credential and one of its assignments (LEFT JOIN).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct UserViewRow {
    #[sqlx(flatten)]
    pub user: UserRow,
    pub first_credential: Option<String>,
    pub assignment_id: Option<String>,
    pub permission_id: Option<String>,
    pub permission_name: Option<String>,
    pub operations: Option<String>,
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct KeyRow {
    id: String,
    org_id: String,
    scheme: String,
    curve: String,
    public_key: Vec<u8>,
    name: Option<String>,
    status: String,
    custodial: bool,
    owner_id: String,
    external_id: Option<String>,
    created_at: i64,
    deleted_at: Option<i64>,
    delegation_pending: bool,
}

impl TryFrom<KeyRow> for keyfold_domain::model::Key {
    type Error = StoreError;
    fn try_from(r: KeyRow) -> Result<Self, StoreError> {
        use keyfold_types::keys::{KeyCurve, KeyScheme};
        Ok(keyfold_domain::model::Key {
            scheme: KeyScheme::parse(&r.scheme).ok_or_else(|| bad("key scheme", &r.scheme))?,
            curve: KeyCurve::parse(&r.curve).ok_or_else(|| bad("key curve", &r.curve))?,
            status: keyfold_domain::model::LifecycleStatus::parse(&r.status)
                .ok_or_else(|| bad("key status", &r.status))?,
            id: r.id,
            org_id: r.org_id,
            public_key: r.public_key,
            name: r.name,
            custodial: r.custodial,
            delegation_pending: r.delegation_pending,
            owner_id: r.owner_id,
            external_id: r.external_id,
            created_at: Timestamp(r.created_at),
            deleted_at: ts(r.deleted_at),
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct WalletRow {
    id: String,
    org_id: String,
    key_id: String,
    network: String,
    address: Option<String>,
    name: Option<String>,
    status: String,
    external_id: Option<String>,
    tags: String,
    created_at: i64,
    deleted_at: Option<i64>,
}

impl TryFrom<WalletRow> for keyfold_domain::model::Wallet {
    type Error = StoreError;
    fn try_from(r: WalletRow) -> Result<Self, StoreError> {
        Ok(keyfold_domain::model::Wallet {
            status: keyfold_domain::model::LifecycleStatus::parse(&r.status)
                .ok_or_else(|| bad("wallet status", &r.status))?,
            tags: serde_json::from_str(&r.tags).map_err(|_| bad("wallet tags", &r.tags))?,
            id: r.id,
            org_id: r.org_id,
            key_id: r.key_id,
            network: r.network,
            address: r.address,
            name: r.name,
            external_id: r.external_id,
            created_at: Timestamp(r.created_at),
            deleted_at: ts(r.deleted_at),
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SignatureRow {
    id: String,
    org_id: String,
    key_id: String,
    wallet_id: Option<String>,
    requester_id: String,
    token_id: Option<String>,
    kind: String,
    request_body: String,
    network: Option<String>,
    status: String,
    reason: Option<String>,
    signature: Option<String>,
    signed_data: Option<String>,
    tx_hash: Option<String>,
    external_id: Option<String>,
    user_action_id: Option<String>,
    created_at: i64,
    signed_at: Option<i64>,
}

impl TryFrom<SignatureRow> for keyfold_domain::model::SignatureRecord {
    type Error = StoreError;
    fn try_from(r: SignatureRow) -> Result<Self, StoreError> {
        Ok(keyfold_domain::model::SignatureRecord {
            status: keyfold_types::keys::SignatureStatus::parse(&r.status)
                .ok_or_else(|| bad("signature status", &r.status))?,
            id: r.id,
            org_id: r.org_id,
            key_id: r.key_id,
            wallet_id: r.wallet_id,
            requester_id: r.requester_id,
            token_id: r.token_id,
            kind: r.kind,
            request_body: r.request_body,
            network: r.network,
            reason: r.reason,
            signature: r.signature,
            signed_data: r.signed_data,
            tx_hash: r.tx_hash,
            external_id: r.external_id,
            user_action_id: r.user_action_id,
            created_at: Timestamp(r.created_at),
            signed_at: ts(r.signed_at),
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct PresignatureRow {
    id: String,
    key_id: String,
    signers: String,
    public: Vec<u8>,
    created_at: i64,
}

impl From<PresignatureRow> for keyfold_domain::ports::PresignatureRecord {
    fn from(r: PresignatureRow) -> Self {
        keyfold_domain::ports::PresignatureRecord {
            id: r.id,
            key_id: r.key_id,
            signers: r.signers,
            public: r.public,
            created_at: Timestamp(r.created_at),
        }
    }
}
