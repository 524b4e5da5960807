//! The coordinator: drives threshold sessions across the signer nodes and is the domain's
//! [`SignerCluster`].
//!
//! It never holds a share. For each protocol run it picks the parties (every member for key
//! generation; `t` healthy signers for signing), starts the session on each, and relays the
//! nodes' sealed messages between them until all report the outcome. A node that fails,
//! times out or is blamed by the protocol is excluded and the signature is retried with
//! another quorum; every signature is verified against the key before it is returned.
//!
//! ECDSA needs two things first: aux info for the group (built once from each node's own safe
//! primes — about half a minute on a fresh 2-core cluster, tracked by [`Cluster::readiness`]), and,
//! for speed, a pool of presignatures per key made or used (for a presignature-signed kind) since
//! this process started, refilled in the background. A presignature's index row is deleted when it
//! is handed out and each node deletes its part before answering, so none is ever used twice; a
//! node burns all of its own when it starts, so not even after a restored backup.
//!
//! FROST keys that have signed get a pool too: nonce pairs made ahead of time by a quorum
//! (RFC 9591's commit round; `keyfold_mpc::frost::preprocessed`), their commitments indexed in
//! the same table. A pooled signature is one request per signer (no relayed rounds, no sealed
//! node-to-node messages), aggregated and verified here; each node deletes its nonces in the
//! transaction that records the request, before computing its share. An empty pool or a failed
//! attempt falls back to the two-round protocol.

pub mod client;
pub mod file;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::future::join_all;
use keyfold_domain::DomainError;
use keyfold_domain::ids::{IdKind, new_id};
use keyfold_domain::model::{Key, LifecycleStatus};
use keyfold_domain::ports::{
    ActionEvidence, ClusterReadiness, ClusterSignature, Hasher, PresignatureRecord,
    SchemeReadiness, SignMaterial, SignerCluster, Store,
};
use keyfold_domain::time::{Clock, Timestamp};
use keyfold_signer::protocol::{
    FrostShareRequest, Group, NodeError, NoncesRequest, PartialSignRequest, Protocol, SessionDone,
    SignInput, StartSession, StepRequest, WireMessage,
};
use keyfold_types::keys::KeyScheme;
use rand::RngCore;
use tokio::sync::{Notify, watch};

pub use client::{HttpNode, LocalNode, NodeClient};

/// How long key creation must pause before the key pool is refilled.
const KEY_POOL_QUIET: Duration = Duration::from_millis(300);

/// How long signatures must stop taking presignatures before a pool above a quarter of its
/// size (and above one) is refilled.
const PRESIGN_QUIET: Duration = Duration::from_millis(300);

/// What a presignature refill pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refill {
    /// Every wanted pool is full (or could not be topped up now).
    Idle,
    /// At least one presignature was added; more may be missing.
    Made,
    /// A pool is short but signatures are taking from it: try again after [`PRESIGN_QUIET`].
    Deferred,
}

/// The longest an aux-info run may take.
const AUX_INFO_TIMEOUT: Duration = Duration::from_secs(600);

/// Coordinator settings.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// Longest a whole protocol run may take.
    pub session_timeout: Duration,
    /// Presignatures to keep ready per ECDSA key (0 disables the pool).
    pub presignatures_per_key: i64,
    /// FROST nonce pairs to keep ready per Ed25519 / Schnorr key that has signed (0 disables).
    pub nonces_per_key: i64,
    /// Keys to keep generated ahead of time, per scheme (0 disables).
    pub pooled_keys: i64,
    /// How often the background tasks look at the cluster.
    pub poll_interval: Duration,
}

/// How many keys' parsed public key packages the coordinator keeps.
const PUBLIC_PACKAGE_CACHE: usize = 4096;

#[derive(Debug, Clone)]
enum ParsedPublicPackage {
    Ed25519(Arc<keyfold_mpc::frost::preprocessed::PublicPackage<keyfold_mpc::frost::Ed25519>>),
    Taproot(Arc<keyfold_mpc::frost::preprocessed::PublicPackage<keyfold_mpc::frost::Taproot>>),
}

#[derive(Debug)]
struct CachedPublicPackage {
    /// The record's bytes it was parsed from (base64url).
    b64: String,
    parsed: ParsedPublicPackage,
}

/// Why a run failed, and whom to blame.
#[derive(Debug)]
struct RunError {
    /// Parties to leave out of the next attempt.
    exclude: Vec<u16>,
    error: NodeError,
}

#[derive(Debug, Default)]
struct State {
    ecdsa_detail: String,
    /// Parties that answered the last health check.
    healthy: HashSet<u16>,
    /// When each party started, as its last health check said.
    started: HashMap<u16, i64>,
}

/// The coordinator.
#[derive(Debug)]
pub struct Cluster {
    group: Group,
    nodes: Vec<Arc<dyn NodeClient>>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: ClusterSettings,
    state: Mutex<State>,
    ecdsa_ready: watch::Sender<bool>,
    refill: Notify,
    /// When a signature last took a presignature (for [`PRESIGN_QUIET`]).
    last_presignature_take: Mutex<Option<std::time::Instant>>,
    /// ECDSA keys whose presignature pool is kept full: made, taken from the key pool or
    /// asked for a `Message`-type signature (the only kind a presignature may sign) since this
    /// process started. Keys that never sign that way cost the signers nothing, and after a
    /// restart (which burns every pool) only keys in use are refilled.
    presign_wanted: Mutex<HashSet<String>>,
    /// FROST keys whose nonce pool should be looked at (they just signed).
    nonce_wanted: Mutex<HashMap<String, bool>>,
    nonce_refill: Notify,
    /// Pooled FROST nonce records already taken from the store, per key, handed out from
    /// memory: one store commit per lease instead of one per signature. A crash loses them
    /// unused, which is safe (the nodes hold the nonces and spend each at most once), but
    /// their sealed nonces stay on the nodes (no expiry yet).
    nonce_leases: Mutex<HashMap<String, Vec<PresignatureRecord>>>,
    /// Parsed public key packages of FROST keys that sign from the pool. Parsing checks
    /// every point (for Ed25519 a scalar multiplication each), which was a good part of a
    /// pooled signature's coordinator work. Bounded: emptied when it outgrows its limit.
    public_packages: Mutex<HashMap<String, CachedPublicPackage>>,
    key_pool_refill: Notify,
    /// Whether the pool is on or this process ever filled it (so a disabled pool costs no
    /// query).
    key_pool_used: std::sync::atomic::AtomicBool,
}

fn unavailable(msg: impl Into<String>) -> DomainError {
    DomainError::Unavailable(msg.into())
}

fn session_id() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

