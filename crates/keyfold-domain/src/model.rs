//! The entities. Plain data: they do not load or save themselves (the store does), and they
//! hold no secrets in recoverable form — codes and tokens are kept as hashes, private keys
//! never reach the server at all.

use keyfold_types::auth::CredentialKind;
use keyfold_types::users::{PermissionAssignmentInfo, UserKind, UserResponse};

use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    pub id: String,
    pub name: String,
    pub is_active: bool,
    pub created_at: Timestamp,
}

/// How an application authenticates its callers (issue [4 of 6] adds server-side signing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppKind {
    /// Created with the organization; serves the dashboard and the SDKs.
    Default,
    ClientSide,
    ServerSide,
}

impl AppKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "Default",
            Self::ClientSide => "ClientSide",
            Self::ServerSide => "ServerSide",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Default" => Self::Default,
            "ClientSide" => Self::ClientSide,
            "ServerSide" => Self::ServerSide,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub kind: AppKind,
    /// WebAuthn origin assertions must come from (e.g. `https://wallet.example.com`).
    pub expected_origin: Option<String>,
    /// WebAuthn relying party id (e.g. `example.com`).
    pub expected_rp_id: Option<String>,
    /// Server-side apps: the PEM key their requests are signed with.
    pub public_key: Option<String>,
    pub is_active: bool,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub org_id: String,
    /// The email for employees; unique among the organization's live users.
    pub username: String,
    pub name: String,
    pub kind: UserKind,
    pub is_active: bool,
    pub is_registered: bool,
    pub is_service_account: bool,
    pub is_sso_required: bool,
    /// Deleted users are archived, never erased: their actions stay attributable.
    pub is_archived: bool,
    pub external_id: Option<String>,
    pub public_key: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A user as the API shows it, with what the store knows about its credentials and grants.
#[derive(Debug, Clone)]
pub struct UserView {
    pub user: User,
    pub first_credential_uuid: Option<String>,
    pub assignments: Vec<AssignmentView>,
}

impl UserView {
    /// The wire shape. Consumes the view: its strings move into the response.
    pub fn into_api(self) -> UserResponse {
        let u = self.user;
        let mut ops: Vec<String> = self
            .assignments
            .iter()
            .flat_map(|a| a.operations.iter().cloned())
            .collect();
        ops.sort_unstable();
        ops.dedup();
        UserResponse {
            username: u.username,
            name: u.name,
            user_id: u.id,
            kind: u.kind,
            credential_uuid: self.first_credential_uuid.unwrap_or_default(),
            org_id: u.org_id,
            permissions: Some(ops),
            is_active: u.is_active,
            is_service_account: u.is_service_account,
            is_registered: u.is_registered,
            is_sso_required: u.is_sso_required,
            permission_assignments: self
                .assignments
                .into_iter()
                .map(|a| PermissionAssignmentInfo {
                    permission_name: a.permission_name,
                    permission_id: a.permission_id,
                    assignment_id: a.assignment_id,
                    operations: Some(a.operations),
                })
                .collect(),
        }
    }
}

/// An assignment joined with the permission it grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignmentView {
    pub identity_id: String,
    pub assignment_id: String,
    pub permission_id: String,
    pub permission_name: String,
    pub operations: Vec<String>,
}

/// A credential a user proves possession of. `public_key` is a PEM SPKI for `Key`-like kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// Our id (`cr-…`), what Dfns calls the credential uuid.
    pub uuid: String,
    pub org_id: String,
    pub user_id: String,
    /// The client's id for it (base64url); unique within the organization.
    pub cred_id: String,
    pub kind: CredentialKind,
    pub name: String,
    pub public_key: String,
    pub algorithm: Option<String>,
    pub is_active: bool,
    /// WebAuthn signature counter; a value going backwards means a cloned authenticator.
    pub sign_count: i64,
    /// PasswordProtectedKey / RecoveryKey: the private key encrypted by the user.
    pub encrypted_private_key: Option<String>,
    /// Set when this is a personal access token's own key: it signs that token's user
    /// actions only, and is never a way to log in as the user.
    pub token_id: Option<String>,
    /// Fido2: the WebAuthn library's record of the credential (JSON: COSE key, counter, …).
    pub detail: Option<String>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A login session.
    Token,
    /// A personal access token (issue [4 of 6]).
    Pat,
    /// A service account's token (issue [4 of 6]).
    ServiceAccount,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "Token",
            Self::Pat => "Pat",
            Self::ServiceAccount => "ServiceAccount",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Token" => Self::Token,
            "Pat" => Self::Pat,
            "ServiceAccount" => Self::ServiceAccount,
            _ => return None,
        })
    }
}

