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
    async fn insert_app(&self, app: &App) -> StoreResult<()>;
    /// An application by id, whatever its organization (requests name it in a header).
    async fn get_app(&self, app_id: &str) -> StoreResult<Option<App>>;
    /// Records a server-side application's signature nonce; false when it was seen before
    /// (a replay). Forgets nonces whose freshness window has passed.
    async fn use_app_nonce(
        &self,
        app_id: &str,
        nonce: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool>;
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
    /// Service accounts, newest first (`list_user_views` lists people only).
    async fn list_service_account_views(
        &self,
        org_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<UserView>>;
    /// A service account with its key credential, its token and (optionally) its first
    /// assignment, in one transaction.
    async fn create_service_account(
        &self,
        user: &crate::model::User,
        credential: &crate::model::Credential,
        token: &crate::model::AccessToken,
        assignment: Option<&crate::model::Assignment>,
    ) -> StoreResult<()>;
    /// Renames a live identity and/or changes its externalId (Conflict when taken).
    async fn update_user_profile(
        &self,
        org_id: &str,
        user_id: &str,
        name: Option<&str>,
        external_id: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// An identity's long-lived tokens (service account, PAT), oldest first.
    async fn tokens_of(&self, user_id: &str) -> StoreResult<Vec<crate::model::AccessToken>>;
}

#[async_trait]
pub trait CredentialStore: Send + Sync {
    async fn list_credentials(&self, org_id: &str, user_id: &str) -> StoreResult<Vec<Credential>>;
    async fn find_credential(&self, org_id: &str, cred_id: &str)
    -> StoreResult<Option<Credential>>;
    /// Spends the credential challenge (and the code, from the code flow) and stores the
    /// credential — atomically. False when either was already used or has expired; Conflict
    /// when the credId is taken.
    async fn add_credential(
        &self,
        challenge_id: &str,
        code_id: Option<&str>,
        credential: &Credential,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Activates or deactivates one of the user's own credentials (never a PAT's key).
    /// Deactivating the user's last active login credential is refused, atomically with
    /// respect to concurrent deactivations.
    async fn set_credential_active(
        &self,
        org_id: &str,
        user_id: &str,
        uuid: &str,
        active: bool,
    ) -> StoreResult<CredentialToggle>;
    /// Moves a WebAuthn signature counter forward; false when the stored value is already at
    /// or past it (a replayed or cloned authenticator racing this one). A counter of 0 (an
    /// authenticator without one) passes only while the stored counter is 0 too.
    async fn advance_sign_count(&self, uuid: &str, counter: i64) -> StoreResult<bool>;
}

/// What [`CredentialStore::set_credential_active`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialToggle {
    Done,
    NotFound,
    /// It is the user's last active login credential.
    LastActive,
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
    /// Claims one guess at a code before the guess is compared: counts it, unless `max`
    /// guesses are counted already or the code is used, and says whether it did. Claiming
    /// first is what keeps concurrent guesses within `max` (counting after a wrong answer
    /// lets every guess in flight through a check that read the old count).
    async fn claim_code_attempt(&self, code_id: &str, max: i64) -> StoreResult<bool>;
    /// Gives back a claimed guess that turned out right.
    async fn refund_code_attempt(&self, code_id: &str) -> StoreResult<()>;
    /// Stores a code that is handed to the caller rather than mailed, burning the user's
    /// earlier live codes of the same purpose.
    async fn replace_code_quietly(&self, code: &OneTimeCode) -> StoreResult<()>;
    /// The live code of this purpose with this hash, whoever it belongs to.
    async fn find_live_code(
        &self,
        code_hash: &str,
        purpose: CodePurpose,
        now: Timestamp,
    ) -> StoreResult<Option<OneTimeCode>>;
}

#[async_trait]
pub trait ChallengeStore: Send + Sync {
    async fn insert_challenge(&self, c: &Challenge) -> StoreResult<()>;
    /// Spends a one-time code and stores the challenge it buys — atomically. False when the
    /// code was already used or has expired.
    async fn insert_challenge_spending_code(
        &self,
        c: &Challenge,
        code_id: &str,
        now: Timestamp,
    ) -> StoreResult<bool>;
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
    /// A personal access token with its own key and (optionally) its first assignment, in
    /// one transaction. Conflict when its externalId is taken.
    async fn create_pat(
        &self,
        token: &AccessToken,
        credential: &Credential,
        assignment: Option<&crate::model::Assignment>,
    ) -> StoreResult<()>;
    /// A token of the organization, revoked or not.
    async fn get_token(&self, org_id: &str, token_id: &str) -> StoreResult<Option<AccessToken>>;
    /// Renames an unrevoked token and/or changes its externalId (Conflict when taken).
    async fn update_token(
        &self,
        org_id: &str,
        token_id: &str,
        name: Option<&str>,
        external_id: Option<&str>,
    ) -> StoreResult<bool>;
    /// Activates or deactivates an unrevoked token.
    async fn set_token_active(
        &self,
        org_id: &str,
        token_id: &str,
        active: bool,
    ) -> StoreResult<bool>;
    /// Revokes a token for good and deactivates the key it owns — atomically.
    async fn archive_token(
        &self,
        org_id: &str,
        token_id: &str,
        now: Timestamp,
    ) -> StoreResult<bool>;
}

#[async_trait]
pub trait UserActionStore: Send + Sync {
    /// Records a spent (or dead) user action; action challenges and tokens are never stored
    /// before, so the unique `challenge` column makes each single use. False when an action
    /// for the same challenge exists already.
    async fn insert_user_action(&self, action: &UserAction) -> StoreResult<bool>;
    /// Whether an action answering `challenge` was recorded.
    async fn challenge_answered(&self, challenge: &str) -> StoreResult<bool>;
    /// Whether this process is the database's only writer (SQLite, locked), so that an
    /// action it did not record since it opened the database was recorded by nobody.
    fn sole_writer(&self) -> bool {
        false
    }
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

/// Permissions (roles) and their assignments. Writes take effect on the next request.
#[async_trait]
pub trait PermissionStore: Send + Sync {
    async fn insert_permission(&self, p: &crate::model::Permission) -> StoreResult<()>;
    async fn get_permission(
        &self,
        org_id: &str,
        id: &str,
    ) -> StoreResult<Option<crate::model::Permission>>;
    /// Newest first.
    async fn list_permissions(
        &self,
        org_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<crate::model::Permission>>;
    /// Name, operations, archived flag; never an immutable (built-in) permission.
    async fn update_permission(&self, p: &crate::model::Permission) -> StoreResult<bool>;
    /// Conflict when the identity already has the permission.
    async fn insert_assignment(&self, a: &crate::model::Assignment) -> StoreResult<()>;
    async fn get_assignment(
        &self,
        org_id: &str,
        id: &str,
    ) -> StoreResult<Option<crate::model::Assignment>>;
    async fn list_assignments(
        &self,
        org_id: &str,
        permission_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<crate::model::Assignment>>;
    /// Never an immutable assignment (the bootstrap root's).
    async fn delete_assignment(&self, org_id: &str, id: &str) -> StoreResult<bool>;
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
    + KeyStore
    + WalletStore
    + SignatureStore
    + PresignatureStore
    + TransferStore
    + PermissionStore
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
        + KeyStore
        + WalletStore
        + SignatureStore
        + PresignatureStore
        + TransferStore
        + PermissionStore
        + std::fmt::Debug
        + Send
        + Sync
{
}

// ------------------------------------------------------------------------------------------
// Keys, wallets, signatures
// ------------------------------------------------------------------------------------------

use crate::model::{Key, LifecycleStatus, SignatureRecord, Wallet};

#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Reserves a key (status `Creating`). Conflict `keys.external_id` on a reused externalId.
    async fn insert_key(&self, key: &Key) -> StoreResult<()>;
    /// Sets the public key and status of a reserved key; false when it is not `Creating`.
    async fn finish_key(
        &self,
        key_id: &str,
        public_key: &[u8],
        status: LifecycleStatus,
    ) -> StoreResult<bool>;
    async fn get_key(&self, org_id: &str, key_id: &str) -> StoreResult<Option<Key>>;
    async fn find_key_by_external_id(
        &self,
        org_id: &str,
        external_id: &str,
    ) -> StoreResult<Option<Key>>;
    /// Active and archived keys, newest first.
    /// The organization's keys, newest first; with `owner`, only keys delegated to that
    /// end user.
    async fn list_keys(
        &self,
        org_id: &str,
        owner: Option<&str>,
        page: &PageRequest,
    ) -> StoreResult<Page<Key>>;
    async fn rename_key(&self, org_id: &str, key_id: &str, name: &str) -> StoreResult<bool>;
    /// Archives a key and its wallets; false when it was not active.
    async fn archive_key(&self, org_id: &str, key_id: &str, now: Timestamp) -> StoreResult<bool>;
    /// Hands a key created with `delayDelegation` to the end user `user_id`, once: `false`
    /// when the key is not active or not awaiting delegation (already delegated, or never
    /// created for it).
    async fn delegate_key(&self, org_id: &str, key_id: &str, user_id: &str) -> StoreResult<bool>;
}

#[async_trait]
pub trait WalletStore: Send + Sync {
    /// Reserves a wallet, and its new key when `key` is given, atomically. Conflict
    /// `wallets.external_id` on a reused externalId.
    async fn insert_wallet(&self, wallet: &Wallet, key: Option<&Key>) -> StoreResult<()>;
    /// Activates (or fails) a reserved wallet and, when given, its reserved key.
    async fn finish_wallet(
        &self,
        wallet_id: &str,
        address: Option<&str>,
        key: Option<(&str, &[u8])>,
        status: LifecycleStatus,
    ) -> StoreResult<bool>;
    async fn get_wallet(&self, org_id: &str, wallet_id: &str) -> StoreResult<Option<Wallet>>;
    async fn find_wallet_by_external_id(
        &self,
        org_id: &str,
        external_id: &str,
    ) -> StoreResult<Option<Wallet>>;
    /// The organization's wallets, newest first; with `owner`, only wallets whose key is
    /// delegated to that end user.
    async fn list_wallets(
        &self,
        org_id: &str,
        owner: Option<&str>,
        page: &PageRequest,
    ) -> StoreResult<Page<Wallet>>;
    async fn update_wallet(
        &self,
        org_id: &str,
        wallet_id: &str,
        name: Option<&str>,
        external_id: Option<&str>,
    ) -> StoreResult<bool>;
    async fn set_wallet_tags(
        &self,
        org_id: &str,
        wallet_id: &str,
        tags: &[String],
    ) -> StoreResult<bool>;
}

#[async_trait]
pub trait SignatureStore: Send + Sync {
    /// Records a request (status `Executing`) before the signers run, and spends the user
    /// action that approved it (see [`UserActionStore::insert_user_action`]), in one
    /// transaction. False, and nothing written, when the action was spent already; Conflict
    /// `signatures.external_id`, and nothing written, on a reused externalId for the key.
    async fn insert_signature_spending(
        &self,
        rec: &SignatureRecord,
        action: &UserAction,
    ) -> StoreResult<bool>;
    /// Records the outcome; false when the request is not `Executing` any more.
    async fn finish_signature(&self, rec: &SignatureRecord) -> StoreResult<bool>;
    async fn get_signature(
        &self,
        org_id: &str,
        signature_id: &str,
    ) -> StoreResult<Option<SignatureRecord>>;
    async fn find_signature_by_external_id(
        &self,
        org_id: &str,
        key_id: &str,
        external_id: &str,
    ) -> StoreResult<Option<SignatureRecord>>;
    /// Requests of a key (or of a wallet), newest first.
    async fn list_signatures(
        &self,
        org_id: &str,
        key_id: &str,
        wallet_id: Option<&str>,
        page: &PageRequest,
    ) -> StoreResult<Page<SignatureRecord>>;
    /// After a crash: requests still `Executing` from before `before` become `Failed`, so a
    /// retry with the same externalId reports the failure instead of signing twice.
    async fn fail_interrupted_signatures(
        &self,
        before: Timestamp,
        reason: &str,
    ) -> StoreResult<u64>;
}

/// What the signers are asked to sign. The signers hash preimages themselves, so a
/// presignature is never used for a digest they did not compute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignMaterial {
    /// ECDSA over a caller-supplied 32-byte digest (`Hash`): interactive signing only.
    EcdsaDigest([u8; 32]),
    /// ECDSA over `hasher(preimage)`.
    EcdsaPreimage { hasher: Hasher, preimage: Vec<u8> },
    /// Ed25519 over a message.
    Ed25519 { message: Vec<u8> },
    /// BIP-340 Schnorr over a message; `taproot` = Some(merkle root or none) applies the
    /// BIP-341 key-path tweak.
    Schnorr {
        message: Vec<u8>,
        taproot: Option<Option<[u8; 32]>>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hasher {
    Keccak256,
    Sha256,
    DoubleSha256,
}

/// The user action behind a signing request, carried to every signer (which records it, and
/// will verify it itself).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionEvidence {
    pub user_action_id: String,
    pub user_id: String,
    pub credential_uuid: String,
    pub challenge: String,
    pub client_data: String,
    pub signature: String,
    pub http_method: String,
    pub http_path: String,
    pub body: String,
}

/// A signature produced by the cluster, already verified against the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterSignature {
    Ecdsa {
        r: [u8; 32],
        s: [u8; 32],
        recid: u8,
    },
    /// Ed25519 or BIP-340: R‖s.
    Schnorr([u8; 64]),
}

/// Per scheme: can keys be created and used right now?
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemeReadiness {
    pub ready: bool,
    /// Human-readable state ("ready", "generating safe primes 5/12", "aux info 1/3", …).
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClusterReadiness {
    #[serde(rename = "ECDSA")]
    pub ecdsa: SchemeReadiness,
    #[serde(rename = "EdDSA")]
    pub eddsa: SchemeReadiness,
    #[serde(rename = "Schnorr")]
    pub schnorr: SchemeReadiness,
}

/// The threshold signer cluster, as the domain sees it.
#[async_trait]
pub trait SignerCluster: Send + Sync + std::fmt::Debug {
    /// A key generated ahead of time, now the caller's: its id (the key must keep it: the
    /// signers hold its shares under it) and public key. `None` when the pool is empty or off.
    async fn take_pooled_key(
        &self,
        _scheme: keyfold_types::keys::KeyScheme,
    ) -> Option<(String, Vec<u8>)> {
        None
    }
    /// Distributed key generation for a reserved key id; returns the public key.
    async fn generate_key(
        &self,
        key_id: &str,
        scheme: keyfold_types::keys::KeyScheme,
    ) -> Result<Vec<u8>, crate::DomainError>;
    /// Signs with `t` healthy signers (retrying another quorum when one fails) and verifies
    /// the result against the key before returning it.
    async fn sign(
        &self,
        key: &Key,
        material: &SignMaterial,
        evidence: &ActionEvidence,
        request_id: &str,
    ) -> Result<ClusterSignature, crate::DomainError>;
    fn readiness(&self) -> ClusterReadiness;
    /// Waits until `scheme` is ready, at most `timeout`; false if it is not.
    async fn wait_ready(
        &self,
        scheme: keyfold_types::keys::KeyScheme,
        timeout: std::time::Duration,
    ) -> bool;
}

/// What a signature request becomes once its network's rules are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedSignature {
    /// What the signers sign, in order: one entry for most kinds, one per owned input for a
    /// PSBT. Never empty.
    pub materials: Vec<SignMaterial>,
    /// What finishing needs (e.g. the unsigned transaction to attach the signature to).
    pub context: PreparedContext,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreparedContext {
    None,
    /// An EVM transaction (unsigned serialization) waiting for its signature.
    EvmTransaction(Vec<u8>),
    /// A Bitcoin wallet's ECDSA signature: `encoded` is DER (low-S), as Bitcoin scripts take it.
    BitcoinDer,
    /// A PSBT (serialized) whose owned inputs the signatures go into, in `materials` order.
    BitcoinPsbt(Vec<u8>),
    /// A Solana transaction (wire format) the wallet's signature goes into.
    SolanaTransaction(Vec<u8>),
}

/// A finished signature in the API's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedSignature {
    /// One per signed material, in order (never empty).
    pub components: Vec<keyfold_types::keys::SignatureComponents>,
    pub signed_data: Option<String>,
    pub tx_hash: Option<String>,
}

/// Network rules: which keys a network takes, its addresses, and how each signature kind is
/// hashed and finished. Implemented by `keyfold-chains`.
pub trait Networks: Send + Sync + std::fmt::Debug {
    /// Canonical network name, or a 400 for an unknown / unsupported one.
    fn canonical(&self, network: &str) -> Result<String, crate::DomainError>;
    /// The key a new wallet on `network` gets (honouring an explicit scheme/curve request).
    fn key_spec(
        &self,
        network: &str,
        scheme: Option<keyfold_types::keys::KeyScheme>,
        curve: Option<keyfold_types::keys::KeyCurve>,
    ) -> Result<
        (
            keyfold_types::keys::KeyScheme,
            keyfold_types::keys::KeyCurve,
        ),
        crate::DomainError,
    >;
    /// The wallet address of `key` on `network` (None for raw-key networks).
    fn address(&self, network: &str, key: &Key) -> Result<Option<String>, crate::DomainError>;
    /// Validates a request and says what the signers must sign.
    fn prepare(
        &self,
        network: Option<&str>,
        key: &Key,
        kind: &keyfold_types::keys::SignatureKind,
    ) -> Result<PreparedSignature, crate::DomainError>;
    /// Formats verified signatures, one per prepared material (and the signed artefact, if
    /// any).
    fn complete(
        &self,
        prepared: &PreparedSignature,
        key: &Key,
        signatures: &[ClusterSignature],
    ) -> Result<CompletedSignature, crate::DomainError>;
    /// Refuses (400), before anything is signed, a transaction Keyfold could sign but not send
    /// on its own: one that still needs other parties' signatures, or a kind the network does
    /// not broadcast.
    fn check_broadcastable(
        &self,
        network: &str,
        key: &Key,
        kind: &keyfold_types::keys::SignatureKind,
    ) -> Result<(), crate::DomainError>;
    /// What to send and how the chain will name it, from a completed signature's signed
    /// artefact: the wire bytes for the RPC, the transaction id, and the fee when it is
    /// known before broadcast (Bitcoin: inputs minus outputs).
    fn broadcast_form(
        &self,
        network: &str,
        signed_data: &str,
        tx_hash: Option<&str>,
    ) -> Result<BroadcastForm, crate::DomainError>;
}

/// A signed transaction as it is sent (see [`Networks::broadcast_form`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BroadcastForm {
    pub raw: String,
    pub tx_hash: String,
    pub fee: Option<String>,
}

/// Use-once signing material the signers hold — an ECDSA presignature, or one FROST nonce
/// commitment per signer made ahead of time: only its public part and who holds it are here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignatureRecord {
    pub id: String,
    pub key_id: String,
    /// The signers (party indices, ascending, comma-separated) that hold it; only they can
    /// use it.
    pub signers: String,
    /// The presignature's public part (opaque bytes for the coordinator).
    pub public: Vec<u8>,
    pub created_at: Timestamp,
}

/// A key the cluster generated ahead of time and nobody owns yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PooledKey {
    /// The id the signers hold its shares under; the key keeps it.
    pub id: String,
    pub scheme: keyfold_types::keys::KeyScheme,
    pub public_key: Vec<u8>,
    pub created_at: Timestamp,
}

