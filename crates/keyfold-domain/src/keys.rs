//! Keys, wallets and signatures: the use cases behind `/keys` and `/wallets`.
//!
//! Creating a key *reserves* its id (and `externalId`) in the store first, then runs the
//! distributed key generation, then activates the row — so a retry, a crash or a racing
//! duplicate can never produce two keys for one request. Signing writes the request
//! (`Executing`) before the signers run and its outcome before answering; the same
//! `externalId` always answers with that one record, so a retry never yields a second
//! signature. Network specifics (addresses, what a `Transaction` hashes to) are behind the
//! [`Networks`] port; the signers behind [`SignerCluster`].

use std::sync::Arc;
use std::time::Duration;

use keyfold_types::keys::{
    CreateKeyBody, GenerateSignatureBody, KeyCurve, KeyResponse, KeyScheme, KeyStatus,
    ListKeysQuery, Requester, SignatureComponents, SignatureResponse, SignatureStatus,
};
use keyfold_types::limits;
use keyfold_types::wallets::{
    CreateWalletBody, ListWalletsQuery, UpdateWalletBody, WalletResponse, WalletSigningKey,
    WalletStatus,
};

use crate::authz::{Granted, Operation, Principal, op};
use crate::error::{DomainError, Result, StoreError};
use crate::ids::{IdKind, looks_like, new_id};
use crate::model::{Key, LifecycleStatus, SignatureRecord, UserAction, Wallet};
use crate::page::{Page, PageRequest};
use crate::ports::{
    ActionEvidence, ChainRpc, CompletedSignature, Networks, PreparedSignature, SignerCluster, Store,
};
use crate::time::{Clock, Timestamp};
use crate::validate;

/// A user action that approved a signing request, checked but not yet spent: the signing
/// path spends it in the transaction that records the request (one commit less per
/// signature), and records `evidence` with the signers.
#[derive(Debug, Clone)]
pub struct ApprovingAction {
    pub action: UserAction,
    pub evidence: ActionEvidence,
}

/// How long a retried signature request waits for the original to finish.
const SETTLE_WAIT: std::time::Duration = std::time::Duration::from_secs(90);

/// Settings of the key use cases.
#[derive(Debug, Clone)]
pub struct KeySettings {
    /// How long a key creation waits for a scheme that is still being prepared (ECDSA aux
    /// info) before answering 503.
    pub ready_wait: Duration,
    /// How long after its broadcast a transaction the network lost, and now refuses when
    /// sent again, is still given the benefit of the doubt (a lagging node) before it is
    /// declared failed.
    pub dropped_after: Duration,
}

/// The key, wallet and signature use cases.
#[derive(Debug, Clone)]
pub struct KeyService {
    pub(crate) store: Arc<dyn Store>,
    cluster: Arc<dyn SignerCluster>,
    pub(crate) networks: Arc<dyn Networks>,
    pub(crate) rpc: Arc<dyn ChainRpc>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: KeySettings,
}

/// Who a new key belongs to (`delegateTo` / `delayDelegation`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Delegation {
    /// The organization (custodial).
    None,
    /// This end user, from the start.
    To(String),
    /// An end user named later (`POST /keys/{id}/delegate`); nobody signs until then.
    Pending,
}

impl Delegation {
    /// `(custodial, delegation_pending, owner_id)` of a key created by `creator`.
    fn key_fields(&self, creator: &str) -> (bool, bool, String) {
        match self {
            Delegation::None => (true, false, creator.to_string()),
            Delegation::To(user) => (false, false, user.clone()),
            Delegation::Pending => (false, true, creator.to_string()),
        }
    }

    /// Whether an existing key (an `externalId` replay) is what this request asked for.
    fn matches(&self, k: &Key) -> bool {
        match self {
            Delegation::None => k.custodial,
            Delegation::To(user) => !k.custodial && !k.delegation_pending && &k.owner_id == user,
            // Delegated since: still the key that was asked for.
            Delegation::Pending => !k.custodial,
        }
    }
}

/// Wallets created in one end-user registration, at most.
const MAX_END_USER_WALLETS: usize = 16;

/// Where a new wallet's key comes from.
enum KeySource {
    Existing(Key),
    New(KeyScheme, KeyCurve),
    /// Generated ahead of time by the cluster: its id and public key.
    Pooled(KeyScheme, KeyCurve, String, Vec<u8>),
}

/// A wallet about to be created (see [`KeyService::build_wallet`]).
struct NewWallet {
    org: String,
    creator: String,
    /// Who the wallet's new key belongs to.
    delegate: Delegation,
    network: String,
    name: Option<String>,
    external_id: Option<String>,
    tags: Vec<String>,
    source: KeySource,
}

/// Wallets an end user asked for at registration, checked and ready to create
/// ([`KeyService::plan_end_user_wallets`]).
#[derive(Debug)]
pub struct EndUserWallets {
    planned: Vec<(String, Option<String>, KeyScheme, KeyCurve)>,
}

/// Tags: at most this many per wallet, each at most this long.
const MAX_TAGS: usize = 32;
const MAX_TAG_LEN: usize = 64;

impl KeyService {
    pub fn new(
        store: Arc<dyn Store>,
        cluster: Arc<dyn SignerCluster>,
        networks: Arc<dyn Networks>,
        rpc: Arc<dyn ChainRpc>,
        clock: Arc<dyn Clock>,
        settings: KeySettings,
    ) -> Self {
        Self {
            store,
            cluster,
            networks,
            rpc,
            clock,
            settings,
        }
    }

    pub fn cluster(&self) -> &Arc<dyn SignerCluster> {
        &self.cluster
    }

    // ------------------------------------------------------------------ keys

