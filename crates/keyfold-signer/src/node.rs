//! The signer node: one share of every key, its own identity, its own database.
//!
//! A node joins sessions the coordinator starts and answers each batch of relayed messages with its
//! next messages, until the protocol is done. What it keeps — key shares, aux info, presignatures,
//! FROST nonce pairs, primes, its identity — is sealed with its key-encryption key (KEK) before it
//! reaches the database, bound to its purpose, its record's id (a key, group, presignature or nonce
//! id; the identity has only the signer's), the signer id and a version: a database thief learns
//! nothing, and a flipped byte or a row moved between records is caught when the node opens it (and
//! reported as tampering, so the coordinator signs with other nodes).
//!
//! Protocol messages leave sealed by this node's identity (encrypted to the recipient and
//! signed, or signed for broadcasts) and arrive verified against the sender's public key from
//! the group the coordinator sent — which the node checks against the membership it was
//! configured with, so a coordinator cannot impersonate a member.
//!
//! Signing requests carry the user action that asked for them; the node records it with the
//! session (and, from the delegated-signing issue on, verifies it itself).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyfold_domain::ids::{IdKind, new_id};
use keyfold_domain::ports::{NodeRequestRecord, NodeStore};
use keyfold_domain::time::{Clock, Timestamp};
use keyfold_keystore::{Aad, Envelope, Kek, MessageContext, NodeIdentity, Purpose, SignedMessage};
use keyfold_mpc::ecdsa::{
    self, EcdsaAuxInfo, EcdsaKeyShare, EcdsaMessage, EcdsaPrehash, EcdsaPresignature,
};
use keyfold_mpc::frost::{self, Ed25519, Taproot, TaprootTweak};
use keyfold_mpc::threaded::ThreadedSession;
use keyfold_mpc::{KeyShare, Outgoing, Recipient, Session, SessionId, SessionOutput, Step};
use tokio::sync::Mutex as AsyncMutex;
use zeroize::Zeroizing;

use crate::protocol::{
    FrostShareRequest, FrostShareResponse, Group, Hasher, MAX_NONCES_PER_REQUEST, Member,
    NodeError, NodeHealth, NodeInfo, NoncesRequest, NoncesResponse, PartialSignRequest,
    PartialSignResponse, Protocol, SessionDone, SignInput, StartSession, StepRequest, StepResponse,
    WireMessage,
};

type Result<T, E = NodeError> = std::result::Result<T, E>;

/// A node's settings.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub signer_id: String,
    /// The cluster this node belongs to, as its operator configured it (ids and public keys,
    /// in party order): the only members it talks to, whatever a coordinator claims. Empty
    /// until set (see [`SignerNode::set_members`]); sessions are refused until then.
    pub members: Vec<Member>,
    /// Sets of safe primes to keep ready (each aux-info generation consumes one).
    pub prime_sets: i64,
    /// How long an unfinished session lives.
    pub session_ttl: Duration,
}

const SHARE_VERSION: u32 = 1;
const IDENTITY_META: &str = "identity";

struct Active {
    protocol: Protocol,
    group: Group,
    me: u16,
    key_id: Option<String>,
    presignature_id: Option<String>,
    /// Aux info: the primes it was built from, deleted once it is stored.
    primes_id: Option<String>,
    session: Option<ThreadedSession<SessionOutput>>,
    expires: Instant,
}

/// A signer node.
pub struct SignerNode {
    cfg: NodeConfig,
    members: std::sync::RwLock<Vec<Member>>,
    kek: Kek,
    identity: NodeIdentity,
    store: Arc<dyn NodeStore>,
    clock: Arc<dyn Clock>,
    sessions: Mutex<HashMap<String, Arc<AsyncMutex<Active>>>>,
    /// Opened key shares (opening and decoding a CGGMP share costs more than a signature's
    /// bookkeeping): each is decrypted once per process.
    shares: Mutex<HashMap<String, KeyShare>>,
    generating: AtomicBool,
    /// See [`NodeHealth::started_at`].
    started_at: Timestamp,
}

impl std::fmt::Debug for SignerNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignerNode")
            .field("signer_id", &self.cfg.signer_id)
            .finish_non_exhaustive()
    }
}

fn mpc_err(e: keyfold_mpc::Error) -> NodeError {
    match e {
        keyfold_mpc::Error::InvalidInput(m) => NodeError::BadRequest { message: m },
        keyfold_mpc::Error::Misbehaving { parties, reason } => NodeError::Misbehaving {
            parties,
            message: reason,
        },
        other => NodeError::failure(other.to_string()),
    }
}