impl Cluster {
    pub fn new(
        group: Group,
        nodes: Vec<Arc<dyn NodeClient>>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        settings: ClusterSettings,
    ) -> Self {
        let (ecdsa_ready, _) = watch::channel(false);
        let all: HashSet<u16> = (0..group.n()).collect();
        let settings_pool_on = settings.pooled_keys > 0;
        Self {
            group,
            nodes,
            store,
            clock,
            settings,
            state: Mutex::new(State {
                ecdsa_detail: "waiting for the signers".into(),
                healthy: all,
                started: HashMap::new(),
            }),
            ecdsa_ready,
            refill: Notify::new(),
            last_presignature_take: Mutex::new(None),
            presign_wanted: Mutex::new(HashSet::new()),
            nonce_wanted: Mutex::new(HashMap::new()),
            nonce_refill: Notify::new(),
            nonce_leases: Mutex::new(HashMap::new()),
            public_packages: Mutex::new(HashMap::new()),
            key_pool_refill: Notify::new(),
            key_pool_used: std::sync::atomic::AtomicBool::new(settings_pool_on),
        }
    }

    pub fn group(&self) -> &Group {
        &self.group
    }

    pub fn nodes(&self) -> &[Arc<dyn NodeClient>] {
        &self.nodes
    }

    fn set_detail(&self, detail: impl Into<String>) {
        if let Ok(mut s) = self.state.lock() {
            s.ecdsa_detail = detail.into();
        }
    }

    fn healthy(&self) -> HashSet<u16> {
        self.state
            .lock()
            .map(|s| s.healthy.clone())
            .unwrap_or_default()
    }