    pub async fn create_key(
        &self,
        g: &Granted<op::KeysCreate>,
        body: CreateKeyBody,
    ) -> Result<KeyResponse> {
        check_scheme_curve(body.scheme, body.curve)?;
        if body.derive_from.is_some() || body.master_key == Some(true) {
            return Err(DomainError::invalid("HD key derivation is not supported"));
        }
        if body.store_id.is_some() {
            return Err(DomainError::invalid("key stores are not supported"));
        }
        let name = optional_text("name", body.name.as_deref())?;
        let external_id = optional_text("externalId", body.external_id.as_deref())?;
        let org = g.org_id().to_string();
        let delegate = self
            .delegation_target(&org, body.delegate_to.as_deref(), body.delay_delegation)
            .await?;
        if let Some(ext) = &external_id
            && let Some(existing) = self.store.find_key_by_external_id(&org, ext).await?
        {
            return key_replay(existing, body.scheme, body.curve, &delegate);
        }
        // A key the cluster generated ahead of time is stored ready, in one write; otherwise
        // the key is reserved, generated, then finished.
        let pooled = self.cluster.take_pooled_key(body.scheme).await;
        if pooled.is_none() {
            self.ensure_ready(body.scheme).await?;
        }
        let (custodial, delegation_pending, owner_id) = delegate.key_fields(&g.principal().user_id);
        let (id, public_key, status) = match pooled {
            Some((id, pk)) => (id, pk, LifecycleStatus::Active),
            None => (new_id(IdKind::Key), Vec::new(), LifecycleStatus::Creating),
        };
        let key = Key {
            id,
            org_id: org.clone(),
            scheme: body.scheme,
            curve: body.curve,
            public_key,
            name,
            status,
            custodial,
            delegation_pending,
            owner_id,
            external_id: external_id.clone(),
            created_at: self.clock.now(),
            deleted_at: None,
        };
        let inserted = self.store.insert_key(&key).await;
        if inserted.is_err() {
            self.return_to_pool(&key).await;
        }
        match inserted {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) if external_id.is_some() => {
                let ext = external_id.as_deref().unwrap_or_default();
                let existing = self
                    .store
                    .find_key_by_external_id(&org, ext)
                    .await?
                    .ok_or_else(|| DomainError::conflict("externalId is already in use"))?;
                return key_replay(existing, body.scheme, body.curve, &delegate);
            }
            Err(e) => return Err(e.into()),
        }
        if key.status == LifecycleStatus::Active {
            return Ok(key_response(&key));
        }
        let public_key = match self.cluster.generate_key(&key.id, key.scheme).await {
            Ok(pk) => pk,
            Err(e) => {
                self.store
                    .finish_key(&key.id, &[], LifecycleStatus::Failed)
                    .await?;
                return Err(e);
            }
        };
        self.store
            .finish_key(&key.id, &public_key, LifecycleStatus::Active)
            .await?;
        Ok(key_response(&Key {
            public_key,
            status: LifecycleStatus::Active,
            ..key
        }))
    }

    pub async fn list_keys(
        &self,
        g: &Granted<op::KeysRead>,
        q: ListKeysQuery,
    ) -> Result<Page<KeyResponse>> {
        let page = PageRequest::parse(q.limit, q.pagination_token.as_deref())?;
        Ok(self
            .store
            .list_keys(g.org_id(), g.principal().owner_scope(), &page)
            .await?
            .map(|k| key_response(&k)))
    }

    pub async fn get_key(&self, g: &Granted<op::KeysRead>, key_id: &str) -> Result<KeyResponse> {
        Ok(key_response(
            &self.visible_key(g.principal(), key_id).await?,
        ))
    }

    pub async fn rename_key(
        &self,
        g: &Granted<op::KeysUpdate>,
        key_id: &str,
        name: &str,
    ) -> Result<KeyResponse> {
        let name = validate::text("name", name, limits::NAME_MAX)?;
        let key = self.active_key(g.principal(), key_id).await?;
        self.store.rename_key(g.org_id(), &key.id, &name).await?;
        Ok(key_response(&Key {
            name: Some(name),
            ..key
        }))
    }

    /// Archives the key and every wallet on it: they can no longer sign.
    pub async fn delete_key(
        &self,
        g: &Granted<op::KeysDelete>,
        key_id: &str,
    ) -> Result<KeyResponse> {
        let key = self.active_key(g.principal(), key_id).await?;
        if !key.custodial && !key.delegation_pending {
            // An end user's key: archiving it would lock them out of their funds.
            return Err(DomainError::denied(
                "this key is delegated to an end user: the organization cannot archive it",
            ));
        }
        let now = self.clock.now();
        if !self.store.archive_key(g.org_id(), &key.id, now).await? {
            return Err(key_not_found(key_id));
        }
        Ok(key_response(&Key {
            status: LifecycleStatus::Archived,
            deleted_at: Some(now),
            ..key
        }))
    }

    pub async fn sign_with_key(
        &self,
        g: &Granted<op::KeysSignaturesCreate>,
        key_id: &str,
        body: GenerateSignatureBody,
        approval: ApprovingAction,
    ) -> Result<SignatureResponse> {
        let mut spent = false;
        let r = async {
            let key = self.active_key(g.principal(), key_id).await?;
            let network = match &body.network {
                Some(n) => Some(self.networks.canonical(n)?),
                None => None,
            };
            self.sign(
                g.principal(),
                &key,
                None,
                network,
                body,
                &approval,
                &mut spent,
            )
            .await
        }
        .await;
        self.spent_whatever_the_outcome(&approval, spent, r).await
    }

    pub async fn list_key_signatures(
        &self,
        g: &Granted<op::KeysSignaturesRead>,
        key_id: &str,
        q: ListKeysQuery,
    ) -> Result<Page<SignatureResponse>> {
        let key = self.visible_key(g.principal(), key_id).await?;
        let page = PageRequest::parse(q.limit, q.pagination_token.as_deref())?;
        let p = self
            .store
            .list_signatures(g.org_id(), &key.id, None, &page)
            .await?;
        Ok(Page {
            items: p
                .items
                .iter()
                .map(signature_response)
                .collect::<Result<_>>()?,
            next: p.next,
        })
    }

    pub async fn get_key_signature(
        &self,
        g: &Granted<op::KeysSignaturesRead>,
        key_id: &str,
        signature_id: &str,
    ) -> Result<SignatureResponse> {
        self.visible_key(g.principal(), key_id).await?;
        let rec = self.signature(g.org_id(), signature_id).await?;
        if rec.key_id != key_id {
            return Err(signature_not_found(signature_id));
        }
        signature_response(&rec)
    }

    // ------------------------------------------------------------------ wallets

    pub async fn create_wallet(
        &self,
        g: &Granted<op::WalletsCreate>,
        body: CreateWalletBody,
    ) -> Result<WalletResponse> {
        let network = self.networks.canonical(&body.network)?;
        let name = optional_text("name", body.name.as_deref())?;
        let external_id = optional_text("externalId", body.external_id.as_deref())?;
        let tags = validate_tags(body.tags.as_deref().unwrap_or(&[]))?;
        if !tags.is_empty() && !g.principal().can(op::WalletsTagsAdd::NAME) {
            return Err(DomainError::denied(
                "tagging a wallet needs the Wallets:Tags:Add permission",
            ));
        }
        let org = g.org_id().to_string();
        let delegate = self
            .delegation_target(&org, body.delegate_to.as_deref(), body.delay_delegation)
            .await?;
        if let Some(ext) = &external_id
            && let Some(existing) = self.store.find_wallet_by_external_id(&org, ext).await?
        {
            return self.wallet_replay(existing, &network, &delegate).await;
        }
        let opts = body
            .signing_key
            .unwrap_or(keyfold_types::wallets::WalletSigningKeyOptions {
                id: None,
                scheme: None,
                curve: None,
                store_id: None,
            });
        if opts.store_id.is_some() {
            return Err(DomainError::invalid("key stores are not supported"));
        }
        // Reuse an existing key, or reserve a new one.
        let source = match &opts.id {
            Some(key_id) => {
                let key = self.active_key(g.principal(), key_id).await?;
                let (scheme, curve) =
                    self.networks
                        .key_spec(&network, Some(key.scheme), Some(key.curve))?;
                if (scheme, curve) != (key.scheme, key.curve) {
                    return Err(DomainError::invalid(format!(
                        "key {key_id} ({} {}) cannot back a {network} wallet",
                        key.scheme.as_str(),
                        key.curve.as_str()
                    )));
                }
                // A wallet on a delegated key is delegated with it; a key cannot change
                // hands by being reused.
                let matches = match &delegate {
                    Delegation::None => true,
                    Delegation::To(u) => {
                        !key.custodial && !key.delegation_pending && &key.owner_id == u
                    }
                    Delegation::Pending => key.delegation_pending,
                };
                if !matches {
                    return Err(DomainError::invalid(
                        "delegateTo / delayDelegation must match the delegation of the reused key",
                    ));
                }
                KeySource::Existing(key)
            }
            None => {
                let (scheme, curve) = self.networks.key_spec(&network, opts.scheme, opts.curve)?;
                match self.cluster.take_pooled_key(scheme).await {
                    Some((id, public_key)) => KeySource::Pooled(scheme, curve, id, public_key),
                    None => {
                        self.ensure_ready(scheme).await?;
                        KeySource::New(scheme, curve)
                    }
                }
            }
        };
        self.build_wallet(NewWallet {
            org,
            creator: g.principal().user_id.clone(),
            delegate,
            network,
            name,
            external_id,
            tags,
            source,
        })
        .await
    }

    /// Checks the wallets an end user asks for at registration (`POST
    /// /auth/registration/enduser`) *before* the registration is spent: known networks,
    /// valid names, and signers ready for each scheme (waiting as a key creation does).
    pub async fn plan_end_user_wallets(
        &self,
        specs: &[keyfold_types::auth::EndUserWalletSpec],
    ) -> Result<EndUserWallets> {
        if specs.len() > MAX_END_USER_WALLETS {
            return Err(DomainError::invalid(format!(
                "at most {MAX_END_USER_WALLETS} wallets can be created at registration"
            )));
        }
        let mut planned = Vec::with_capacity(specs.len());
        for spec in specs {
            let network = self.networks.canonical(&spec.network)?;
            let name = optional_text("name", spec.name.as_deref())?;
            let (scheme, curve) = self.networks.key_spec(&network, None, None)?;
            planned.push((network, name, scheme, curve));
        }
        for (_, _, scheme, _) in &planned {
            self.ensure_ready(*scheme).await?;
        }
        Ok(EndUserWallets { planned })
    }

    /// Creates the planned wallets, each on a new key delegated to the end user `user_id`
    /// who just registered (the registration, made possible by a service holding
    /// `Auth:Register:Delegated`, is the authority). Nobody but that end user can sign
    /// with them.
    pub async fn create_end_user_wallets(
        &self,
        org_id: &str,
        user_id: &str,
        plan: EndUserWallets,
    ) -> Result<Vec<WalletResponse>> {
        let mut out = Vec::with_capacity(plan.planned.len());
        for (network, name, scheme, curve) in plan.planned {
            out.push(
                self.build_wallet(NewWallet {
                    org: org_id.to_string(),
                    creator: user_id.to_string(),
                    delegate: Delegation::To(user_id.to_string()),
                    network,
                    name,
                    external_id: None,
                    tags: Vec::new(),
                    source: KeySource::New(scheme, curve),
                })
                .await?,
            );
        }
        Ok(out)
    }

    /// `delegateTo` / `delayDelegation` of a key or wallet creation: the end user the new
    /// key will belong to, if any. Only an active end user of the same organization can
    /// receive a key.
    async fn delegation_target(
        &self,
        org_id: &str,
        delegate_to: Option<&str>,
        delay: Option<bool>,
    ) -> Result<Delegation> {
        let Some(user_id) = delegate_to else {
            return Ok(if delay == Some(true) {
                Delegation::Pending
            } else {
                Delegation::None
            });
        };
        if delay == Some(true) {
            return Err(DomainError::invalid(
                "delegateTo and delayDelegation exclude each other: delay the delegation, or name the end user now",
            ));
        }
        Ok(Delegation::To(self.end_user(org_id, user_id).await?))
    }

    /// `user_id`, if it names an active end user of the organization: the only identity a
    /// key can be delegated to.
    async fn end_user(&self, org_id: &str, user_id: &str) -> Result<String> {
        let refused = || {
            DomainError::invalid(
                "delegateTo must be the id of an active end user of this organization",
            )
        };
        if !looks_like(IdKind::User, user_id) {
            return Err(refused());
        }
        match self.store.get_user(org_id, user_id).await? {
            Some(u)
                if u.kind == keyfold_types::users::UserKind::EndUser
                    && u.is_active
                    && !u.is_archived =>
            {
                Ok(u.id)
            }
            _ => Err(refused()),
        }
    }

    /// Reserves the wallet (and a new key), runs the key generation, activates both.
    async fn build_wallet(&self, n: NewWallet) -> Result<WalletResponse> {
        let now = self.clock.now();
        let (existing_key, new_key) = match n.source {
            KeySource::Existing(k) => (Some(k), None),
            KeySource::New(..) | KeySource::Pooled(..) => {
                let (scheme, curve, id, public_key, status) = match n.source {
                    KeySource::Pooled(scheme, curve, id, pk) => {
                        (scheme, curve, id, pk, LifecycleStatus::Active)
                    }
                    KeySource::New(scheme, curve) => (
                        scheme,
                        curve,
                        new_id(IdKind::Key),
                        Vec::new(),
                        LifecycleStatus::Creating,
                    ),
                    KeySource::Existing(_) => {
                        return Err(DomainError::internal("unreachable key source"));
                    }
                };
                let (custodial, delegation_pending, owner_id) = n.delegate.key_fields(&n.creator);
                (
                    None,
                    Some(Key {
                        id,
                        org_id: n.org.clone(),
                        scheme,
                        curve,
                        public_key,
                        name: n.name.clone(),
                        status,
                        custodial,
                        delegation_pending,
                        owner_id,
                        external_id: None,
                        created_at: now,
                        deleted_at: None,
                    }),
                )
            }
        };
        let org = n.org;
        let network = n.network;
        let external_id = n.external_id;
        let key_id = existing_key
            .as_ref()
            .or(new_key.as_ref())
            .map(|k| k.id.clone())
            .unwrap_or_default();
        // A pooled key is ready: the wallet is stored ready too, in one write.
        let pooled = new_key
            .as_ref()
            .filter(|k| k.status == LifecycleStatus::Active);
        let (address, status) = match pooled {
            Some(k) => match self.networks.address(&network, k) {
                Ok(a) => (a, LifecycleStatus::Active),
                Err(e) => {
                    self.return_to_pool(k).await;
                    return Err(e);
                }
            },
            None => (None, LifecycleStatus::Creating),
        };
        let wallet = Wallet {
            id: new_id(IdKind::Wallet),
            org_id: org.clone(),
            key_id,
            network: network.clone(),
            address,
            name: n.name,
            status,
            external_id: external_id.clone(),
            tags: n.tags,
            created_at: now,
            deleted_at: None,
        };
        let inserted = self.store.insert_wallet(&wallet, new_key.as_ref()).await;
        if inserted.is_err()
            && let Some(k) = pooled
        {
            self.return_to_pool(k).await;
        }
        match inserted {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) if external_id.is_some() => {
                let ext = external_id.as_deref().unwrap_or_default();
                let existing = self
                    .store
                    .find_wallet_by_external_id(&org, ext)
                    .await?
                    .ok_or_else(|| DomainError::conflict("externalId is already in use"))?;
                return self.wallet_replay(existing, &network, &n.delegate).await;
            }
            Err(e) => return Err(e.into()),
        }
        if let Some(k) = new_key.as_ref()
            && wallet.status == LifecycleStatus::Active
        {
            return Ok(wallet_response(&wallet, k));
        }
        let reserved_key = new_key.is_some();
        let key = match (existing_key, new_key) {
            (Some(k), _) => k,
            (None, Some(k)) => match self.cluster.generate_key(&k.id, k.scheme).await {
                Ok(public_key) => Key {
                    public_key,
                    status: LifecycleStatus::Active,
                    ..k
                },
                Err(e) => {
                    self.store
                        .finish_wallet(
                            &wallet.id,
                            None,
                            Some((&k.id, &[])),
                            LifecycleStatus::Failed,
                        )
                        .await?;
                    return Err(e);
                }
            },
            (None, None) => return Err(DomainError::internal("wallet without a key")),
        };
        let address = self.networks.address(&network, &key)?;
        let fresh_key = reserved_key.then_some((key.id.as_str(), key.public_key.as_slice()));
        self.store
            .finish_wallet(
                &wallet.id,
                address.as_deref(),
                fresh_key,
                LifecycleStatus::Active,
            )
            .await?;
        Ok(wallet_response(
            &Wallet {
                address,
                status: LifecycleStatus::Active,
                ..wallet
            },
            &key,
        ))
    }

    /// `POST /keys/{keyId}/delegate`: the end user a key created with `delayDelegation`
    /// now belongs to. Once only, and never for a key the organization could sign with.
    pub async fn delegate_key(
        &self,
        g: &Granted<op::KeysDelegate>,
        key_id: &str,
        user_id: &str,
    ) -> Result<KeyResponse> {
        let key = self.active_key(g.principal(), key_id).await?;
        Ok(key_response(&self.delegate(g, key, user_id).await?))
    }

    /// `POST /wallets/{walletId}/delegate`: [`Self::delegate_key`] for the wallet's key (and
    /// so for every wallet on it).
    pub async fn delegate_wallet(
        &self,
        g: &Granted<op::KeysDelegate>,
        wallet_id: &str,
        user_id: &str,
    ) -> Result<WalletResponse> {
        let (w, k) = self.active_wallet(g.principal(), wallet_id).await?;
        let key = self.delegate(g, k, user_id).await?;
        Ok(wallet_response(&w, &key))
    }

    async fn delegate(
        &self,
        g: &Granted<op::KeysDelegate>,
        key: Key,
        user_id: &str,
    ) -> Result<Key> {
        let user = self.end_user(g.org_id(), user_id).await?;
        if self.store.delegate_key(g.org_id(), &key.id, &user).await? {
            return Ok(Key {
                custodial: false,
                delegation_pending: false,
                owner_id: user,
                ..key
            });
        }
        // Lost a race, a retry, or a key that was never waiting for an end user.
        let now = self
            .store
            .get_key(g.org_id(), &key.id)
            .await?
            .ok_or_else(|| key_not_found(&key.id))?;
        if !now.custodial && !now.delegation_pending && now.owner_id == user {
            return Ok(now);
        }
        if !now.custodial && !now.delegation_pending {
            return Err(DomainError::conflict(
                "this key is already delegated to another end user; delegation is final",
            ));
        }
        Err(DomainError::invalid(
            "only a key created with delayDelegation can be delegated: the organization's own keys never change hands",
        ))
    }

    pub async fn list_wallets(
        &self,
        g: &Granted<op::WalletsRead>,
        q: ListWalletsQuery,
    ) -> Result<Page<WalletResponse>> {
        let page = PageRequest::parse(q.limit, q.pagination_token.as_deref())?;
        let wallets = self
            .store
            .list_wallets(g.org_id(), g.principal().owner_scope(), &page)
            .await?;
        let mut items = Vec::with_capacity(wallets.items.len());
        for w in &wallets.items {
            let key = self
                .store
                .get_key(g.org_id(), &w.key_id)
                .await?
                .ok_or_else(|| DomainError::internal(format!("wallet {} has no key", w.id)))?;
            items.push(wallet_response(w, &key));
        }
        Ok(Page {
            items,
            next: wallets.next,
        })
    }

    pub async fn get_wallet(
        &self,
        g: &Granted<op::WalletsRead>,
        wallet_id: &str,
    ) -> Result<WalletResponse> {
        let (w, k) = self.visible_wallet(g.principal(), wallet_id).await?;
        Ok(wallet_response(&w, &k))
    }

    pub async fn update_wallet(
        &self,
        g: &Granted<op::WalletsUpdate>,
        wallet_id: &str,
        body: UpdateWalletBody,
    ) -> Result<WalletResponse> {
        let name = optional_text("name", body.name.as_deref())?;
        let external_id = optional_text("externalId", body.external_id.as_deref())?;
        let (w, k) = self.active_wallet(g.principal(), wallet_id).await?;
        match self
            .store
            .update_wallet(g.org_id(), &w.id, name.as_deref(), external_id.as_deref())
            .await
        {
            Ok(_) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(DomainError::conflict(
                    "externalId is already used by another wallet",
                ));
            }
            Err(e) => return Err(e.into()),
        }
        Ok(wallet_response(
            &Wallet {
                name: name.or(w.name.clone()),
                external_id: external_id.or(w.external_id.clone()),
                ..w
            },
            &k,
        ))
    }

    pub async fn add_tags(
        &self,
        g: &Granted<op::WalletsTagsAdd>,
        wallet_id: &str,
        tags: &[String],
    ) -> Result<WalletResponse> {
        let add = validate_tags(tags)?;
        let (w, k) = self.active_wallet(g.principal(), wallet_id).await?;
        let mut all = w.tags.clone();
        for t in add {
            if !all.contains(&t) {
                all.push(t);
            }
        }
        if all.len() > MAX_TAGS {
            return Err(DomainError::invalid(format!(
                "a wallet has at most {MAX_TAGS} tags"
            )));
        }
        self.store.set_wallet_tags(g.org_id(), &w.id, &all).await?;
        Ok(wallet_response(&Wallet { tags: all, ..w }, &k))
    }

    pub async fn remove_tags(
        &self,
        g: &Granted<op::WalletsTagsDelete>,
        wallet_id: &str,
        tags: &[String],
    ) -> Result<WalletResponse> {
        let remove = validate_tags(tags)?;
        let (w, k) = self.active_wallet(g.principal(), wallet_id).await?;
        let kept: Vec<String> = w
            .tags
            .iter()
            .filter(|t| !remove.contains(t))
            .cloned()
            .collect();
        self.store.set_wallet_tags(g.org_id(), &w.id, &kept).await?;
        Ok(wallet_response(&Wallet { tags: kept, ..w }, &k))
    }

    pub async fn sign_with_wallet(
        &self,
        g: &Granted<op::WalletsGenerateSignature>,
        wallet_id: &str,
        body: GenerateSignatureBody,
        approval: ApprovingAction,
    ) -> Result<SignatureResponse> {
        let mut spent = false;
        let r = async {
            let (w, k) = self.active_wallet(g.principal(), wallet_id).await?;
            if let Some(n) = &body.network
                && self.networks.canonical(n)? != w.network
            {
                return Err(DomainError::invalid(format!(
                    "this wallet is on {}, not {n}",
                    w.network
                )));
            }
            self.sign(
                g.principal(),
                &k,
                Some(&w),
                Some(w.network.clone()),
                body,
                &approval,
                &mut spent,
            )
            .await
        }
        .await;
        self.spent_whatever_the_outcome(&approval, spent, r).await
    }

    pub async fn list_wallet_signatures(
        &self,
        g: &Granted<op::WalletsRead>,
        wallet_id: &str,
        q: ListWalletsQuery,
    ) -> Result<Page<SignatureResponse>> {
        let (w, _) = self.visible_wallet(g.principal(), wallet_id).await?;
        let page = PageRequest::parse(q.limit, q.pagination_token.as_deref())?;
        let p = self
            .store
            .list_signatures(g.org_id(), &w.key_id, Some(&w.id), &page)
            .await?;
        Ok(Page {
            items: p
                .items
                .iter()
                .map(signature_response)
                .collect::<Result<_>>()?,
            next: p.next,
        })
    }

    pub async fn get_wallet_signature(
        &self,
        g: &Granted<op::WalletsRead>,
        wallet_id: &str,
        signature_id: &str,
    ) -> Result<SignatureResponse> {
        self.visible_wallet(g.principal(), wallet_id).await?;
        let rec = self.signature(g.org_id(), signature_id).await?;
        if rec.wallet_id.as_deref() != Some(wallet_id) {
            return Err(signature_not_found(signature_id));
        }
        signature_response(&rec)
    }

    // ------------------------------------------------------------------ signing core

    /// A user action approves one request, whatever its outcome: when the request ended
    /// before `sign` spent the action with the signature row (refused, or answered from an
    /// earlier request with the same externalId), it is spent now — and a token spent
    /// already is refused before anything else is said.
    async fn spent_whatever_the_outcome(
        &self,
        approval: &ApprovingAction,
        spent: bool,
        r: Result<SignatureResponse>,
    ) -> Result<SignatureResponse> {
        if !spent {
            self.spend_now(approval, &mut false).await?;
        }
        r
    }

    /// Spends the approving action now (`*spent` then says so); 401 when it was spent
    /// already.
    async fn spend_now(&self, approval: &ApprovingAction, spent: &mut bool) -> Result<()> {
        let fresh = self
            .store
            .insert_user_action(&approval.action.spent_at(self.clock.now()))
            .await?;
        *spent = true;
        if fresh {
            Ok(())
        } else {
            Err(DomainError::action_already_used())
        }
    }

    /// Signs `body` with `key`. The user action is spent in the transaction that records the
    /// request (`*spent` says whether that happened), so a signature costs one commit before
    /// the signers run and one after.
    #[allow(clippy::too_many_arguments)]
    async fn sign(
        &self,
        requester: &Principal,
        key: &Key,
        wallet: Option<&Wallet>,
        network: Option<String>,
        body: GenerateSignatureBody,
        approval: &ApprovingAction,
        spent: &mut bool,
    ) -> Result<SignatureResponse> {
        let evidence = &approval.evidence;
        may_sign(requester, key)?;
        let external_id = optional_text("externalId", body.external_id.as_deref())?;
        if let Some(ext) = &external_id
            && let Some(existing) = self
                .store
                .find_signature_by_external_id(&key.org_id, &key.id, ext)
                .await?
        {
            // Spent before the (possibly long) wait: a replayed token is refused at once.
            self.spend_now(approval, spent).await?;
            return self.settled(existing).await;
        }
        // Bad input is refused before anything is written.
        let prepared = self.networks.prepare(network.as_deref(), key, &body.kind)?;
        let request_body = serde_json::to_string(&body)
            .map_err(|e| DomainError::internal(format!("encoding request body: {e}")))?;
        let mut rec = SignatureRecord {
            id: new_id(IdKind::Signature),
            org_id: key.org_id.clone(),
            key_id: key.id.clone(),
            wallet_id: wallet.map(|w| w.id.clone()),
            requester_id: requester.user_id.clone(),
            token_id: Some(requester.token_id.clone()),
            kind: body.kind.name().to_string(),
            request_body,
            network,
            status: SignatureStatus::Executing,
            reason: None,
            signature: None,
            signed_data: None,
            tx_hash: None,
            external_id: external_id.clone(),
            user_action_id: Some(evidence.user_action_id.clone()),
            created_at: self.clock.now(),
            signed_at: None,
        };
        match self
            .store
            .insert_signature_spending(&rec, &approval.action.spent_at(rec.created_at))
            .await
        {
            Ok(true) => *spent = true,
            Ok(false) => {
                *spent = true;
                return Err(DomainError::action_already_used());
            }
            Err(StoreError::Conflict(_)) if external_id.is_some() => {
                let ext = external_id.as_deref().unwrap_or_default();
                let existing = self
                    .store
                    .find_signature_by_external_id(&key.org_id, &key.id, ext)
                    .await?
                    .ok_or_else(|| DomainError::conflict("externalId is already in use"))?;
                self.spend_now(approval, spent).await?;
                return self.settled(existing).await;
            }
            Err(e) => return Err(e.into()),
        }
        let outcome = self.sign_all(key, &prepared, evidence, &rec.id).await;
        match outcome {
            Ok(done) => {
                rec.status = SignatureStatus::Signed;
                // One signature is stored as an object, several (a PSBT's inputs) as an array.
                let stored = match done.components.as_slice() {
                    [one] => serde_json::to_string(one),
                    many => serde_json::to_string(many),
                };
                rec.signature = Some(
                    stored
                        .map_err(|e| DomainError::internal(format!("encoding signature: {e}")))?,
                );
                rec.signed_data = done.signed_data;
                rec.tx_hash = done.tx_hash;
                rec.signed_at = Some(self.clock.now());
                self.store.finish_signature(&rec).await?;
                signature_response(&rec)
            }
            Err(e) => {
                rec.status = SignatureStatus::Failed;
                rec.reason = Some(match &e {
                    DomainError::Internal(_) => "internal error".to_string(),
                    other => other.to_string(),
                });
                self.store.finish_signature(&rec).await?;
                Err(e)
            }
        }
    }

    /// Every prepared material through the cluster, in order, then the network's finishing.
    /// One failure fails the request: a PSBT is signed whole or not at all.
    pub(crate) async fn sign_all(
        &self,
        key: &Key,
        prepared: &PreparedSignature,
        evidence: &ActionEvidence,
        request_id: &str,
    ) -> Result<CompletedSignature> {
        if prepared.materials.is_empty() {
            return Err(DomainError::internal("nothing to sign"));
        }
        let mut signatures = Vec::with_capacity(prepared.materials.len());
        for m in &prepared.materials {
            signatures.push(self.cluster.sign(key, m, evidence, request_id).await?);
        }
        self.networks.complete(prepared, key, &signatures)
    }

    // ------------------------------------------------------------------ helpers

    /// A retry (same `externalId`) of a request still being signed waits for its outcome, so
    /// the caller gets the signature (or the failure) rather than a bare `Executing` record.
    /// The wait is bounded: a request abandoned by a crashed API is swept to `Failed` later.
    async fn settled(&self, mut rec: SignatureRecord) -> Result<SignatureResponse> {
        let deadline = std::time::Instant::now() + SETTLE_WAIT;
        while rec.status == SignatureStatus::Executing && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            match self.store.get_signature(&rec.org_id, &rec.id).await? {
                Some(r) => rec = r,
                None => break,
            }
        }
        signature_response(&rec)
    }

    /// A key taken from the cluster's pool whose creation failed before it was stored goes
    /// back, so its generation is not wasted (and its shares not orphaned). Only for keys
    /// that are Active (pooled); best effort.
    async fn return_to_pool(&self, key: &Key) {
        if key.status != LifecycleStatus::Active {
            return;
        }
        let back = crate::ports::PooledKey {
            id: key.id.clone(),
            scheme: key.scheme,
            public_key: key.public_key.clone(),
            created_at: key.created_at,
        };
        if let Err(e) = self.store.add_pooled_key(&back).await {
            tracing::warn!(key = %key.id, error = %e, "a pooled key could not be returned to the pool");
        }
    }

    async fn ensure_ready(&self, scheme: KeyScheme) -> Result<()> {
        if self
            .cluster
            .wait_ready(scheme, self.settings.ready_wait)
            .await
        {
            return Ok(());
        }
        let r = self.cluster.readiness();
        let detail = match scheme {
            KeyScheme::Ecdsa => r.ecdsa.detail,
            KeyScheme::EdDsa => r.eddsa.detail,
            _ => r.schnorr.detail,
        };
        Err(DomainError::Unavailable(format!(
            "{} keys are not available yet ({detail}); retry later",
            scheme.as_str()
        )))
    }

    /// A key `who` may see: in its organization, made, and — for an end user — delegated to
    /// them. Anything else is "not found", so an end user cannot probe for other keys.
    async fn visible_key(&self, who: &Principal, key_id: &str) -> Result<Key> {
        if !looks_like(IdKind::Key, key_id) {
            return Err(key_not_found(key_id));
        }
        match self.store.get_key(&who.org_id, key_id).await? {
            Some(k)
                if matches!(
                    k.status,
                    LifecycleStatus::Active | LifecycleStatus::Archived
                ) && in_scope(who, &k) =>
            {
                Ok(k)
            }
            _ => Err(key_not_found(key_id)),
        }
    }

    async fn active_key(&self, who: &Principal, key_id: &str) -> Result<Key> {
        let k = self.visible_key(who, key_id).await?;
        if k.status != LifecycleStatus::Active {
            return Err(DomainError::invalid(format!("key {key_id} is archived")));
        }
        Ok(k)
    }

    /// A wallet `who` may see (see [`Self::visible_key`]) and its key.
    pub(crate) async fn visible_wallet(
        &self,
        who: &Principal,
        wallet_id: &str,
    ) -> Result<(Wallet, Key)> {
        if !looks_like(IdKind::Wallet, wallet_id) {
            return Err(wallet_not_found(wallet_id));
        }
        let org_id = who.org_id.as_str();
        let w = match self.store.get_wallet(org_id, wallet_id).await? {
            Some(w)
                if matches!(
                    w.status,
                    LifecycleStatus::Active | LifecycleStatus::Archived
                ) =>
            {
                w
            }
            _ => return Err(wallet_not_found(wallet_id)),
        };
        let k = self
            .store
            .get_key(org_id, &w.key_id)
            .await?
            .ok_or_else(|| DomainError::internal(format!("wallet {wallet_id} has no key")))?;
        if !in_scope(who, &k) {
            return Err(wallet_not_found(wallet_id));
        }
        Ok((w, k))
    }

    pub(crate) async fn active_wallet(
        &self,
        who: &Principal,
        wallet_id: &str,
    ) -> Result<(Wallet, Key)> {
        let (w, k) = self.visible_wallet(who, wallet_id).await?;
        if w.status != LifecycleStatus::Active || k.status != LifecycleStatus::Active {
            return Err(DomainError::invalid(format!(
                "wallet {wallet_id} is archived"
            )));
        }
        Ok((w, k))
    }

    async fn wallet_replay(
        &self,
        existing: Wallet,
        network: &str,
        delegate: &Delegation,
    ) -> Result<WalletResponse> {
        if existing.network != network {
            return Err(DomainError::conflict(
                "externalId is already used by a wallet on another network",
            ));
        }
        match existing.status {
            LifecycleStatus::Active | LifecycleStatus::Archived => {
                let key = self
                    .store
                    .get_key(&existing.org_id, &existing.key_id)
                    .await?
                    .ok_or_else(|| DomainError::internal("wallet without its key"))?;
                if !delegate.matches(&key) {
                    return Err(DomainError::conflict(
                        "externalId is already used by a wallet delegated differently",
                    ));
                }
                Ok(wallet_response(&existing, &key))
            }
            LifecycleStatus::Creating => Err(DomainError::conflict(
                "a wallet with this externalId is still being created; retry shortly",
            )),
            LifecycleStatus::Failed => Err(DomainError::conflict(
                "creating the wallet with this externalId failed; use a new externalId",
            )),
        }
    }

    async fn signature(&self, org_id: &str, signature_id: &str) -> Result<SignatureRecord> {
        if !looks_like(IdKind::Signature, signature_id) {
            return Err(signature_not_found(signature_id));
        }
        self.store
            .get_signature(org_id, signature_id)
            .await?
            .ok_or_else(|| signature_not_found(signature_id))
    }

    /// Requests left `Executing` for longer than any signing can take (the API that ran them
    /// crashed) become `Failed`; a retry with their externalId then reports the failure.
    pub async fn recover_interrupted(&self, older_than: Duration) -> Result<u64> {
        let secs = i64::try_from(older_than.as_secs()).unwrap_or(i64::MAX);
        let before = self.clock.now().plus_secs(-secs);
        Ok(self
            .store
            .fail_interrupted_signatures(before, "interrupted: the API stopped while signing")
            .await?)
    }
}