#[async_trait]
pub trait PresignatureStore: Send + Sync {
    async fn add_presignature(&self, p: &PresignatureRecord) -> StoreResult<()>;
    /// Many at once, in one transaction (FROST nonce commitments come in batches).
    async fn add_presignatures(&self, batch: &[PresignatureRecord]) -> StoreResult<()>;
    /// Removes and returns one presignature of `key_id` held by one of `signer_sets` — in one
    /// statement, so each is handed out at most once, even across replicas and restarts.
    async fn take_presignature(
        &self,
        key_id: &str,
        signer_sets: &[String],
    ) -> StoreResult<Option<PresignatureRecord>>;
    /// Up to `limit` at once, each handed out once (a coordinator leasing FROST nonce
    /// commitments in batches: one commit for many signatures).
    async fn take_presignatures(
        &self,
        key_id: &str,
        signer_sets: &[String],
        limit: i64,
    ) -> StoreResult<Vec<PresignatureRecord>>;
    async fn count_presignatures(&self, key_id: &str) -> StoreResult<i64>;
    /// Forgets the pooled presignature and FROST nonce records that signer `party` holds a
    /// part of and that were indexed before `before` (it started then, and burnt its parts);
    /// returns how many.
    async fn forget_presignatures_before(&self, party: u16, before: Timestamp) -> StoreResult<u64>;
    /// Forgets every key generated ahead of time (this process starts: a pooled key in a
    /// database restored from a backup may already be somebody's); returns how many.
    async fn forget_pooled_keys(&self) -> StoreResult<u64>;
    /// A key generated ahead of time, into the pool.
    async fn add_pooled_key(&self, k: &PooledKey) -> StoreResult<()>;
    /// Removes and returns the oldest pooled key of `scheme` — in one statement, so each is
    /// handed out once.
    async fn take_pooled_key(
        &self,
        scheme: keyfold_types::keys::KeyScheme,
    ) -> StoreResult<Option<PooledKey>>;
    async fn count_pooled_keys(&self, scheme: keyfold_types::keys::KeyScheme) -> StoreResult<i64>;
    /// The status of ECDSA key `key_id`, `None` when there is no such ECDSA key (yet: a key
    /// taken from the pool is stored after the refill may hear of it). The background refill
    /// presigns only for active keys.
    async fn ecdsa_key_status(&self, key_id: &str) -> StoreResult<Option<LifecycleStatus>>;
}