/// A bearer token we issued. The token string itself (a JWT) is never stored: this row is
/// what makes it revocable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub id: String,
    pub org_id: String,
    pub user_id: String,
    pub kind: TokenKind,
    pub name: String,
    pub is_active: bool,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    /// A PAT's externalId (unique in the organization).
    pub external_id: Option<String>,
    /// The application the token was obtained through (`X-DFNS-APPID` at login): a
    /// server-side application's tokens only work on requests that application signed.
    pub app_id: Option<String>,
    pub created_at: Timestamp,
}

/// Everything the per-request authentication needs, read in one round trip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub token: AccessToken,
    pub username: String,
    pub user_kind: UserKind,
    pub is_service_account: bool,
    pub user_active: bool,
    pub user_archived: bool,
    pub org_active: bool,
    /// Operations granted to the identity the token acts as (shared: checked per request).
    pub operations: std::sync::Arc<std::collections::HashSet<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    Login,
    Action,
    Registration,
    /// Adding a credential to a registered user (`/auth/credentials/init`).
    Credential,
}

impl ChallengeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "Login",
            Self::Action => "Action",
            Self::Registration => "Registration",
            Self::Credential => "Credential",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Login" => Self::Login,
            "Action" => Self::Action,
            "Registration" => Self::Registration,
            "Credential" => Self::Credential,
            _ => return None,
        })
    }
}

/// A challenge handed out for a credential to sign. Single use: taking it marks it used in
/// the same statement, so two racing attempts cannot both proceed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub id: String,
    pub org_id: String,
    pub kind: ChallengeKind,
    pub user_id: String,
    /// The string the credential must sign (base64url of 32 random bytes).
    pub challenge: String,
    /// For actions: the session that asked, and the request the action will authorize.
    pub token_id: Option<String>,
    pub http_method: Option<String>,
    pub http_path: Option<String>,
    /// Digest of the body the action will carry (`keyfold_auth::payload::payload_digest`).
    pub payload_hash: Option<String>,
    /// For credential challenges: what the challenge was issued for (JSON, see
    /// `keyfold_auth::credentials`).
    pub detail: Option<String>,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// A signed user action: the proof that the identity's credential approved exactly this
/// request (method, path, body). Kept after use — it is the audit trail, and the signers
/// re-verify it before they sign (issue [5 of 6]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAction {
    pub id: String,
    pub org_id: String,
    pub user_id: String,
    pub token_id: String,
    /// Hex SHA-256 of the single-use token handed to the caller.
    pub token_hash: String,
    pub credential_uuid: String,
    pub http_method: String,
    pub http_path: String,
    pub payload_hash: String,
    pub challenge: String,
    pub client_data: String,
    pub signature: String,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

impl UserAction {
    /// The action as recorded when a request spends it.
    pub fn spent_at(&self, now: Timestamp) -> UserAction {
        UserAction {
            used_at: Some(now),
            ..self.clone()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub operations: Vec<String>,
    pub is_immutable: bool,
    pub is_archived: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub id: String,
    pub org_id: String,
    pub permission_id: String,
    pub identity_id: String,
    pub is_immutable: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodePurpose {
    Registration,
    Login,
    Recovery,
    /// Adding a credential from another device (`/auth/credentials/code`).
    Credential,
}

impl CodePurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registration => "Registration",
            Self::Login => "Login",
            Self::Recovery => "Recovery",
            Self::Credential => "Credential",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Registration" => Self::Registration,
            "Login" => Self::Login,
            "Recovery" => Self::Recovery,
            "Credential" => Self::Credential,
            _ => return None,
        })
    }
}

/// A code we emailed. Only its hash is kept; a few wrong guesses burn it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimeCode {
    pub id: String,
    pub org_id: String,
    pub user_id: String,
    pub purpose: CodePurpose,
    pub code_hash: String,
    pub attempts: i64,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// An email (or, later, a webhook) waiting to leave. Written in the same transaction as the
/// change that caused it, so it is never lost and never sent for a change that rolled back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub id: String,
    pub kind: String,
    /// JSON document whose shape depends on `kind` (see [`Email`]).
    pub payload: String,
    pub attempts: i64,
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
    pub sent_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// The payload of an `email` outbox message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// A JWT signing key. The private half is sealed (AEAD) under the server's secret before it
/// reaches the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtKey {
    pub kid: String,
    pub alg: String,
    pub sealed_private_key: Vec<u8>,
    pub public_key: Vec<u8>,
    pub is_current: bool,
    pub created_at: Timestamp,
}

/// Everything the first start of an organization writes, in one transaction.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub org: Org,
    pub app: App,
    pub root: User,
    pub credential: Credential,
    pub admin_permission: Permission,
    pub assignment: Assignment,
}