    /// One pass of ECDSA preparation: checks every node; when all have safe primes and some
    /// lack aux info, runs aux-info generation. Returns whether ECDSA is ready.
    pub async fn prepare_ecdsa(&self) -> bool {
        let healths = join_all(self.nodes.iter().map(|n| n.health())).await;
        let mut healthy = HashSet::new();
        let mut with_aux = 0usize;
        let mut with_primes = 0usize;
        for (i, h) in healths.iter().enumerate() {
            if let Ok(h) = h {
                healthy.insert(i as u16);
                if h.aux_groups.contains(&self.group.group_id) {
                    with_aux += 1;
                } else if h.prime_sets > 0 {
                    with_primes += 1;
                }
            }
        }
        let mut started = vec![];
        if let Ok(mut s) = self.state.lock() {
            s.healthy = healthy.clone();
            for (i, h) in healths.iter().enumerate() {
                if let Ok(h) = h
                    && s.started.insert(i as u16, h.started_at) != Some(h.started_at)
                {
                    started.push((i as u16, Timestamp(h.started_at)));
                }
            }
        }
        for (party, at) in started {
            self.forget_burnt(party, at).await;
        }
        let n = self.nodes.len();
        if with_aux == n {
            self.set_detail("ready");
            let _ = self.ecdsa_ready.send_replace(true);
            return true;
        }
        let _ = self.ecdsa_ready.send_replace(false);
        if healthy.len() < n {
            self.set_detail(format!(
                "{} of {n} signers reachable; aux info needs all of them",
                healthy.len()
            ));
            return false;
        }
        if with_primes + with_aux < n {
            self.set_detail(format!(
                "signers generating safe primes ({}/{n} ready)",
                with_primes + with_aux
            ));
            return false;
        }
        self.set_detail("generating aux info");
        let parties: Vec<u16> = (0..self.group.n()).collect();
        let req = self.base_request(Protocol::EcdsaAuxInfo, None);
        match self.run(&parties, &req).await {
            Ok(_) => {
                self.set_detail("ready");
                let _ = self.ecdsa_ready.send_replace(true);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e.error, "aux info generation failed; will retry");
                self.set_detail(format!(
                    "aux info generation failed ({}); retrying",
                    e.error
                ));
                false
            }
        }
    }

    /// Forgets the keys generated ahead of time when this process starts: in a database
    /// restored from a backup, a pooled key may already have been handed to somebody after
    /// the backup was taken. (The index of presignatures and nonces is pruned per signer by
    /// the health check, which sees every signer's start for the first time in this process.)
    /// The server calls it before it serves.
    pub async fn forget_pooled_keys(&self) -> Result<(), DomainError> {
        let keys = self.store.forget_pooled_keys().await?;
        if keys > 0 {
            tracing::info!(keys, "forgot the keys generated before this start");
        }
        Ok(())
    }

    /// Forgets the index records of presignatures and nonces that `party` burnt when it
    /// started at `at` (see `SignerNode::open`): offered again, each would cost a failed
    /// exchange and a fallback.
    async fn forget_burnt(&self, party: u16, at: Timestamp) {
        let party_str = party.to_string();
        let burnt = |r: &PresignatureRecord| {
            r.created_at < at && r.signers.split(',').any(|p| p == party_str)
        };
        if let Ok(mut leases) = self.nonce_leases.lock() {
            for records in leases.values_mut() {
                records.retain(|r| !burnt(r));
            }
        }
        match self.store.forget_presignatures_before(party, at).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(
                    party,
                    forgotten = n,
                    "a signer started: forgot the presignatures and nonces it burnt"
                );
                self.refill.notify_one();
            }
            Err(e) => {
                tracing::warn!(error = %e, "forgetting a started signer's presignatures; will retry");
                // The next health check sees this start as new again, and retries.
                if let Ok(mut s) = self.state.lock()
                    && s.started.get(&party) == Some(&at.0)
                {
                    s.started.remove(&party);
                }
            }
        }
    }

    /// Background work until `shutdown`: ECDSA preparation, health tracking, presignature
    /// refills.
    pub async fn run_background(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        if self.settings.nonces_per_key > 0 {
            tokio::spawn(self.clone().run_nonce_refill(shutdown.clone()));
        }
        if self.settings.pooled_keys > 0 {
            tokio::spawn(self.clone().run_key_pool(shutdown.clone()));
        }
        loop {
            let ready = self.prepare_ecdsa().await;
            let mut wait = self.settings.poll_interval;
            if ready && self.settings.presignatures_per_key > 0 {
                wait = match self.refill_presignatures().await {
                    // More may be missing: the next pass at once (a presignature takes about
                    // a second; sleeping between them cut the refill rate by a third).
                    Refill::Made => Duration::ZERO,
                    Refill::Deferred => PRESIGN_QUIET,
                    Refill::Idle => self.settings.poll_interval,
                };
            }
            tokio::select! {
                // Shutdown first: after a pass that made a presignature the sleep is zero, and
                // an unbiased select would start another ~1 s pass half the time.
                biased;
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(wait) => {}
                _ = self.refill.notified() => {}
            }
        }
    }

    /// Marks an ECDSA key's presignature pool as wanted; the first time, wakes the refill
    /// (after a take, the refill's next pass sees the gap).
    fn want_presignatures(&self, key_id: &str) {
        let new = match self.presign_wanted.lock() {
            // `contains` first: a key already wanted costs no allocation per signature.
            Ok(mut w) => !w.contains(key_id) && w.insert(key_id.to_string()),
            Err(_) => false,
        };
        if new {
            self.refill.notify_one();
        }
    }

    /// Tops up the presignature pool of every active ECDSA key that is wanted (one
    /// presignature per key per pass, so no key starves another).
    async fn refill_presignatures(&self) -> Refill {
        let keys: Vec<String> = match self.presign_wanted.lock() {
            Ok(w) if !w.is_empty() => w.iter().cloned().collect(),
            _ => return Refill::Idle,
        };
        // WHY: a presignature is about two seconds of CPU on two signers. Made while
        // signatures are taking from the pool, it slows the very requests the pool is there
        // to speed up. So a burst spends from the pool and the refill follows once it pauses;
        // only a pool down to a quarter (at least one) is refilled at once, so a steady
        // stream of signatures does not run it dry. The take time is one for all keys: the
        // signers' CPU is shared, so one busy key holds back the others' top-ups too.
        let taking = self
            .last_presignature_take
            .lock()
            .ok()
            .and_then(|t| *t)
            .is_some_and(|t| t.elapsed() < PRESIGN_QUIET);
        let wanted = self.settings.presignatures_per_key;
        let low = (wanted / 4).max(1);
        let mut outcome = Refill::Idle;
        for key_id in keys {
            match self.store.ecdsa_key_status(&key_id).await {
                Ok(Some(LifecycleStatus::Active)) => {}
                // Not stored yet, or still being generated: the next pass.
                Ok(None | Some(LifecycleStatus::Creating)) => continue,
                // Deleted or failed: never presigned for again.
                Ok(Some(LifecycleStatus::Archived | LifecycleStatus::Failed)) => {
                    if let Ok(mut w) = self.presign_wanted.lock() {
                        w.remove(&key_id);
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "checking a key for presignature refill");
                    return outcome;
                }
            }
            let have = self
                .store
                .count_presignatures(&key_id)
                .await
                .unwrap_or(i64::MAX);
            if have >= wanted {
                continue;
            }
            if taking && have > low {
                if outcome == Refill::Idle {
                    outcome = Refill::Deferred;
                }
                continue;
            }
            match self.presign(&key_id).await {
                // What an operator (or a benchmark waiting for a warm pool) watches the pools
                // by: `RUST_LOG=keyfold::pool=debug`.
                Ok(()) => {
                    outcome = Refill::Made;
                    tracing::debug!(
                        target: "keyfold::pool",
                        key = %key_id,
                        pooled = have + 1,
                        wanted,
                        "presignature added"
                    )
                }
                Err(e) => {
                    tracing::debug!(key = %key_id, error = %e.error, "presignature refill failed")
                }
            }
        }
        outcome
    }

    /// Keeps `pooled_keys` keys per scheme generated ahead of time, until `shutdown`.
    async fn run_key_pool(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = self.fill_key_pool(self.settings.pooled_keys) => {}
                _ = shutdown.changed() => return,
            }
            tokio::select! {
                _ = self.key_pool_refill.notified() => {}
                _ = tokio::time::sleep(self.settings.poll_interval * 4) => {}
                _ = shutdown.changed() => return,
            }
            // Refill once takes pause: key generation is a burst of CPU on every signer and
            // would otherwise slow the very requests that are taking keys.
            loop {
                tokio::select! {
                    _ = self.key_pool_refill.notified() => continue,
                    _ = tokio::time::sleep(KEY_POOL_QUIET) => break,
                    _ = shutdown.changed() => return,
                }
            }
        }
    }

    /// Generates keys (distributed key generation on every signer, as for any key) until
    /// each scheme has `target` waiting in the pool; ECDSA only once its setup is done.
    /// Returns how many it made.
    pub async fn fill_key_pool(&self, target: i64) -> usize {
        let mut made = 0;
        // Key generation needs every signer; wait for the health check to see them all.
        if self.healthy().len() < self.nodes.len() {
            return 0;
        }
        for scheme in [KeyScheme::EdDsa, KeyScheme::Schnorr, KeyScheme::Ecdsa] {
            if scheme == KeyScheme::Ecdsa && !*self.ecdsa_ready.borrow() {
                continue;
            }
            let Ok(mut have) = self.store.count_pooled_keys(scheme).await else {
                continue;
            };
            while have < target {
                let id = new_id(IdKind::Key);
                let public_key = match self.dkg(&id, scheme).await {
                    Ok(pk) => pk,
                    Err(e) => {
                        tracing::warn!(scheme = scheme.as_str(), error = %e, "key pool: generation failed");
                        break;
                    }
                };
                let rec = keyfold_domain::ports::PooledKey {
                    id,
                    scheme,
                    public_key,
                    created_at: self.clock.now(),
                };
                if let Err(e) = self.store.add_pooled_key(&rec).await {
                    tracing::warn!(error = %e, "key pool: storing a generated key failed");
                    break;
                }
                self.key_pool_used
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                have += 1;
                made += 1;
            }
        }
        made
    }

    /// Keeps the FROST nonce pools of recently used keys topped up, until `shutdown`.
    async fn run_nonce_refill(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let keys: Vec<(String, bool)> = self
                .nonce_wanted
                .lock()
                .map(|mut w| w.drain().collect())
                .unwrap_or_default();
            for (key_id, empty) in keys {
                if let Err(e) = self.refill_nonces(&key_id, empty).await {
                    tracing::debug!(key = %key_id, error = %e, "nonce refill failed");
                }
            }
            tokio::select! {
                _ = self.nonce_refill.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Marks a FROST key as in use: its nonce pool is looked at soon; `empty`: the last
    /// signature found nothing usable, so a batch is made even if the count looks full.
    fn want_nonces(&self, key_id: &str, empty: bool) {
        if let Ok(mut w) = self.nonce_wanted.lock() {
            let e = w.entry(key_id.to_string()).or_insert(false);
            *e |= empty;
        }
        self.nonce_refill.notify_one();
    }

    /// Tops up one FROST key's nonce pool when it is below half (or `empty`: nothing in it
    /// was usable by the healthy signers): one batch, one request per signer of a healthy
    /// quorum, one transaction here.
    async fn refill_nonces(&self, key_id: &str, empty: bool) -> Result<usize, NodeError> {
        let target = self.settings.nonces_per_key;
        let have = self
            .store
            .count_presignatures(key_id)
            .await
            .map_err(|e| NodeError::failure(e.to_string()))?
            + self
                .nonce_leases
                .lock()
                .map(|l| l.get(key_id).map_or(0, |v| v.len() as i64))
                .unwrap_or(0);
        let have = if empty { 0 } else { have };
        if have * 2 >= target {
            return Ok(0);
        }
        let want = usize::try_from(target - have)
            .unwrap_or(0)
            .min(keyfold_signer::protocol::MAX_NONCES_PER_REQUEST);
        let parties = self
            .quorum(&HashSet::new())
            .ok_or_else(|| NodeError::NotReady {
                message: "not enough healthy signers".into(),
            })?;
        let ids: Vec<String> = (0..want).map(|_| new_id(IdKind::Presignature)).collect();
        let req = NoncesRequest {
            key_id: key_id.to_string(),
            ids: ids.clone(),
        };
        let answers = tokio::time::timeout(
            self.pooled_timeout(),
            join_all(parties.iter().map(|p| {
                let n = self.nodes.get(usize::from(*p)).cloned();
                let req = &req;
                async move {
                    match n {
                        Some(n) => n.make_nonces(req).await,
                        None => Err(NodeError::bad("no such signer")),
                    }
                }
            })),
        )
        .await
        .map_err(|_| NodeError::failure("making nonces timed out"))?;
        let mut per_party = Vec::with_capacity(parties.len());
        let mut public = None;
        for (p, a) in parties.iter().zip(answers) {
            let a = a?;
            if a.commitments.len() != want {
                return Err(NodeError::failure(format!(
                    "signer {p} made {} nonce pairs, {want} were asked for",
                    a.commitments.len()
                )));
            }
            public.get_or_insert(a.public.clone());
            per_party.push((*p, a.commitments));
        }
        let public = public.unwrap_or_default();
        let now = self.clock.now();
        let signers = signer_set(&parties);
        let mut records = Vec::with_capacity(want);
        for (i, id) in ids.into_iter().enumerate() {
            let commitments = per_party.iter().map(|(p, c)| (*p, c[i].clone())).collect();
            let body = serde_json::to_vec(&NonceRecord {
                public: public.clone(),
                commitments,
            })
            .map_err(|e| NodeError::failure(e.to_string()))?;
            records.push(PresignatureRecord {
                id,
                key_id: key_id.to_string(),
                signers: signers.clone(),
                public: body,
                created_at: now,
            });
        }
        self.store
            .add_presignatures(&records)
            .await
            .map_err(|e| NodeError::failure(e.to_string()))?;
        Ok(want)
    }

    /// How long one pooled exchange (a signature's shares, a refill) may take: one request
    /// per signer, so far less than a whole protocol run.
    fn pooled_timeout(&self) -> Duration {
        self.settings.session_timeout.min(Duration::from_secs(10))
    }

    /// FROST (Ed25519 or BIP-340): from the nonce pool when it can, else the two relayed
    /// rounds; `verify` checks the 64-byte signature against the key either way.
    #[allow(clippy::too_many_arguments)]
    async fn sign_frost(
        &self,
        key: &Key,
        protocol: Protocol,
        input: SignInput,
        message: &[u8],
        tweak: Option<keyfold_mpc::frost::TaprootTweak>,
        evidence: &ActionEvidence,
        verify: impl Fn(&[u8; 64]) -> Result<ClusterSignature, String> + Send + Sync,
    ) -> Result<ClusterSignature, DomainError> {
        if let Some(sig) = self
            .sign_with_nonces(key, &input, message, tweak, evidence)
            .await
        {
            match verify(&sig) {
                Ok(sig) => return Ok(sig),
                Err(why) => {
                    tracing::error!(key = %key.id, %why, "pooled FROST signature does not verify; signing interactively")
                }
            }
        }
        self.sign_interactive(key, protocol, input, evidence, |done| match done {
            SessionDone::SchnorrSignature { signature } => {
                let sig: [u8; 64] = hex::decode(signature)
                    .map_err(|e| e.to_string())?
                    .try_into()
                    .map_err(|_| "not 64 bytes")?;
                verify(&sig)
            }
            _ => Err("not a Schnorr signature".into()),
        })
        .await
    }

    /// One pooled nonce record of `key_id` usable by healthy signers: from this process's
    /// lease, or a new lease of up to an eighth of the pool from the store. The flag says
    /// whether the store was asked: only then is the refill check woken (it counts the store
    /// and the lease), so the pool is looked at once per lease of `nonces_per_key / 8`
    /// records instead of once per signature — a pool that drops below half while a lease is
    /// served is topped up at most that many signatures later.
    async fn lease_nonces(&self, key_id: &str) -> (Option<PresignatureRecord>, bool) {
        let (healthy, started) = self
            .state
            .lock()
            .map(|s| (s.healthy.clone(), s.started.clone()))
            .unwrap_or_default();
        // Every holder is up, and made its part since it last started (a part made before
        // was burnt then: `forget_burnt` drops such records, but a lease taken from the store
        // while it runs could bring one back into memory).
        let usable = |r: &PresignatureRecord| {
            r.signers.split(',').all(|p| {
                p.parse::<u16>().is_ok_and(|p| {
                    healthy.contains(&p) && started.get(&p).is_none_or(|&at| r.created_at.0 >= at)
                })
            })
        };
        if let Ok(mut leases) = self.nonce_leases.lock()
            && let Some(held) = leases.get_mut(key_id)
            && let Some(i) = held.iter().position(usable)
        {
            return (Some(held.remove(i)), false);
        }
        let sets = all_signer_sets(self.group.n(), self.group.threshold, &healthy);
        let lease = (self.settings.nonces_per_key / 8).max(1);
        let mut got = match self.store.take_presignatures(key_id, &sets, lease).await {
            Ok(got) => got,
            Err(_) => return (None, true),
        };
        // Taken from the store, so a stale record is dropped here for good.
        got.retain(usable);
        if got.is_empty() {
            return (None, true);
        }
        let first = got.remove(0);
        if !got.is_empty()
            && let Ok(mut leases) = self.nonce_leases.lock()
        {
            leases.entry(key_id.to_string()).or_default().extend(got);
        }
        (Some(first), true)
    }

    /// FROST from the nonce pool: one request per signer, aggregated here. `None` when the
    /// pool is empty or the attempt failed (the caller then runs the two-round protocol).
    async fn sign_with_nonces(
        &self,
        key: &Key,
        input: &SignInput,
        message: &[u8],
        tweak: Option<keyfold_mpc::frost::TaprootTweak>,
        evidence: &ActionEvidence,
    ) -> Option<[u8; 64]> {
        if self.settings.nonces_per_key <= 0 {
            return None;
        }
        let t0 = std::time::Instant::now();
        let (rec, from_store) = self.lease_nonces(&key.id).await;
        // After the take, so the refill sees the pool without it. Nothing usable (empty, or
        // all for a signer that is down): refill whatever the count says.
        if from_store {
            self.want_nonces(&key.id, rec.is_none());
        }
        let rec = rec?;
        let t_take = t0.elapsed();
        let record: NonceRecord = serde_json::from_slice(&rec.public).ok()?;
        let req = FrostShareRequest {
            key_id: key.id.clone(),
            nonce_id: rec.id.clone(),
            commitments: record.commitments.clone(),
            input: input.clone(),
            evidence: Some(evidence.clone()),
        };
        let answers = match tokio::time::timeout(
            self.pooled_timeout(),
            join_all(record.commitments.keys().map(|p| {
                let n = self.nodes.get(usize::from(*p)).cloned();
                let req = &req;
                let p = *p;
                async move {
                    match n {
                        Some(n) => (p, n.frost_share(req).await),
                        None => (p, Err(NodeError::bad("no such signer"))),
                    }
                }
            })),
        )
        .await
        {
            Ok(a) => a,
            Err(_) => {
                tracing::warn!(key = %key.id, "preprocessed FROST shares timed out; signing interactively");
                return None;
            }
        };
        let t_nodes = t0.elapsed();
        let mut shares = std::collections::BTreeMap::new();
        for (p, a) in answers {
            match a.and_then(|a| {
                URL_SAFE_NO_PAD
                    .decode(a.share)
                    .map_err(|_| NodeError::failure("unreadable share"))
            }) {
                Ok(s) => {
                    shares.insert(p, s);
                }
                Err(e) => {
                    tracing::warn!(key = %key.id, party = p, error = %e, "preprocessed FROST share failed; signing interactively");
                    return None;
                }
            }
        }
        let mut commitments = std::collections::BTreeMap::new();
        for (p, c) in &record.commitments {
            commitments.insert(*p, URL_SAFE_NO_PAD.decode(c).ok()?);
        }
        use keyfold_mpc::frost::preprocessed::aggregate_with;
        let sig = match self.public_package(key, &record.public) {
            Ok(ParsedPublicPackage::Ed25519(p)) => {
                aggregate_with(&p, &commitments, &shares, message, None).map_err(|e| e.to_string())
            }
            Ok(ParsedPublicPackage::Taproot(p)) => {
                aggregate_with(&p, &commitments, &shares, message, tweak.as_ref())
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e),
        };
        tracing::debug!(key = %key.id, take = ?t_take, nodes = ?t_nodes, total = ?t0.elapsed(), "pooled FROST signature");
        match sig {
            Ok(s) => Some(s.to_bytes()),
            Err(e) => {
                tracing::warn!(key = %key.id, error = %e, "aggregating preprocessed FROST shares failed; signing interactively");
                None
            }
        }
    }

    /// `key`'s parsed public key package, from the cache when its bytes are the same.
    fn public_package(&self, key: &Key, b64: &str) -> Result<ParsedPublicPackage, String> {
        use keyfold_mpc::frost::preprocessed::PublicPackage;
        if let Ok(cache) = self.public_packages.lock()
            && let Some(c) = cache.get(&key.id)
            && c.b64 == b64
        {
            return Ok(c.parsed.clone());
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(|_| "public key package is not base64url".to_string())?;
        let parsed = match key.scheme {
            KeyScheme::EdDsa => ParsedPublicPackage::Ed25519(Arc::new(
                PublicPackage::from_bytes(&bytes).map_err(|e| e.to_string())?,
            )),
            _ => ParsedPublicPackage::Taproot(Arc::new(
                PublicPackage::from_bytes(&bytes).map_err(|e| e.to_string())?,
            )),
        };
        if let Ok(mut cache) = self.public_packages.lock() {
            if cache.len() >= PUBLIC_PACKAGE_CACHE {
                cache.clear();
            }
            cache.insert(
                key.id.clone(),
                CachedPublicPackage {
                    b64: b64.to_string(),
                    parsed: parsed.clone(),
                },
            );
        }
        Ok(parsed)
    }

    /// Makes one presignature for `key_id` on a healthy quorum and indexes it.
    async fn presign(&self, key_id: &str) -> Result<(), RunError> {
        let parties = self.quorum(&HashSet::new()).ok_or_else(|| RunError {
            exclude: vec![],
            error: NodeError::NotReady {
                message: "not enough healthy signers".into(),
            },
        })?;
        let presignature_id = new_id(IdKind::Presignature);
        let mut req = self.base_request(Protocol::EcdsaPresign, Some(key_id));
        req.signers = parties.clone();
        req.presignature_id = Some(presignature_id.clone());
        let done = self.run(&parties, &req).await?;
        let public = match done.first() {
            Some(SessionDone::PresignatureStored { public }) => public.clone(),
            _ => {
                return Err(RunError {
                    exclude: vec![],
                    error: NodeError::failure("presigning produced no presignature"),
                });
            }
        };
        let public = URL_SAFE_NO_PAD.decode(public).map_err(|_| RunError {
            exclude: vec![],
            error: NodeError::failure("unreadable presignature"),
        })?;
        self.store
            .add_presignature(&PresignatureRecord {
                id: presignature_id,
                key_id: key_id.into(),
                signers: signer_set(&parties),
                public,
                created_at: self.clock.now(),
            })
            .await
            .map_err(|e| RunError {
                exclude: vec![],
                error: NodeError::failure(e.to_string()),
            })
    }

    fn base_request(&self, protocol: Protocol, key_id: Option<&str>) -> StartSession {
        StartSession {
            session_id: session_id(),
            protocol,
            group: self.group.clone(),
            key_id: key_id.map(str::to_string),
            signers: vec![],
            input: None,
            presignature_id: None,
            evidence: None,
        }
    }

    /// `t` parties, healthy ones first, none of `exclude`.
    fn quorum(&self, exclude: &HashSet<u16>) -> Option<Vec<u16>> {
        let healthy = self.healthy();
        let t = usize::from(self.group.threshold);
        let mut candidates: Vec<u16> = (0..self.group.n())
            .filter(|i| !exclude.contains(i))
            .collect();
        candidates.sort_by_key(|i| (!healthy.contains(i), *i));
        if candidates.len() < t {
            return None;
        }
        let mut q: Vec<u16> = candidates.into_iter().take(t).collect();
        q.sort_unstable();
        Some(q)
    }

    /// One protocol run: start on every party, relay until all are done.
    async fn run(
        &self,
        parties: &[u16],
        base: &StartSession,
    ) -> Result<Vec<SessionDone>, RunError> {
        let fut = self.relay(parties, base);
        // Aux info is tens of seconds of CPU, once per cluster; signing is not.
        let limit = if base.protocol == Protocol::EcdsaAuxInfo {
            self.settings.session_timeout.max(AUX_INFO_TIMEOUT)
        } else {
            self.settings.session_timeout
        };
        match tokio::time::timeout(limit, fut).await {
            Ok(r) => {
                if r.is_err() {
                    self.abort(parties, &base.session_id).await;
                }
                r
            }
            Err(_) => {
                self.abort(parties, &base.session_id).await;
                Err(RunError {
                    exclude: vec![],
                    error: NodeError::failure("the signing session timed out"),
                })
            }
        }
    }

    async fn abort(&self, parties: &[u16], sid: &str) {
        join_all(
            parties
                .iter()
                .filter_map(|p| self.nodes.get(usize::from(*p)))
                .map(|n| n.abort(sid)),
        )
        .await;
    }

    async fn relay(
        &self,
        parties: &[u16],
        base: &StartSession,
    ) -> Result<Vec<SessionDone>, RunError> {
        let blame = |p: u16, e: NodeError| {
            let exclude = match &e {
                NodeError::Misbehaving { parties, .. } => parties.clone(),
                NodeError::BadRequest { .. } | NodeError::NotReady { .. } => vec![],
                _ => vec![p],
            };
            RunError { exclude, error: e }
        };
        let node = |p: u16| self.nodes.get(usize::from(p)).cloned();
        let starts = join_all(parties.iter().map(|p| {
            let n = node(*p);
            async move {
                match n {
                    Some(n) => (*p, n.start(base).await),
                    None => (*p, Err(NodeError::bad("no such signer"))),
                }
            }
        }))
        .await;
        let mut pending: Vec<WireMessage> = Vec::new();
        let mut done: HashMap<u16, SessionDone> = HashMap::new();
        for (p, r) in starts {
            let r = r.map_err(|e| blame(p, e))?;
            pending.extend(r.outgoing);
            if let Some(d) = r.done {
                done.insert(p, d);
            }
        }
        while done.len() < parties.len() {
            let mut inbox: HashMap<u16, Vec<WireMessage>> = HashMap::new();
            for m in pending.drain(..) {
                match m.to {
                    Some(q) => inbox.entry(q).or_default().push(m),
                    None => {
                        for q in parties.iter().filter(|q| **q != m.from) {
                            inbox.entry(*q).or_default().push(m.clone());
                        }
                    }
                }
            }
            inbox.retain(|q, _| !done.contains_key(q) && parties.contains(q));
            if inbox.is_empty() {
                return Err(RunError {
                    exclude: vec![],
                    error: NodeError::failure("the session stalled: no messages left to deliver"),
                });
            }
            let sid = base.session_id.clone();
            let steps = join_all(inbox.into_iter().map(|(q, messages)| {
                let n = node(q);
                let sid = sid.clone();
                async move {
                    match n {
                        Some(n) => (q, n.step(&sid, &StepRequest { messages }).await),
                        None => (q, Err(NodeError::bad("no such signer"))),
                    }
                }
            }))
            .await;
            for (q, r) in steps {
                let r = r.map_err(|e| blame(q, e))?;
                pending.extend(r.outgoing);
                if let Some(d) = r.done {
                    done.insert(q, d);
                }
            }
        }
        let mut out: Vec<(u16, SessionDone)> = done.into_iter().collect();
        out.sort_by_key(|(p, _)| *p);
        // Every party must report the same outcome (the same key, the same signature).
        if out.windows(2).any(|w| w[0].1 != w[1].1)
            && !matches!(base.protocol, Protocol::EcdsaPresign)
        {
            return Err(RunError {
                exclude: vec![],
                error: NodeError::failure("signers disagree on the outcome"),
            });
        }
        Ok(out.into_iter().map(|(_, d)| d).collect())
    }

    /// Interactive signing with retries over quorums.
    async fn sign_interactive(
        &self,
        key: &Key,
        protocol: Protocol,
        input: SignInput,
        evidence: &ActionEvidence,
        verify: impl Fn(&SessionDone) -> Result<ClusterSignature, String>,
    ) -> Result<ClusterSignature, DomainError> {
        let mut exclude: HashSet<u16> = HashSet::new();
        let mut last = String::from("no quorum of healthy signers");
        for _attempt in 0..self.nodes.len() {
            let Some(parties) = self.quorum(&exclude) else {
                break;
            };
            let mut req = self.base_request(protocol, Some(&key.id));
            req.signers = parties.clone();
            req.input = Some(input.clone());
            req.evidence = Some(evidence.clone());
            match self.run(&parties, &req).await {
                Ok(done) => {
                    let first = done
                        .first()
                        .ok_or_else(|| DomainError::internal("empty outcome"))?;
                    return verify(first).map_err(|why| {
                        tracing::error!(key = %key.id, %why, "the cluster returned a signature that does not verify");
                        DomainError::internal(format!("signature verification failed: {why}"))
                    });
                }
                Err(e) => {
                    tracing::warn!(key = %key.id, parties = ?parties, error = %e.error, "signing attempt failed");
                    if let NodeError::BadRequest { message } = &e.error
                        && e.exclude.is_empty()
                    {
                        last = message.clone();
                    } else {
                        last = e.error.to_string();
                    }
                    if e.exclude.is_empty() {
                        // Nobody to blame: a transient failure; try the next quorum order once.
                        exclude.insert(*parties.last().unwrap_or(&0));
                    }
                    exclude.extend(e.exclude);
                }
            }
        }
        Err(unavailable(format!(
            "signing failed on every quorum: {last}"
        )))
    }

    /// ECDSA from the presignature pool: no interactive rounds, just one call per signer.
    async fn sign_with_presignature(
        &self,
        key: &Key,
        hasher: Hasher,
        preimage: &[u8],
        evidence: &ActionEvidence,
    ) -> Option<ClusterSignature> {
        let healthy = self.healthy();
        let sets = all_signer_sets(self.group.n(), self.group.threshold, &healthy);
        let t0 = std::time::Instant::now();
        let rec = self.store.take_presignature(&key.id, &sets).await.ok()??;
        let t_take = t0.elapsed();
        // No wake-up for the refill: its next pass (at most `poll_interval` away) sees the gap.
        // A wake-up per signature ran a health check of every signer beside each signature.
        if let Ok(mut t) = self.last_presignature_take.lock() {
            *t = Some(std::time::Instant::now());
        }
        let parties: Vec<u16> = rec
            .signers
            .split(',')
            .filter_map(|p| p.parse().ok())
            .collect();
        let public = keyfold_mpc::ecdsa::EcdsaPresignaturePublic::from_bytes(&rec.public).ok()?;
        let req = PartialSignRequest {
            key_id: key.id.clone(),
            presignature_id: rec.id.clone(),
            hasher: wire_hasher(hasher),
            preimage: hex::encode(preimage),
            evidence: Some(evidence.clone()),
        };
        let answers = join_all(parties.iter().map(|p| {
            let n = self.nodes.get(usize::from(*p)).cloned();
            let req = req.clone();
            async move {
                match n {
                    Some(n) => n.partial_sign(&req).await,
                    None => Err(NodeError::bad("no such signer")),
                }
            }
        }))
        .await;
        let t_nodes = t0.elapsed();
        let mut partials = Vec::with_capacity(answers.len());
        for (p, a) in parties.iter().zip(answers) {
            let a = match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(key = %key.id, party = p, error = %e, "a signer refused its part of a presignature; signing interactively");
                    return None;
                }
            };
            let bytes = URL_SAFE_NO_PAD.decode(a.partial).ok()?;
            partials.push(keyfold_mpc::ecdsa::EcdsaPartialSignature::from_bytes(&bytes).ok()?);
        }
        let msg = match hasher {
            Hasher::Keccak256 => keyfold_mpc::ecdsa::EcdsaMessage::keccak256(preimage),
            Hasher::Sha256 => keyfold_mpc::ecdsa::EcdsaMessage::sha256(preimage),
            Hasher::DoubleSha256 => keyfold_mpc::ecdsa::EcdsaMessage::double_sha256(preimage),
        };
        let sig = match keyfold_mpc::ecdsa::combine(&public, &partials, &msg) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(key = %key.id, error = %e, "combining partial signatures failed");
                return None;
            }
        };
        let verified = verify_ecdsa(
            &key.public_key,
            &msg.digest(),
            &sig.r,
            &sig.s,
            sig.recovery_id,
        )
        .ok();
        tracing::debug!(key = %key.id, take = ?t_take, nodes = ?t_nodes, total = ?t0.elapsed(), "ECDSA signature from a presignature");
        verified
    }

    async fn dkg(&self, key_id: &str, scheme: KeyScheme) -> Result<Vec<u8>, DomainError> {
        let protocol = match scheme {
            KeyScheme::Ecdsa => Protocol::EcdsaKeygen,
            KeyScheme::EdDsa => Protocol::Ed25519Dkg,
            KeyScheme::Schnorr => Protocol::TaprootDkg,
            KeyScheme::Dh => return Err(DomainError::invalid("DH keys are not supported")),
        };
        let parties: Vec<u16> = (0..self.group.n()).collect();
        let req = self.base_request(protocol, Some(key_id));
        let done = self.run(&parties, &req).await.map_err(|e| {
            unavailable(format!(
                "key generation needs every signer and failed: {}",
                e.error
            ))
        })?;
        match done.first() {
            Some(SessionDone::KeyStored { public_key }) => hex::decode(public_key)
                .map_err(|_| DomainError::internal("unreadable public key from the signers")),
            _ => Err(DomainError::internal("key generation produced no key")),
        }
    }
}