fn check_scheme_curve(scheme: KeyScheme, curve: KeyCurve) -> Result<()> {
    match (scheme, curve) {
        (KeyScheme::Ecdsa, KeyCurve::Secp256k1)
        | (KeyScheme::EdDsa, KeyCurve::Ed25519)
        | (KeyScheme::Schnorr, KeyCurve::Secp256k1) => Ok(()),
        (s, c) => Err(DomainError::invalid(format!(
            "{} keys on {} are not supported (ECDSA/secp256k1, EdDSA/ed25519, Schnorr/secp256k1 are)",
            s.as_str(),
            c.as_str()
        ))),
    }
}

fn key_replay(
    existing: Key,
    scheme: KeyScheme,
    curve: KeyCurve,
    delegate: &Delegation,
) -> Result<KeyResponse> {
    if (existing.scheme, existing.curve) != (scheme, curve) || !delegate.matches(&existing) {
        return Err(DomainError::conflict(
            "externalId is already used by a different key",
        ));
    }
    match existing.status {
        LifecycleStatus::Active | LifecycleStatus::Archived => Ok(key_response(&existing)),
        LifecycleStatus::Creating => Err(DomainError::conflict(
            "a key with this externalId is still being created; retry shortly",
        )),
        LifecycleStatus::Failed => Err(DomainError::conflict(
            "creating the key with this externalId failed; use a new externalId",
        )),
    }
}