// ------------------------------------------------------------------------------------------
// A signer node's own persistence (each signer has its own database). Everything secret
// arrives here already sealed by the node's keystore: this port stores opaque bytes.
// ------------------------------------------------------------------------------------------

/// A signing request as a signer recorded it, with the user action that asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRequestRecord {
    pub session_id: String,
    pub key_id: String,
    pub protocol: String,
    /// `ActionEvidence` as JSON text.
    pub evidence: String,
    pub created_at: Timestamp,
}

#[async_trait]
pub trait NodeStore: Send + Sync + std::fmt::Debug {
    async fn get_meta(&self, name: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Writes `value` unless `name` exists; returns what is stored now (first writer wins).
    async fn init_meta(&self, name: &str, value: &[u8]) -> StoreResult<Vec<u8>>;
    /// Stores a sealed key share. Conflict `node_shares.key` if the key already has one.
    async fn put_share(
        &self,
        key_id: &str,
        version: i64,
        scheme: &str,
        sealed: &[u8],
        now: Timestamp,
    ) -> StoreResult<()>;
    /// `(version, scheme, sealed)` of a key's share.
    async fn get_share(&self, key_id: &str) -> StoreResult<Option<(i64, String, Vec<u8>)>>;
    async fn put_aux(&self, group_id: &str, sealed: &[u8], now: Timestamp) -> StoreResult<()>;
    async fn get_aux(&self, group_id: &str) -> StoreResult<Option<Vec<u8>>>;
    async fn add_primes(&self, id: &str, sealed: &[u8], now: Timestamp) -> StoreResult<()>;
    /// The oldest set of primes (`(id, sealed)`), left in place: an aux-info run that fails
    /// may retry with it; only a stored aux info consumes it ([`NodeStore::delete_primes`]).
    async fn oldest_primes(&self) -> StoreResult<Option<(String, Vec<u8>)>>;
    /// Deletes a set of primes; false if it was already gone.
    async fn delete_primes(&self, id: &str) -> StoreResult<bool>;
    async fn count_primes(&self) -> StoreResult<i64>;
    async fn put_presignature(
        &self,
        id: &str,
        key_id: &str,
        sealed: &[u8],
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Removes and returns a presignature — deleted *before* any partial signature made from
    /// it can leave the node, so it is never used twice, not even after a crash.
    async fn take_presignature(&self, id: &str, key_id: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Stores many use-once secrets (`(id, sealed)`) for a key in one transaction (FROST
    /// nonces made ahead of time share the presignature table).
    async fn put_presignatures(
        &self,
        key_id: &str,
        batch: &[(String, Vec<u8>)],
        now: Timestamp,
    ) -> StoreResult<()>;
    /// [`NodeStore::take_presignature`] and [`NodeStore::record_request`] in one transaction:
    /// the secret is gone and the request recorded before anything is computed from it.
    /// Without a record it is just [`NodeStore::take_presignature`].
    async fn take_presignature_recording(
        &self,
        id: &str,
        key_id: &str,
        rec: Option<&NodeRequestRecord>,
    ) -> StoreResult<Option<Vec<u8>>>;
    async fn record_request(&self, rec: &NodeRequestRecord) -> StoreResult<()>;
    async fn count_requests(&self, key_id: &str) -> StoreResult<i64>;
    /// Deletes every use-once secret (ECDSA presignatures, FROST nonces); returns how many.
    /// A node calls it whenever it starts: a database restored from a backup, or a disk
    /// rolled back with its machine, would otherwise hand out again secrets already spent,
    /// and one presignature spent on two messages reveals the key.
    async fn burn_pooled(&self) -> StoreResult<u64>;
}

// ------------------------------------------------------------------------------------------
// Transfers and the chains' RPC
// ------------------------------------------------------------------------------------------

use crate::model::{TransferRecord, TransferResource};
use keyfold_types::transfers::{Asset, AssetMetadata, TransferPriority, TransferStatus};

/// Transfers and broadcast transactions, and the per-wallet nonce allocator.
#[async_trait]
pub trait TransferStore: Send + Sync {
    /// Conflict when the wallet already has a request of this resource with the `externalId`.
    async fn insert_transfer(&self, t: &TransferRecord) -> StoreResult<()>;
    async fn get_transfer(&self, org_id: &str, id: &str) -> StoreResult<Option<TransferRecord>>;
    async fn find_transfer_by_external_id(
        &self,
        wallet_id: &str,
        resource: TransferResource,
        external_id: &str,
    ) -> StoreResult<Option<TransferRecord>>;
    /// Newest first; `confirmed_only` for the wallet's history.
    async fn list_transfers(
        &self,
        org_id: &str,
        wallet_id: &str,
        resource: Option<TransferResource>,
        confirmed_only: bool,
        page: &PageRequest,
    ) -> StoreResult<Page<TransferRecord>>;
    /// Writes the mutable fields of `t` if the row is still in `expected`; false otherwise
    /// (someone else moved it on: the caller must not act on its stale view).
    async fn update_transfer(
        &self,
        t: &TransferRecord,
        expected: TransferStatus,
    ) -> StoreResult<bool>;
    /// Takes the right to send the stored bytes of an `Executing` row until `until`, if
    /// nobody holds it at `now`. False when the row moved on or another sender holds it.
    async fn claim_send(&self, id: &str, now: Timestamp, until: Timestamp) -> StoreResult<bool>;
    /// Requests still in flight (Executing or Broadcasted), oldest first.
    async fn unsettled_transfers(&self, limit: i64) -> StoreResult<Vec<TransferRecord>>;
    /// The next nonce for `wallet_id` and records it on the transfer, in one transaction: the
    /// lowest released nonce not below `chain_next` if there is one, else the wallet's counter
    /// (raised to `chain_next` first). Concurrent callers never get the same nonce.
    async fn allocate_nonce(
        &self,
        transfer_id: &str,
        wallet_id: &str,
        chain_next: i64,
    ) -> StoreResult<i64>;
    /// A nonce that was never broadcast goes back to the wallet, for the next transfer.
    async fn release_nonce(&self, wallet_id: &str, nonce: i64) -> StoreResult<()>;
    /// Holds `outpoints` of `wallet_id` for `transfer_id`, all or none: false when another
    /// transfer holds any of them already.
    async fn reserve_outpoints(
        &self,
        wallet_id: &str,
        transfer_id: &str,
        outpoints: &[String],
    ) -> StoreResult<bool>;
    /// Every outpoint of `wallet_id` some transfer holds.
    async fn reserved_outpoints(&self, wallet_id: &str) -> StoreResult<Vec<String>>;
    /// Lets go of what `transfer_id` held: it never reached the chain.
    async fn release_outpoints(&self, transfer_id: &str) -> StoreResult<()>;
    /// The token contracts the wallet has sent through Keyfold.
    async fn transfer_contracts(&self, wallet_id: &str) -> StoreResult<Vec<String>>;
}

/// What a transfer moves, as the caller asked (validated by the chain adapter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferIntent {
    Native {
        to: String,
        amount: String,
    },
    Erc20 {
        contract: String,
        to: String,
        amount: String,
    },
}

/// A transfer made concrete by the chain: everything but the nonce.
#[derive(Debug, Clone)]
pub struct TransferPlan {
    /// The sender's next nonce as the chain sees it (pending transactions included), on
    /// chains that order an account's transactions by nonce (EVM); `None` elsewhere, and no
    /// nonce is allocated.
    pub chain_nonce: Option<u64>,
    /// The recipient (checksummed on EVM) and the token contract, for the record.
    pub recipient: String,
    pub contract: Option<String>,
    pub asset: AssetMetadata,
    /// What the transfer's `details` show: fees, gas, inputs… (the nonce is added once
    /// allocated).
    pub details: serde_json::Map<String, serde_json::Value>,
    /// The coins this transfer spends (Bitcoin outpoints, `txid:vout`): reserved for it
    /// before it is signed, so concurrent transfers never pick the same ones.
    pub spends: Vec<String>,
    pub build: TransferBuild,
}

/// How the unsigned transaction of a plan is made.
#[derive(Debug, Clone)]
pub enum TransferBuild {
    /// An EIP-1559 transaction, once its nonce is known.
    Evm(EvmTransferFields),
    /// Built already (Bitcoin PSBT, Solana transaction): what the wallet signs.
    Ready(keyfold_types::keys::SignatureKind),
}

/// The fields of an EVM transfer's transaction, but its nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvmTransferFields {
    pub chain_id: u64,
    /// The transaction's `to` (the token contract for ERC-20) and `value`.
    pub tx_to: String,
    pub tx_value: String,
    /// Call data, hex.
    pub data: String,
    pub gas_limit: u64,
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
}

/// What the chain said to a broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BroadcastOutcome {
    /// In the node's pool (or already there, or already mined).
    Accepted,
    /// Refused for good. `nonce_used`: the nonce is taken on chain by another transaction.
    Rejected { reason: String, nonce_used: bool },
}

/// Where a broadcast transaction stands on chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainTxStatus {
    /// Known to the node, not yet in a block.
    Pending,
    /// Unknown to the node (dropped, or never arrived): send it again.
    Unknown,
    /// Included and executed. `block_number` is the block height (the slot on Solana);
    /// `fee` is what the chain charged, when the node reports it.
    Confirmed {
        block_number: u64,
        /// The block's timestamp (ms), when the node gave it.
        block_time: Option<i64>,
        fee: Option<String>,
    },
    Reverted {
        block_number: u64,
        block_time: Option<i64>,
        fee: Option<String>,
    },
}