/// Lifecycle of a key or wallet row. `Creating` reserves the id (and any `externalId`) before
/// distributed key generation runs, so a retry can never create a second key; only `Active`
/// and `Archived` rows are ever shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleStatus {
    Creating,
    Active,
    Failed,
    Archived,
}

impl LifecycleStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "Creating",
            Self::Active => "Active",
            Self::Failed => "Failed",
            Self::Archived => "Archived",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Creating" => Self::Creating,
            "Active" => Self::Active,
            "Failed" => Self::Failed,
            "Archived" => Self::Archived,
            _ => return None,
        })
    }
}

/// A threshold key. The server holds its public key only; shares live on the signers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub id: String,
    pub org_id: String,
    pub scheme: keyfold_types::keys::KeyScheme,
    pub curve: keyfold_types::keys::KeyCurve,
    /// SEC1 compressed (secp256k1) or 32 bytes (ed25519); empty while `Creating`.
    pub public_key: Vec<u8>,
    pub name: Option<String>,
    pub status: LifecycleStatus,
    pub custodial: bool,
    /// Created with `delayDelegation`: nobody may sign until it is delegated to an end user
    /// (it is non-custodial from the start, so the organization never can).
    pub delegation_pending: bool,
    /// The identity that created the key.
    pub owner_id: String,
    pub external_id: Option<String>,
    pub created_at: Timestamp,
    pub deleted_at: Option<Timestamp>,
}

/// A key bound to a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wallet {
    pub id: String,
    pub org_id: String,
    pub key_id: String,
    pub network: String,
    pub address: Option<String>,
    pub name: Option<String>,
    pub status: LifecycleStatus,
    pub external_id: Option<String>,
    pub tags: Vec<String>,
    pub created_at: Timestamp,
    pub deleted_at: Option<Timestamp>,
}

/// A signature request, written before the signers run and updated with the result before
/// it is returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureRecord {
    pub id: String,
    pub org_id: String,
    pub key_id: String,
    pub wallet_id: Option<String>,
    pub requester_id: String,
    pub token_id: Option<String>,
    pub kind: String,
    /// The request body as JSON text.
    pub request_body: String,
    pub network: Option<String>,
    pub status: keyfold_types::keys::SignatureStatus,
    pub reason: Option<String>,
    /// `SignatureComponents` as JSON text.
    pub signature: Option<String>,
    pub signed_data: Option<String>,
    pub tx_hash: Option<String>,
    pub external_id: Option<String>,
    pub user_action_id: Option<String>,
    pub created_at: Timestamp,
    pub signed_at: Option<Timestamp>,
}

/// Which API resource a chain request was made through: `/transfers` (Keyfold builds the
/// transaction) or `/transactions` (the caller built it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferResource {
    Transfer,
    Transaction,
}

impl TransferResource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transfer => "transfer",
            Self::Transaction => "transaction",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "transfer" => Some(Self::Transfer),
            "transaction" => Some(Self::Transaction),
            _ => None,
        }
    }
}

/// A transfer or broadcast transaction: written before anything is built, updated as it is
/// signed, broadcast and confirmed. The signed transaction is stored before it is broadcast,
/// so a crash in between is resumed by re-sending the very same bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRecord {
    pub id: String,
    pub org_id: String,
    pub wallet_id: String,
    pub network: String,
    pub resource: TransferResource,
    pub requester_id: String,
    pub token_id: Option<String>,
    /// `Native`, `Erc20`, `Transaction`, `Psbt`.
    pub kind: String,
    /// The request body as JSON text.
    pub request_body: String,
    pub status: keyfold_types::transfers::TransferStatus,
    pub reason: Option<String>,
    /// The token contract of an `Erc20` transfer.
    pub contract: Option<String>,
    /// The recipient and amount, for history.
    pub recipient: Option<String>,
    pub amount: Option<String>,
    /// The nonce this request holds (EVM transfers), once allocated.
    pub nonce: Option<i64>,
    /// What was signed (nonce, gas, fees) as JSON text.
    pub details: Option<String>,
    pub signed_tx: Option<String>,
    pub tx_hash: Option<String>,
    pub fee: Option<String>,
    pub block_number: Option<i64>,
    /// The including block's timestamp.
    pub block_time: Option<Timestamp>,
    pub external_id: Option<String>,
    pub user_action_id: Option<String>,
    pub created_at: Timestamp,
    pub broadcast_at: Option<Timestamp>,
    pub confirmed_at: Option<Timestamp>,
    /// Until when one sender (the request, or one tracker pass) holds the right to send the
    /// signed bytes of an `Executing` row: two copies are never in flight at once, so a
    /// refusal is the only answer there is.
    pub send_lease_until: Option<Timestamp>,
}