/// What a node tells about itself: its id, its public keys, the software's version.
fn node_info(signer_id: &str, identity: &NodeIdentity) -> NodeInfo {
    NodeInfo {
        signer_id: signer_id.to_string(),
        public: identity.public(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

fn store_err(e: keyfold_domain::StoreError) -> NodeError {
    NodeError::failure(format!("node database: {e}"))
}

fn keystore_err(what: &str, e: keyfold_keystore::Error) -> NodeError {
    match e {
        keyfold_keystore::Error::Tampered | keyfold_keystore::Error::WrongKek { .. } => {
            NodeError::Tampered {
                message: format!("{what} failed its integrity check ({e})"),
            }
        }
        other => NodeError::failure(format!("{what}: {other}")),
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(s: &str) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| NodeError::bad("message body is not base64url"))
}

fn unhex(field: &str, s: &str) -> Result<Vec<u8>> {
    hex::decode(s.trim_start_matches("0x"))
        .map_err(|_| NodeError::bad(format!("{field} is not hex")))
}

impl SignerNode {
    /// The node identity, created on first use; nothing else is touched (for printing the
    /// public keys to pin, possibly beside a running node: unlike [`SignerNode::open`], this
    /// burns nothing).
    pub async fn identity_info(
        signer_id: &str,
        kek: &Kek,
        store: &dyn NodeStore,
    ) -> Result<NodeInfo> {
        let identity = Self::load_identity(signer_id, kek, store).await?;
        Ok(node_info(signer_id, &identity))
    }

    async fn load_identity(
        signer_id: &str,
        kek: &Kek,
        store: &dyn NodeStore,
    ) -> Result<NodeIdentity> {
        let fresh = NodeIdentity::generate()
            .to_sealed(kek, signer_id)
            .map_err(|e| keystore_err("node identity", e))?;
        let sealed = store
            .init_meta(IDENTITY_META, &fresh)
            .await
            .map_err(store_err)?;
        NodeIdentity::from_sealed(kek, signer_id, &sealed)
            .map_err(|e| keystore_err("node identity", e))
    }

    /// Starts the node: opens (or creates) its identity and burns every presignature and
    /// nonce pair made before this start. Call it once per process start, before serving.
    pub async fn open(
        cfg: NodeConfig,
        kek: Kek,
        store: Arc<dyn NodeStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let identity = Self::load_identity(&cfg.signer_id, &kek, store.as_ref()).await?;
        // WHY: a presignature or a nonce pair must never sign twice, and the delete that spends
        // one lives in this database. A database restored from a backup (or a machine rolled
        // back to a snapshot) brings spent ones back, and the coordinator's own restored index
        // would honestly hand them out again: one ECDSA presignature on two messages gives
        // the private key away to anyone who sees both signatures. Every restore is followed
        // by a start, so burning them all here makes that impossible, at the price of
        // refilling the pools after each restart.
        let started_at = clock.now();
        let burnt = store.burn_pooled().await.map_err(store_err)?;
        if burnt > 0 {
            tracing::info!(
                signer = %cfg.signer_id,
                burnt,
                "presignatures and nonces made before this start were deleted unused"
            );
        }
        Ok(Self {
            members: std::sync::RwLock::new(cfg.members.clone()),
            cfg,
            kek,
            identity,
            store,
            clock,
            sessions: Mutex::new(HashMap::new()),
            shares: Mutex::new(HashMap::new()),
            generating: AtomicBool::new(false),
            started_at,
        })
    }

    /// Sets the cluster membership (ids and public keys, in party order).
    pub fn set_members(&self, members: Vec<Member>) {
        if let Ok(mut m) = self.members.write() {
            *m = members;
        }
    }

    fn members(&self) -> Vec<Member> {
        self.members.read().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn signer_id(&self) -> &str {
        &self.cfg.signer_id
    }

    pub fn info(&self) -> NodeInfo {
        node_info(&self.cfg.signer_id, &self.identity)
    }

    pub async fn health(&self) -> Result<NodeHealth> {
        let prime_sets = self.store.count_primes().await.map_err(store_err)?;
        let mut aux_groups = Vec::new();
        for g in self.known_groups() {
            if self.store.get_aux(&g).await.map_err(store_err)?.is_some() {
                aux_groups.push(g);
            }
        }
        let sessions = self.sessions.lock().map(|s| s.len()).unwrap_or(0);
        Ok(NodeHealth {
            signer_id: self.cfg.signer_id.clone(),
            prime_sets,
            generating_primes: self.generating.load(Ordering::Acquire),
            aux_groups,
            sessions,
            started_at: self.started_at.0,
        })
    }

    /// The group ids this node answers health questions about: the one it was configured in.
    fn known_groups(&self) -> Vec<String> {
        let members = self.members();
        if members.is_empty() {
            return vec![];
        }
        vec![group_id_of(
            &members
                .iter()
                .map(|m| m.signer_id.clone())
                .collect::<Vec<_>>(),
        )]
    }

    /// Generates safe primes (one set at a time, on a blocking thread) until the pool holds
    /// the configured number of sets. Primes are made here, by this node, and never leave it.
    /// Primes only serve to build aux info for this node's group: once it has that, making
    /// more would burn CPU for nothing.
    pub async fn fill_prime_pool(self: &Arc<Self>) -> Result<()> {
        for g in self.known_groups() {
            if self.store.get_aux(&g).await.map_err(store_err)?.is_some() {
                return Ok(());
            }
        }
        if self.generating.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let result = async {
            while self.store.count_primes().await.map_err(store_err)? < self.cfg.prime_sets {
                let primes = tokio::task::spawn_blocking(|| {
                    // On a thread of its own: the priority must not stick to a pooled thread.
                    std::thread::spawn(|| {
                        background_priority(Background::Setup);
                        ecdsa::generate_primes()
                    })
                    .join()
                    .unwrap_or_else(|_| {
                        Err(keyfold_mpc::Error::Internal(
                            "prime generation panicked".into(),
                        ))
                    })
                })
                .await
                .map_err(|e| NodeError::failure(format!("prime generation: {e}")))?
                .map_err(mpc_err)?;
                let id = new_id(IdKind::Code);
                let bytes = primes.to_bytes().map_err(mpc_err)?;
                let sealed = keyfold_keystore::seal(
                    &self.kek,
                    &Aad::new(Purpose::Primes, &id, &self.cfg.signer_id, 1),
                    &bytes,
                )
                .map_err(|e| keystore_err("primes", e))?;
                self.store
                    .add_primes(&id, &sealed, self.clock.now())
                    .await
                    .map_err(store_err)?;
                tracing::info!(signer = %self.cfg.signer_id, "generated a set of safe primes");
            }
            Ok(())
        }
        .await;
        self.generating.store(false, Ordering::Release);
        result
    }

    /// Adds externally supplied primes (tests load public fixture primes this way).
    pub async fn add_primes(&self, primes: &ecdsa::PaillierPrimes) -> Result<()> {
        let id = new_id(IdKind::Code);
        let bytes = primes.to_bytes().map_err(mpc_err)?;
        let sealed = keyfold_keystore::seal(
            &self.kek,
            &Aad::new(Purpose::Primes, &id, &self.cfg.signer_id, 1),
            &bytes,
        )
        .map_err(|e| keystore_err("primes", e))?;
        self.store
            .add_primes(&id, &sealed, self.clock.now())
            .await
            .map_err(store_err)
    }

    // ------------------------------------------------------------------ sessions

    /// Joins a session and returns this node's first messages.
    pub async fn start(&self, req: StartSession) -> Result<StepResponse> {
        self.expire_sessions();
        self.check_group(&req.group)?;
        let me = req
            .group
            .index_of(&self.cfg.signer_id)
            .ok_or_else(|| NodeError::bad("this node is not a member of the group"))?;
        let sid_bytes: [u8; 32] = unhex("sessionId", &req.session_id)?
            .try_into()
            .map_err(|_| NodeError::bad("sessionId must be 32 bytes"))?;
        let sid = SessionId::new(sid_bytes);
        if self.session(&req.session_id).is_some() {
            return Err(NodeError::bad("a session with this id already runs"));
        }
        let n = req.group.n();
        let t = req.group.threshold;
        if !req.protocol.whole_group() {
            let mut s = req.signers.clone();
            s.sort_unstable();
            s.dedup();
            if s != req.signers
                || s.len() < usize::from(t)
                || !s.contains(&me)
                || s.iter().any(|i| *i >= n)
            {
                return Err(NodeError::bad(
                    "signers must be ascending, unique, include this node and number at least the threshold",
                ));
            }
        }
        if let Some(ev) = &req.evidence {
            self.store
                .record_request(&NodeRequestRecord {
                    session_id: req.session_id.clone(),
                    key_id: req.key_id.clone().unwrap_or_default(),
                    protocol: req.protocol.name().to_string(),
                    evidence: serde_json::to_string(ev)
                        .map_err(|e| NodeError::failure(format!("evidence: {e}")))?,
                    created_at: self.clock.now(),
                })
                .await
                .map_err(store_err)?;
        }
        let key_id = || {
            req.key_id
                .clone()
                .ok_or_else(|| NodeError::bad("keyId is required"))
        };
        let signers = req.signers.clone();
        let mut primes_id = None;
        let session = match req.protocol {
            Protocol::EcdsaAuxInfo => {
                let (id, sealed) = self
                    .store
                    .oldest_primes()
                    .await
                    .map_err(store_err)?
                    .ok_or_else(|| NodeError::NotReady {
                        message: "no safe primes yet".into(),
                    })?;
                let bytes = keyfold_keystore::open(
                    &self.kek,
                    &Aad::new(Purpose::Primes, &id, &self.cfg.signer_id, 1),
                    &sealed,
                )
                .map_err(|e| keystore_err("primes", e))?;
                let primes =
                    ecdsa::PaillierPrimes::from_bytes(bytes.expose_secret()).map_err(mpc_err)?;
                primes_id = Some(id);
                spawn(move || {
                    background_priority(Background::Setup);
                    Ok(keyfold_mpc::boxed(ecdsa::aux_info(sid, me, n, primes)?))
                })
                .await?
            }
            Protocol::EcdsaKeygen => {
                key_id()?;
                self.aux(&req.group.group_id).await?;
                spawn(move || Ok(keyfold_mpc::boxed(ecdsa::keygen(sid, me, n, t)?))).await?
            }
            Protocol::Ed25519Dkg => {
                key_id()?;
                spawn(move || Ok(keyfold_mpc::boxed(frost::dkg::<Ed25519>(sid, me, n, t)?))).await?
            }
            Protocol::TaprootDkg => {
                key_id()?;
                spawn(move || Ok(keyfold_mpc::boxed(frost::dkg::<Taproot>(sid, me, n, t)?))).await?
            }
            Protocol::EcdsaSign => {
                let share = self.ecdsa_share(&key_id()?).await?;
                let prehash = match req.input.clone() {
                    Some(SignInput::Digest { digest }) => EcdsaPrehash(
                        unhex("digest", &digest)?
                            .try_into()
                            .map_err(|_| NodeError::bad("digest must be 32 bytes"))?,
                    ),
                    Some(SignInput::Preimage { hasher, preimage }) => {
                        EcdsaPrehash::from(&message(hasher, &unhex("preimage", &preimage)?))
                    }
                    _ => return Err(NodeError::bad("ECDSA signing needs a digest or a preimage")),
                };
                spawn(move || {
                    Ok(keyfold_mpc::boxed(ecdsa::sign(
                        sid, &share, &signers, prehash,
                    )?))
                })
                .await?
            }
            Protocol::EcdsaPresign => {
                let share = self.ecdsa_share(&key_id()?).await?;
                if req.presignature_id.is_none() {
                    return Err(NodeError::bad("presignatureId is required"));
                }
                spawn(move || {
                    // Presignatures are stock for later, made while the node is otherwise idle:
                    // an online signature must never queue behind ~1 s of Paillier arithmetic.
                    background_priority(Background::Idle);
                    Ok(keyfold_mpc::boxed(ecdsa::presign(sid, &share, &signers)?))
                })
                .await?
            }
            Protocol::Ed25519Sign | Protocol::TaprootSign => {
                let share = self.share(&key_id()?).await?;
                let (msg, taproot, root) = match req.input.clone() {
                    Some(SignInput::Message {
                        message,
                        taproot,
                        merkle_root,
                    }) => (unhex("message", &message)?, taproot, merkle_root),
                    _ => return Err(NodeError::bad("FROST signing needs a message")),
                };
                match (req.protocol, share) {
                    (Protocol::Ed25519Sign, KeyShare::Ed25519(share)) => {
                        if taproot {
                            return Err(NodeError::bad("Ed25519 signatures take no tweak"));
                        }
                        spawn(move || {
                            Ok(keyfold_mpc::boxed(frost::sign::<Ed25519>(
                                sid, &share, &signers, &msg, None,
                            )?))
                        })
                        .await?
                    }
                    (Protocol::TaprootSign, KeyShare::Taproot(share)) => {
                        let tweak = taproot_tweak(taproot, root.as_deref())?;
                        spawn(move || {
                            Ok(keyfold_mpc::boxed(frost::sign::<Taproot>(
                                sid, &share, &signers, &msg, tweak,
                            )?))
                        })
                        .await?
                    }
                    _ => {
                        return Err(NodeError::bad(
                            "the key's scheme does not match the protocol",
                        ));
                    }
                }
            }
        };
        let mut active = Active {
            protocol: req.protocol,
            group: req.group,
            me,
            key_id: req.key_id,
            presignature_id: req.presignature_id,
            primes_id,
            session: Some(session),
            expires: Instant::now() + self.cfg.session_ttl,
        };
        let outgoing = run_blocking(&mut active, |s| s.start())
            .await
            .map_err(mpc_err)?;
        let sealed = self.seal_all(&active, &req.session_id, outgoing)?;
        if let Ok(mut table) = self.sessions.lock() {
            table.insert(req.session_id, Arc::new(AsyncMutex::new(active)));
        }
        Ok(StepResponse {
            outgoing: sealed,
            done: None,
        })
    }

    /// Feeds relayed messages to a session; returns this node's next messages and, when the
    /// protocol finished, its outcome.
    pub async fn step(&self, session_id: &str, req: StepRequest) -> Result<StepResponse> {
        let entry = self.session(session_id).ok_or(NodeError::UnknownSession)?;
        let mut active = entry.lock().await;
        let mut outgoing = Vec::new();
        let mut finished = None;
        for m in req.messages {
            if finished.is_some() {
                break;
            }
            let bytes = match self.open_message(&active, session_id, &m) {
                Ok(b) => b,
                Err(e) => {
                    self.drop_session(session_id);
                    return Err(e);
                }
            };
            let from = m.from;
            let step = run_blocking(&mut active, move |s| s.handle(from, &bytes)).await;
            match step {
                Ok(Step::Continue(out)) => outgoing.extend(out),
                Ok(Step::Done {
                    output,
                    outgoing: out,
                }) => {
                    outgoing.extend(out);
                    finished = Some(output);
                }
                Err(e) if e.is_recoverable() => {
                    tracing::debug!(session = %session_id, error = %e, "dropped a stray message");
                }
                Err(e) => {
                    self.drop_session(session_id);
                    return Err(mpc_err(e));
                }
            }
        }
        let sealed = self.seal_all(&active, session_id, outgoing)?;
        let done = match finished {
            Some(output) => {
                self.drop_session(session_id);
                Some(self.finish(&active, output).await?)
            }
            None => None,
        };
        Ok(StepResponse {
            outgoing: sealed,
            done,
        })
    }

    pub fn abort(&self, session_id: &str) {
        self.drop_session(session_id);
    }

    /// Spends a presignature on a message this node hashes itself. The presignature is
    /// deleted from the database before the partial signature exists.
    pub async fn partial_sign(&self, req: PartialSignRequest) -> Result<PartialSignResponse> {
        // An ECDSA key's, checked before anything is deleted (a FROST key's pooled nonces
        // share the table).
        self.ecdsa_share(&req.key_id).await?;
        let record = self.request_record(
            &req.presignature_id,
            &req.key_id,
            "cggmp24/presignature-spend",
            req.evidence.as_ref(),
        )?;
        // Deleted and recorded in one transaction, before anything is computed from it.
        let sealed = self
            .store
            .take_presignature_recording(&req.presignature_id, &req.key_id, record.as_ref())
            .await
            .map_err(store_err)?
            .ok_or_else(|| NodeError::bad("unknown or already used presignature"))?;
        let bytes = keyfold_keystore::open(
            &self.kek,
            &Aad::new(
                Purpose::Presignature,
                &req.presignature_id,
                &self.cfg.signer_id,
                1,
            ),
            &sealed,
        )
        .map_err(|e| keystore_err("presignature", e))?;
        let presig = EcdsaPresignature::from_bytes(bytes.expose_secret()).map_err(mpc_err)?;
        let msg = message(req.hasher, &unhex("preimage", &req.preimage)?);
        let partial = presig.issue_partial(&msg);
        Ok(PartialSignResponse {
            partial: b64(&partial.to_bytes().map_err(mpc_err)?),
        })
    }

    // ------------------------------------------------------------------ FROST, preprocessed

    /// Makes FROST nonce pairs for a key ahead of time (RFC 9591's commit round, which does not
    /// depend on the message): seals and stores each under its id, in one transaction, and
    /// returns only the commitments.
    pub async fn make_nonces(&self, req: NoncesRequest) -> Result<NoncesResponse> {
        if req.ids.is_empty() || req.ids.len() > MAX_NONCES_PER_REQUEST {
            return Err(NodeError::bad(format!(
                "ask for 1 to {MAX_NONCES_PER_REQUEST} nonce pairs"
            )));
        }
        if req.ids.iter().any(|id| id.is_empty() || id.len() > 64) {
            return Err(NodeError::bad("nonce ids must be 1 to 64 characters"));
        }
        let distinct: std::collections::HashSet<&String> = req.ids.iter().collect();
        if distinct.len() != req.ids.len() {
            return Err(NodeError::bad("nonce ids must be distinct"));
        }
        let share = self.share(&req.key_id).await?;
        let n = req.ids.len();
        // Curve arithmetic off the async threads, like every protocol step.
        let (made, public) = tokio::task::spawn_blocking(move || {
            type Made = (Vec<(Zeroizing<Vec<u8>>, Vec<u8>)>, Vec<u8>);
            fn make<C: frost::FrostSuite>(
                share: &frost::FrostKeyShare<C>,
                n: usize,
            ) -> Result<Made> {
                let mut made = Vec::with_capacity(n);
                for _ in 0..n {
                    let (nonces, c) = frost::preprocessed::commit(share).map_err(mpc_err)?;
                    made.push((nonces.to_bytes().map_err(mpc_err)?, c));
                }
                Ok((made, share.public_package_bytes().map_err(mpc_err)?))
            }
            match &share {
                KeyShare::Ed25519(s) => make(s, n),
                KeyShare::Taproot(s) => make(s, n),
                _ => Err(NodeError::bad("nonces are made for FROST keys only")),
            }
        })
        .await
        .map_err(|e| NodeError::failure(format!("nonce task: {e}")))??;
        let mut batch = Vec::with_capacity(n);
        let mut commitments = Vec::with_capacity(n);
        for (id, (nonces, c)) in req.ids.iter().zip(made) {
            let sealed = keyfold_keystore::seal(
                &self.kek,
                &Aad::new(Purpose::FrostNonces, id, &self.cfg.signer_id, 1),
                &nonces,
            )
            .map_err(|e| keystore_err("nonces", e))?;
            batch.push((id.clone(), sealed));
            commitments.push(b64(&c));
        }
        let public = b64(&public);
        self.store
            .put_presignatures(&req.key_id, &batch, self.clock.now())
            .await
            .map_err(|e| match e {
                keyfold_domain::StoreError::Conflict(_) => {
                    NodeError::bad("a nonce id is already taken")
                }
                e => store_err(e),
            })?;
        Ok(NoncesResponse {
            commitments,
            public,
        })
    }

    /// Spends one nonce pair on a message: the sealed nonces are deleted, in the same
    /// transaction that records the request, before the share is computed — so a nonce pair
    /// signs at most once, even across crashes and retries.
    pub async fn frost_share(&self, req: FrostShareRequest) -> Result<FrostShareResponse> {
        let share = self.share(&req.key_id).await?;
        let (msg, tweak) = match &req.input {
            SignInput::Message {
                message,
                taproot,
                merkle_root,
            } => (
                unhex("message", message)?,
                taproot_tweak(*taproot, merkle_root.as_deref())?,
            ),
            _ => return Err(NodeError::bad("FROST signing needs a message")),
        };
        let mut commitments = std::collections::BTreeMap::new();
        for (p, c) in &req.commitments {
            commitments.insert(*p, unb64(c)?);
        }
        // Everything about the request is checked before the nonces are spent, except that
        // this signer's own commitment is compared with the nonces' when they are opened: a
        // malformed one is refused now, a well-formed wrong one burns the pair (as a
        // different valid one always did). The parsed package is what is signed.
        let (protocol, package) = match &share {
            KeyShare::Ed25519(s) if tweak.is_none() => (
                "frost-ed25519/preprocessed-sign",
                Checked::Ed25519(
                    frost::preprocessed::check_package(s, &commitments).map_err(mpc_err)?,
                ),
            ),
            KeyShare::Taproot(s) => (
                "frost-secp256k1-tr/preprocessed-sign",
                Checked::Taproot(
                    frost::preprocessed::check_package(s, &commitments).map_err(mpc_err)?,
                ),
            ),
            KeyShare::Ed25519(_) => return Err(NodeError::bad("Ed25519 signatures take no tweak")),
            _ => return Err(NodeError::bad("this is not a FROST key")),
        };
        let record =
            self.request_record(&req.nonce_id, &req.key_id, protocol, req.evidence.as_ref())?;
        let sealed = self
            .store
            .take_presignature_recording(&req.nonce_id, &req.key_id, record.as_ref())
            .await
            .map_err(store_err)?
            .ok_or_else(|| NodeError::bad("unknown or already used nonces"))?;
        let bytes = keyfold_keystore::open(
            &self.kek,
            &Aad::new(Purpose::FrostNonces, &req.nonce_id, &self.cfg.signer_id, 1),
            &sealed,
        )
        .map_err(|e| keystore_err("nonces", e))?;
        // A share is a few hundred microseconds of point arithmetic, like the package check
        // above: computed in place, since handing it to a blocking thread (two thread
        // wake-ups) cost about as much CPU as the arithmetic itself.
        let bytes = bytes.expose_secret();
        let out = match (&share, &package) {
            (KeyShare::Ed25519(s), Checked::Ed25519(package)) => {
                let nonces = frost::preprocessed::FrostNonces::<Ed25519>::from_bytes(bytes)
                    .map_err(mpc_err)?;
                frost::preprocessed::sign_checked(s, nonces, package, &msg, None).map_err(mpc_err)
            }
            (KeyShare::Taproot(s), Checked::Taproot(package)) => {
                let nonces = frost::preprocessed::FrostNonces::<Taproot>::from_bytes(bytes)
                    .map_err(mpc_err)?;
                frost::preprocessed::sign_checked(s, nonces, package, &msg, tweak.as_ref())
                    .map_err(mpc_err)
            }
            _ => Err(NodeError::bad("this is not a FROST key")),
        }?;
        Ok(FrostShareResponse { share: b64(&out) })
    }

    // ------------------------------------------------------------------ internals

    /// What this node records about a signing request (nothing without evidence).
    fn request_record(
        &self,
        id: &str,
        key_id: &str,
        protocol: &str,
        evidence: Option<&keyfold_domain::ports::ActionEvidence>,
    ) -> Result<Option<NodeRequestRecord>> {
        evidence
            .map(|ev| {
                Ok(NodeRequestRecord {
                    session_id: id.to_string(),
                    key_id: key_id.to_string(),
                    protocol: protocol.to_string(),
                    evidence: serde_json::to_string(ev)
                        .map_err(|e| NodeError::failure(format!("evidence: {e}")))?,
                    created_at: self.clock.now(),
                })
            })
            .transpose()
    }

    fn session(&self, id: &str) -> Option<Arc<AsyncMutex<Active>>> {
        self.sessions.lock().ok()?.get(id).cloned()
    }

    fn drop_session(&self, id: &str) {
        if let Ok(mut t) = self.sessions.lock() {
            t.remove(id);
        }
    }

    fn expire_sessions(&self) {
        let now = Instant::now();
        if let Ok(mut t) = self.sessions.lock() {
            t.retain(|_, s| s.try_lock().map(|a| a.expires > now).unwrap_or(true));
        }
    }

    /// The group must be the configured one: same members in the same order, same keys.
    fn check_group(&self, group: &Group) -> Result<()> {
        let members = self.members();
        if members.is_empty() {
            return Err(NodeError::NotReady {
                message: "this node has no cluster membership configured".into(),
            });
        }
        if group.members != members {
            return Err(NodeError::bad(
                "the group's members or keys differ from this node's configuration",
            ));
        }
        if m_self(group, &self.cfg.signer_id).is_none_or(|m| m.public != self.identity.public()) {
            return Err(NodeError::bad("the group names another key for this node"));
        }
        let expected = group_id_of(
            &group
                .members
                .iter()
                .map(|m| m.signer_id.clone())
                .collect::<Vec<_>>(),
        );
        if group.group_id != expected {
            return Err(NodeError::bad("the group id does not match its members"));
        }
        if group.threshold < 2 || group.threshold > group.n() {
            return Err(NodeError::bad("threshold out of range"));
        }
        Ok(())
    }

    fn context(
        &self,
        active: &Active,
        session_id: &str,
        sender: u16,
        recipient: Option<u16>,
    ) -> Vec<u8> {
        MessageContext {
            protocol: active.protocol.name(),
            session_id: session_id.as_bytes(),
            round: 0,
            sender,
            recipient,
        }
        .to_bytes()
    }

    fn seal_all(
        &self,
        active: &Active,
        session_id: &str,
        out: Vec<Outgoing>,
    ) -> Result<Vec<WireMessage>> {
        out.into_iter()
            .map(|o| {
                let (to, body) = match o.to {
                    Recipient::Broadcast => {
                        let ctx = self.context(active, session_id, active.me, None);
                        (
                            None,
                            self.identity.sign_broadcast(&ctx, &o.bytes).to_bytes(),
                        )
                    }
                    Recipient::Party(p) => {
                        let peer = active.group.members.get(usize::from(p)).ok_or_else(|| {
                            NodeError::failure("message for a party outside the group")
                        })?;
                        let ctx = self.context(active, session_id, active.me, Some(p));
                        let env = self
                            .identity
                            .seal_to(&peer.public, &ctx, &o.bytes)
                            .map_err(|e| NodeError::failure(format!("sealing: {e}")))?;
                        (Some(p), env.to_bytes())
                    }
                };
                Ok(WireMessage {
                    from: active.me,
                    to,
                    body: b64(&body),
                })
            })
            .collect()
    }

    fn open_message(
        &self,
        active: &Active,
        session_id: &str,
        m: &WireMessage,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let from = active
            .group
            .members
            .get(usize::from(m.from))
            .ok_or_else(|| NodeError::bad("message from a party outside the group"))?;
        if m.from == active.me {
            return Err(NodeError::bad("message claims to come from this node"));
        }
        let raw = unb64(&m.body)?;
        let unauthentic = |e: keyfold_keystore::Error| NodeError::Failure {
            message: format!(
                "a relayed message from party {} failed authentication: {e}",
                m.from
            ),
        };
        match m.to {
            None => {
                let ctx = self.context(active, session_id, m.from, None);
                let msg = SignedMessage::from_bytes(&raw).map_err(unauthentic)?;
                let payload = msg.verify(&from.public, &ctx).map_err(unauthentic)?;
                Ok(Zeroizing::new(payload.to_vec()))
            }
            Some(to) if to == active.me => {
                let ctx = self.context(active, session_id, m.from, Some(to));
                let env = Envelope::from_bytes(&raw).map_err(unauthentic)?;
                let plain = self
                    .identity
                    .open_from(&from.public, &ctx, &env)
                    .map_err(unauthentic)?;
                Ok(plain.into_zeroizing())
            }
            Some(_) => Err(NodeError::bad("message addressed to another party")),
        }
    }

    async fn finish(&self, active: &Active, output: SessionOutput) -> Result<SessionDone> {
        let now = self.clock.now();
        let signer = &self.cfg.signer_id;
        match output {
            SessionOutput::EcdsaAuxInfo(aux) => {
                let bytes = aux.to_bytes().map_err(mpc_err)?;
                let sealed = keyfold_keystore::seal(
                    &self.kek,
                    &Aad::new(
                        Purpose::AuxInfo,
                        &active.group.group_id,
                        signer,
                        SHARE_VERSION,
                    ),
                    &bytes,
                )
                .map_err(|e| keystore_err("aux info", e))?;
                self.store
                    .put_aux(&active.group.group_id, &sealed, now)
                    .await
                    .map_err(store_err)?;
                if let Some(id) = &active.primes_id {
                    self.store.delete_primes(id).await.map_err(store_err)?;
                }
                Ok(SessionDone::AuxInfoStored)
            }
            SessionOutput::EcdsaIncompleteShare(incomplete) => {
                let aux = self.aux(&active.group.group_id).await?;
                let share = EcdsaKeyShare::from_parts(incomplete, &aux).map_err(mpc_err)?;
                self.store_share(active, KeyShare::Ecdsa(share)).await
            }
            SessionOutput::KeyShare(share) => self.store_share(active, share).await,
            SessionOutput::EcdsaPresignature(presig) => {
                let id = active
                    .presignature_id
                    .clone()
                    .ok_or_else(|| NodeError::failure("presignature without an id"))?;
                let public = presig.public().to_bytes().map_err(mpc_err)?;
                let bytes = presig.to_bytes().map_err(mpc_err)?;
                let sealed = keyfold_keystore::seal(
                    &self.kek,
                    &Aad::new(Purpose::Presignature, &id, signer, 1),
                    &bytes,
                )
                .map_err(|e| keystore_err("presignature", e))?;
                let key_id = active.key_id.clone().unwrap_or_default();
                self.store
                    .put_presignature(&id, &key_id, &sealed, now)
                    .await
                    .map_err(store_err)?;
                Ok(SessionDone::PresignatureStored {
                    public: b64(&public),
                })
            }
            SessionOutput::EcdsaSignature(sig) => Ok(SessionDone::EcdsaSignature {
                r: hex::encode(sig.r),
                s: hex::encode(sig.s),
                recid: sig.recovery_id,
            }),
            SessionOutput::SchnorrSignature(sig) => Ok(SessionDone::SchnorrSignature {
                signature: hex::encode(sig.to_bytes()),
            }),
            #[allow(unreachable_patterns)]
            _ => Err(NodeError::failure("unexpected session output")),
        }
    }

    async fn store_share(&self, active: &Active, share: KeyShare) -> Result<SessionDone> {
        let key_id = active
            .key_id
            .clone()
            .ok_or_else(|| NodeError::failure("key share without a key id"))?;
        let public_key = share.public_key().map_err(mpc_err)?;
        let scheme = match share {
            KeyShare::Ecdsa(_) => "ECDSA",
            KeyShare::Ed25519(_) => "EdDSA",
            KeyShare::Taproot(_) => "Schnorr",
        };
        let bytes = share.to_bytes().map_err(mpc_err)?;
        let sealed = keyfold_keystore::seal(
            &self.kek,
            &Aad::new(
                Purpose::KeyShare,
                &key_id,
                &self.cfg.signer_id,
                SHARE_VERSION,
            ),
            &bytes,
        )
        .map_err(|e| keystore_err("key share", e))?;
        self.store
            .put_share(
                &key_id,
                i64::from(SHARE_VERSION),
                scheme,
                &sealed,
                self.clock.now(),
            )
            .await
            .map_err(|e| match e {
                keyfold_domain::StoreError::Conflict(_) => {
                    NodeError::bad("this key already has a share here")
                }
                other => store_err(other),
            })?;
        if let Ok(mut cache) = self.shares.lock() {
            cache.insert(key_id, share);
        }
        Ok(SessionDone::KeyStored {
            public_key: hex::encode(public_key),
        })
    }

    async fn aux(&self, group_id: &str) -> Result<EcdsaAuxInfo> {
        let sealed = self
            .store
            .get_aux(group_id)
            .await
            .map_err(store_err)?
            .ok_or_else(|| NodeError::NotReady {
                message: "no aux info for this group yet".into(),
            })?;
        let bytes = keyfold_keystore::open(
            &self.kek,
            &Aad::new(
                Purpose::AuxInfo,
                group_id,
                &self.cfg.signer_id,
                SHARE_VERSION,
            ),
            &sealed,
        )
        .map_err(|e| keystore_err("aux info", e))?;
        EcdsaAuxInfo::from_bytes(bytes.expose_secret()).map_err(mpc_err)
    }

    async fn share(&self, key_id: &str) -> Result<KeyShare> {
        if let Some(s) = self.shares.lock().ok().and_then(|c| c.get(key_id).cloned()) {
            return Ok(s);
        }
        let (version, _scheme, sealed) = self
            .store
            .get_share(key_id)
            .await
            .map_err(store_err)?
            .ok_or_else(|| NodeError::bad(format!("this node holds no share of key {key_id}")))?;
        let version =
            u32::try_from(version).map_err(|_| NodeError::failure("share version out of range"))?;
        let bytes = keyfold_keystore::open(
            &self.kek,
            &Aad::new(Purpose::KeyShare, key_id, &self.cfg.signer_id, version),
            &sealed,
        )
        .map_err(|e| keystore_err("key share", e))?;
        let share = KeyShare::from_bytes(bytes.expose_secret()).map_err(mpc_err)?;
        if let Ok(mut cache) = self.shares.lock() {
            cache.insert(key_id.to_string(), share.clone());
        }
        Ok(share)
    }

    /// Forgets opened shares (tests use it to make the next use re-open from the database).
    pub fn forget_cached_shares(&self) {
        if let Ok(mut c) = self.shares.lock() {
            c.clear();
        }
    }

    async fn ecdsa_share(&self, key_id: &str) -> Result<EcdsaKeyShare> {
        match self.share(key_id).await? {
            KeyShare::Ecdsa(s) => Ok(s),
            _ => Err(NodeError::bad(format!("key {key_id} is not an ECDSA key"))),
        }
    }
}

/// A pooled FROST request's package, checked for this node's share (of either suite).
enum Checked {
    Ed25519(frost::preprocessed::CheckedPackage<Ed25519>),
    Taproot(frost::preprocessed::CheckedPackage<Taproot>),
}

/// The BIP-341 key-path tweak a FROST request asks for (`taproot`, with an optional merkle
/// root in hex; empty means none).
fn taproot_tweak(taproot: bool, merkle_root: Option<&str>) -> Result<Option<TaprootTweak>> {
    if !taproot {
        return Ok(None);
    }
    let merkle_root = match merkle_root {
        Some(r) if !r.is_empty() => Some(
            unhex("merkleRoot", r)?
                .try_into()
                .map_err(|_| NodeError::bad("merkleRoot must be 32 bytes"))?,
        ),
        _ => None,
    };
    Ok(Some(TaprootTweak { merkle_root }))
}

fn m_self<'g>(group: &'g Group, signer_id: &str) -> Option<&'g crate::protocol::Member> {
    group.members.iter().find(|m| m.signer_id == signer_id)
}

/// A group's id: a digest of its members, so every node and the coordinator derive the same id
/// and aux info is bound to exactly that membership.
pub fn group_id_of(members: &[String]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for m in members {
        h.update((m.len() as u64).to_be_bytes());
        h.update(m.as_bytes());
    }
    format!("grp-{}", &hex::encode(h.finalize())[..24])
}

fn message(hasher: Hasher, preimage: &[u8]) -> EcdsaMessage {
    match hasher {
        Hasher::Keccak256 => EcdsaMessage::keccak256(preimage),
        Hasher::Sha256 => EcdsaMessage::sha256(preimage),
        Hasher::DoubleSha256 => EcdsaMessage::double_sha256(preimage),
    }
}

/// How much a background computation should yield to online work.
#[derive(Clone, Copy, Debug)]
enum Background {
    /// Only when nothing else wants the CPU (`SCHED_IDLE`): presignature refills.
    Idle,
    /// Behind online requests but not starved (nice 10): safe primes and aux info, which
    /// ECDSA readiness waits for.
    Setup,
}

/// Lowers the calling thread's CPU priority (Linux; best effort, elsewhere a no-op).
///
/// WHY: a signer's expensive work is precomputation — safe primes and aux info once,
/// presignatures continuously. On a 2-core machine the same CPUs also answer online signing
/// requests, which are milliseconds of work; at equal priority they queue behind seconds of
/// Paillier arithmetic. Only the computing session thread is lowered (each session has its
/// own thread), never a runtime worker.
fn background_priority(level: Background) {
    use thread_priority::unix::{
        NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
        thread_native_id,
    };
    use thread_priority::{ThreadPriority, ThreadPriorityValue};
    let result = match level {
        Background::Idle => set_thread_priority_and_policy(
            thread_native_id(),
            ThreadPriority::Min,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
        ),
        // thread-priority maps its 0..=99 scale onto nice 19..=-20; 22 is nice 10 (tested).
        Background::Setup => ThreadPriorityValue::try_from(22u8)
            .map_err(|_| thread_priority::Error::Priority("nice 10"))
            .and_then(|v| {
                set_thread_priority_and_policy(
                    thread_native_id(),
                    ThreadPriority::Crossplatform(v),
                    ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other),
                )
            }),
    };
    if let Err(e) = result {
        tracing::debug!(?level, error = ?e, "could not lower a background thread's priority");
    }
}

async fn spawn<F>(build: F) -> Result<ThreadedSession<SessionOutput>>
where
    F: FnOnce() -> keyfold_mpc::Result<keyfold_mpc::DynSession> + Send + 'static,
{
    tokio::task::spawn_blocking(move || ThreadedSession::spawn(build))
        .await
        .map_err(|e| NodeError::failure(format!("session thread: {e}")))?
        .map_err(mpc_err)
}

/// Runs a (blocking) call on the session off the async runtime.
async fn run_blocking<T: Send + 'static>(
    active: &mut Active,
    f: impl FnOnce(&mut ThreadedSession<SessionOutput>) -> keyfold_mpc::Result<T> + Send + 'static,
) -> keyfold_mpc::Result<T> {
    let Some(mut s) = active.session.take() else {
        return Err(keyfold_mpc::Error::Internal("session is busy".into()));
    };
    let (s, r) = tokio::task::spawn_blocking(move || {
        let r = f(&mut s);
        (s, r)
    })
    .await
    .map_err(|e| keyfold_mpc::Error::Internal(format!("session thread: {e}")))?;
    active.session = Some(s);
    r
}

#[cfg(test)]
mod tests {
    use super::{Background, background_priority};

    /// (scheduling policy, nice) of the calling thread, from /proc (Linux).
    fn sched_of_this_thread() -> Option<(u32, i32)> {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
        // Fields after the parenthesised command name; nice is field 19, policy field 41.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        Some((f.get(38)?.parse().ok()?, f.get(16)?.parse().ok()?))
    }

    #[test]
    fn background_threads_yield_to_online_work() {
        if sched_of_this_thread().is_none() {
            return; // not Linux
        }
        let setup = std::thread::spawn(|| {
            background_priority(Background::Setup);
            sched_of_this_thread()
        })
        .join()
        .ok()
        .flatten();
        assert_eq!(setup, Some((0, 10)), "SCHED_OTHER at nice 10");
        let idle = std::thread::spawn(|| {
            background_priority(Background::Idle);
            sched_of_this_thread()
        })
        .join()
        .ok()
        .flatten()
        .map(|(policy, _)| policy);
        assert_eq!(idle, Some(5), "SCHED_IDLE");
        // The caller's own thread is untouched.
        assert_eq!(sched_of_this_thread().map(|(p, _)| p), Some(0));
    }
}