/// The chains themselves, through their RPC endpoints (`[networks.<Name>] rpc_url`).
/// Implemented by `keyfold-chains`. A network with no endpoint is a 400 naming the setting; an
/// endpoint that does not answer is a 503.
#[async_trait]
pub trait ChainRpc: Send + Sync + std::fmt::Debug {
    /// Current fee estimates (slow / standard / fast) for `network`.
    async fn fees(
        &self,
        network: &str,
    ) -> Result<keyfold_types::networks::FeesResponse, crate::DomainError>;

    /// Validates the intent and prices it: gas or fee rate for `priority`, the chain's nonce,
    /// the coins to spend (never one of `reserved`, which other transfers hold). A sender
    /// who cannot pay (value + fees, or the token amount) is a 400 here, before anything is
    /// signed. `transfer_id` may be written on chain (a Solana memo) to tell transfers apart.
    async fn plan_transfer(
        &self,
        network: &str,
        from: &str,
        intent: &TransferIntent,
        priority: TransferPriority,
        reserved: &[String],
        transfer_id: &str,
    ) -> Result<TransferPlan, crate::DomainError>;

    /// What the wallet signs for `plan`: with `nonce` on chains that have one.
    fn build_transfer(
        &self,
        network: &str,
        plan: &TransferPlan,
        nonce: Option<u64>,
    ) -> Result<keyfold_types::keys::SignatureKind, crate::DomainError>;

    /// Sends a signed transaction. `Err(Unavailable)` when the endpoint cannot be reached
    /// (the caller keeps the bytes and tries again).
    async fn broadcast(
        &self,
        network: &str,
        signed_tx: &str,
    ) -> Result<BroadcastOutcome, crate::DomainError>;

    async fn transaction_status(
        &self,
        network: &str,
        tx_hash: &str,
    ) -> Result<ChainTxStatus, crate::DomainError>;

    /// The native coin's symbol and decimals on `network`.
    fn native_asset(&self, network: &str) -> Result<AssetMetadata, crate::DomainError>;

    /// Whether a transaction `network` accepted, then lost, may be given up once its re-send
    /// has been refused for `dropped_after_secs`: yes where a refusal is final (an EVM nonce
    /// taken, a Solana blockhash expired); no on Bitcoin, where it proves nothing (evicted
    /// from this node's mempool but still in peers', or mined and its outputs spent since).
    fn lost_transactions_expire(&self, network: &str) -> bool;

    /// Live balances: the native coin, then each token contract.
    async fn balances(
        &self,
        network: &str,
        address: &str,
        contracts: &[String],
    ) -> Result<Vec<Asset>, crate::DomainError>;
}