/// The public part of one pooled FROST signing: each signer's commitments (base64url, by party)
/// and the key's public key package (base64url) to aggregate with.
#[derive(serde::Serialize, serde::Deserialize)]
struct NonceRecord {
    public: String,
    commitments: std::collections::BTreeMap<u16, String>,
}

fn wire_hasher(h: Hasher) -> keyfold_signer::protocol::Hasher {
    match h {
        Hasher::Keccak256 => keyfold_signer::protocol::Hasher::Keccak256,
        Hasher::Sha256 => keyfold_signer::protocol::Hasher::Sha256,
        Hasher::DoubleSha256 => keyfold_signer::protocol::Hasher::DoubleSha256,
    }
}

fn signer_set(parties: &[u16]) -> String {
    parties
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Every `t`-subset of `0..n` made only of healthy parties, as `signer_set` strings.
fn all_signer_sets(n: u16, t: u16, healthy: &HashSet<u16>) -> Vec<String> {
    fn rec(start: u16, n: u16, left: u16, cur: &mut Vec<u16>, out: &mut Vec<Vec<u16>>) {
        if left == 0 {
            out.push(cur.clone());
            return;
        }
        for i in start..n {
            cur.push(i);
            rec(i + 1, n, left - 1, cur, out);
            cur.pop();
        }
    }
    let mut out = Vec::new();
    rec(0, n, t, &mut Vec::new(), &mut out);
    out.into_iter()
        .filter(|s| s.iter().all(|p| healthy.contains(p)))
        .map(|s| signer_set(&s))
        .collect()
}

fn digest(hasher: Hasher, preimage: &[u8]) -> [u8; 32] {
    use sha2::{Digest as _, Sha256};
    match hasher {
        Hasher::Keccak256 => {
            use sha3::Digest as _;
            sha3::Keccak256::digest(preimage).into()
        }
        Hasher::Sha256 => Sha256::digest(preimage).into(),
        Hasher::DoubleSha256 => Sha256::digest(Sha256::digest(preimage)).into(),
    }
}

fn arr32(s: &str) -> Result<[u8; 32], String> {
    hex::decode(s)
        .map_err(|e| e.to_string())?
        .try_into()
        .map_err(|_| "not 32 bytes".to_string())
}

/// ECDSA: the signature verifies, is low-s, and recovers to the key with `recid`.
fn verify_ecdsa(
    public: &[u8],
    digest: &[u8; 32],
    r: &[u8; 32],
    s: &[u8; 32],
    recid: u8,
) -> Result<ClusterSignature, String> {
    use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
    let key = VerifyingKey::from_sec1_bytes(public).map_err(|e| e.to_string())?;
    let sig = Signature::from_scalars(*r, *s).map_err(|e| e.to_string())?;
    if sig.normalize_s().is_some() {
        return Err("high-s signature".into());
    }
    let rid = RecoveryId::from_byte(recid).ok_or("bad recovery id")?;
    let recovered =
        VerifyingKey::recover_from_prehash(digest, &sig, rid).map_err(|e| e.to_string())?;
    if recovered != key {
        return Err("signature does not recover to the key".into());
    }
    Ok(ClusterSignature::Ecdsa {
        r: *r,
        s: *s,
        recid,
    })
}

fn verify_ed25519(
    public: &[u8],
    message: &[u8],
    sig: &[u8; 64],
) -> Result<ClusterSignature, String> {
    let pk: [u8; 32] = public.try_into().map_err(|_| "bad ed25519 key")?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&pk).map_err(|e| e.to_string())?;
    key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(sig))
        .map_err(|e| e.to_string())?;
    Ok(ClusterSignature::Schnorr(*sig))
}