pub(crate) fn optional_text(field: &str, v: Option<&str>) -> Result<Option<String>> {
    v.map(|s| validate::required_text(field, s, limits::EXTERNAL_ID_MAX))
        .transpose()
}

fn validate_tags(tags: &[String]) -> Result<Vec<String>> {
    if tags.len() > MAX_TAGS {
        return Err(DomainError::invalid(format!("at most {MAX_TAGS} tags")));
    }
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for t in tags {
        let t = validate::required_text("tag", t, MAX_TAG_LEN)?;
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

/// Whether `who` may see `k`: the organization's identities see every key, an end user only
/// the keys delegated to them.
fn in_scope(who: &Principal, k: &Key) -> bool {
    match who.owner_scope() {
        None => true,
        Some(owner) => !k.custodial && !k.delegation_pending && k.owner_id == owner,
    }
}

/// Whether `who` may sign with `k`. A delegated (non-custodial) key signs for its end user
/// alone: no permission of the organization's — not even the root's — reaches it.
pub(crate) fn may_sign(who: &Principal, k: &Key) -> Result<()> {
    if !in_scope(who, k) {
        return Err(key_not_found(&k.id));
    }
    if k.delegation_pending {
        return Err(DomainError::denied(
            "this key awaits delegation to an end user (delayDelegation): nobody can sign with it until then",
        ));
    }
    // The end user's own session: not a PAT of theirs (it could carry permissions assigned
    // by the organization), not a service account, not the organization's identities.
    if !k.custodial
        && (k.owner_id != who.user_id
            || who.owner_scope().is_none()
            || who.token_kind != crate::model::TokenKind::Token)
    {
        return Err(DomainError::denied(
            "this key is delegated to an end user: only that end user can sign with it",
        ));
    }
    Ok(())
}

pub(crate) fn iso(t: Option<Timestamp>) -> Option<String> {
    t.map(Timestamp::to_iso)
}

pub fn key_response(k: &Key) -> KeyResponse {
    KeyResponse {
        id: k.id.clone(),
        scheme: k.scheme,
        curve: k.curve,
        public_key: hex::encode(&k.public_key),
        master_key: None,
        name: k.name.clone(),
        status: if k.status == LifecycleStatus::Archived {
            KeyStatus::Archived
        } else {
            KeyStatus::Active
        },
        custodial: k.custodial,
        date_created: k.created_at.to_iso(),
        imported: None,
        exported: None,
        date_exported: None,
        date_deleted: iso(k.deleted_at),
    }
}

pub fn wallet_response(w: &Wallet, k: &Key) -> WalletResponse {
    WalletResponse {
        id: w.id.clone(),
        network: w.network.clone(),
        address: w.address.clone(),
        signing_key: WalletSigningKey {
            id: k.id.clone(),
            scheme: k.scheme,
            curve: k.curve,
            public_key: hex::encode(&k.public_key),
            delegated_to: (!k.custodial && !k.delegation_pending).then(|| k.owner_id.clone()),
        },
        status: if w.status == LifecycleStatus::Archived {
            WalletStatus::Archived
        } else {
            WalletStatus::Active
        },
        date_created: w.created_at.to_iso(),
        date_deleted: iso(w.deleted_at),
        name: w.name.clone(),
        custodial: k.custodial,
        external_id: w.external_id.clone(),
        tags: w.tags.clone(),
    }
}

pub fn signature_response(r: &SignatureRecord) -> Result<SignatureResponse> {
    let request_body = serde_json::from_str(&r.request_body)
        .map_err(|e| DomainError::internal(format!("stored request body: {e}")))?;
    let signatures: Option<Vec<SignatureComponents>> = r
        .signature
        .as_deref()
        .map(|s| {
            if s.trim_start().starts_with('[') {
                serde_json::from_str(s)
            } else {
                serde_json::from_str(s).map(|one| vec![one])
            }
        })
        .transpose()
        .map_err(|e| DomainError::internal(format!("stored signature: {e}")))?;
    let signature = signatures.as_ref().and_then(|v| v.first().cloned());
    Ok(SignatureResponse {
        id: r.id.clone(),
        key_id: r.key_id.clone(),
        wallet_id: r.wallet_id.clone(),
        requester: Requester {
            user_id: r.requester_id.clone(),
            token_id: r.token_id.clone(),
        },
        request_body,
        status: r.status,
        reason: r.reason.clone(),
        signatures,
        signature,
        signed_data: r.signed_data.clone(),
        network: r.network.clone(),
        tx_hash: r.tx_hash.clone(),
        date_requested: r.created_at.to_iso(),
        date_signed: iso(r.signed_at),
        external_id: r.external_id.clone(),
    })
}

fn key_not_found(id: &str) -> DomainError {
    DomainError::not_found(format!("key {id} not found"))
}
fn wallet_not_found(id: &str) -> DomainError {
    DomainError::not_found(format!("wallet {id} not found"))
}
fn signature_not_found(id: &str) -> DomainError {
    DomainError::not_found(format!("signature {id} not found"))
}