fn verify_bip340(
    xonly: &[u8; 32],
    message: &[u8],
    sig: &[u8; 64],
) -> Result<ClusterSignature, String> {
    let key = k256::schnorr::VerifyingKey::from_bytes(xonly).map_err(|e| e.to_string())?;
    let s = k256::schnorr::Signature::try_from(&sig[..]).map_err(|e| e.to_string())?;
    key.verify_raw(message, &s).map_err(|e| e.to_string())?;
    Ok(ClusterSignature::Schnorr(*sig))
}

#[async_trait]
impl SignerCluster for Cluster {
    async fn take_pooled_key(&self, scheme: KeyScheme) -> Option<(String, Vec<u8>)> {
        if !self
            .key_pool_used
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return None;
        }
        let taken = self.store.take_pooled_key(scheme).await;
        self.key_pool_refill.notify_one();
        let k = match taken {
            Ok(Some(k)) => k,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(error = %e, "key pool: taking a key failed");
                return None;
            }
        };
        if scheme == KeyScheme::Ecdsa {
            self.want_presignatures(&k.id);
        }
        Some((k.id, k.public_key))
    }

    async fn generate_key(&self, key_id: &str, scheme: KeyScheme) -> Result<Vec<u8>, DomainError> {
        let pk = self.dkg(key_id, scheme).await?;
        if scheme == KeyScheme::Ecdsa {
            self.want_presignatures(key_id);
        }
        Ok(pk)
    }

    async fn sign(
        &self,
        key: &Key,
        material: &SignMaterial,
        evidence: &ActionEvidence,
        _request_id: &str,
    ) -> Result<ClusterSignature, DomainError> {
        match (key.scheme, material) {
            (KeyScheme::Ecdsa, SignMaterial::EcdsaPreimage { hasher, preimage }) => {
                self.want_presignatures(&key.id);
                if let Some(sig) = self
                    .sign_with_presignature(key, *hasher, preimage, evidence)
                    .await
                {
                    return Ok(sig);
                }
                let d = digest(*hasher, preimage);
                let public = key.public_key.clone();
                self.sign_interactive(
                    key,
                    Protocol::EcdsaSign,
                    SignInput::Preimage {
                        hasher: wire_hasher(*hasher),
                        preimage: hex::encode(preimage),
                    },
                    evidence,
                    move |done| match done {
                        SessionDone::EcdsaSignature { r, s, recid } => {
                            verify_ecdsa(&public, &d, &arr32(r)?, &arr32(s)?, *recid)
                        }
                        _ => Err("not an ECDSA signature".into()),
                    },
                )
                .await
            }
            (KeyScheme::Ecdsa, SignMaterial::EcdsaDigest(d)) => {
                let d = *d;
                let public = key.public_key.clone();
                self.sign_interactive(
                    key,
                    Protocol::EcdsaSign,
                    SignInput::Digest {
                        digest: hex::encode(d),
                    },
                    evidence,
                    move |done| match done {
                        SessionDone::EcdsaSignature { r, s, recid } => {
                            verify_ecdsa(&public, &d, &arr32(r)?, &arr32(s)?, *recid)
                        }
                        _ => Err("not an ECDSA signature".into()),
                    },
                )
                .await
            }
            (KeyScheme::EdDsa, SignMaterial::Ed25519 { message }) => {
                let public = key.public_key.clone();
                let input = SignInput::Message {
                    message: hex::encode(message),
                    taproot: false,
                    merkle_root: None,
                };
                self.sign_frost(
                    key,
                    Protocol::Ed25519Sign,
                    input,
                    message,
                    None,
                    evidence,
                    |sig| verify_ed25519(&public, message, sig),
                )
                .await
            }
            (KeyScheme::Schnorr, SignMaterial::Schnorr { message, taproot }) => {
                let output_key = schnorr_output_key(&key.public_key, *taproot)
                    .map_err(|e| DomainError::internal(format!("taproot output key: {e}")))?;
                let input = SignInput::Message {
                    message: hex::encode(message),
                    taproot: taproot.is_some(),
                    merkle_root: taproot.flatten().map(hex::encode),
                };
                let tweak =
                    taproot.map(|merkle_root| keyfold_mpc::frost::TaprootTweak { merkle_root });
                self.sign_frost(
                    key,
                    Protocol::TaprootSign,
                    input,
                    message,
                    tweak,
                    evidence,
                    |sig| verify_bip340(&output_key, message, sig),
                )
                .await
            }
            _ => Err(DomainError::invalid(format!(
                "this request cannot be signed with a {} key",
                key.scheme.as_str()
            ))),
        }
    }

    fn readiness(&self) -> ClusterReadiness {
        let healthy = self.healthy().len();
        let t = usize::from(self.group.threshold);
        let frost = if healthy >= t {
            SchemeReadiness {
                ready: true,
                detail: "ready".into(),
            }
        } else {
            SchemeReadiness {
                ready: false,
                detail: format!("{healthy} signers reachable, {t} needed"),
            }
        };
        let ecdsa_ready = *self.ecdsa_ready.borrow();
        let detail = self
            .state
            .lock()
            .map(|s| s.ecdsa_detail.clone())
            .unwrap_or_default();
        ClusterReadiness {
            ecdsa: SchemeReadiness {
                ready: ecdsa_ready,
                detail,
            },
            eddsa: frost.clone(),
            schnorr: frost,
        }
    }

    async fn wait_ready(&self, scheme: KeyScheme, timeout: Duration) -> bool {
        if scheme != KeyScheme::Ecdsa {
            return self.healthy().len() >= usize::from(self.group.threshold);
        }
        let mut rx = self.ecdsa_ready.subscribe();
        if *rx.borrow() {
            return true;
        }
        tokio::time::timeout(timeout, rx.wait_for(|r| *r))
            .await
            .map(|r| r.is_ok())
            .unwrap_or(false)
    }
}

/// The x-only key a BIP-340 signature verifies under: the group key itself, or its BIP-341
/// tweak (`taproot = Some(merkle root)`).
fn schnorr_output_key(
    group_key: &[u8],
    taproot: Option<Option<[u8; 32]>>,
) -> Result<[u8; 32], String> {
    let compressed: [u8; 33] = group_key
        .try_into()
        .map_err(|_| "group key must be 33 bytes")?;
    match taproot {
        None => {
            let mut x = [0u8; 32];
            x.copy_from_slice(&compressed[1..]);
            Ok(x)
        }
        Some(root) => {
            keyfold_mpc::frost::taproot_output_key(&compressed, root).map_err(|e| e.to_string())
        }
    }
}
